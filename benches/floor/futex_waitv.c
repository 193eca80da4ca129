/* What a second futex word costs a sleeper: two processes on one CPU pass a
 * token back and forth, each waking the other (FUTEX_WAKE on a shared word)
 * and sleeping until woken, by FUTEX_WAIT, by futex_waitv on that one word,
 * and by futex_waitv on it and a second word (what a manager does: its
 * registry doorbell and its LP's ring doorbell). Back to back, 200,000
 * round trips each, three times.
 *
 *   cc -O2 -o /tmp/futex_waitv benches/floor/futex_waitv.c && /tmp/futex_waitv
 *
 * On the development VM (lat4, busy): futex_wait 5.5 us per round trip (2
 * sleeping hops), futex_waitv on one word 5.4-6.1, on two words 6.1-6.9:
 * the second word costs about 0.3-0.45 us per sleeping hop (its futex key
 * and hash bucket), i.e. 0.6-0.9 us per LP round trip (two manager hops).
 * See benches/hops.md.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>
#define N 200000
struct fwv { unsigned long long val, uaddr; unsigned flags, pad; };
static _Atomic unsigned *W;
#include "floor.h"
// v: 0 FUTEX_WAIT, 1 futex_waitv on one word, 2 on two words.
static void waitw(int i, unsigned s, int v){
  if(!v){ syscall(SYS_futex,&W[i*16],FUTEX_WAIT,s,0,0,0); return; }
  struct fwv w[2]; w[0].val=s; w[0].uaddr=(unsigned long)&W[i*16]; w[0].flags=2; w[0].pad=0;
  w[1].val=W[i*16+8]; w[1].uaddr=(unsigned long)&W[i*16+8]; w[1].flags=2; w[1].pad=0;
  syscall(449, w, v, 0, 0, 1);
}
static void run(int v){
  memset((void*)W,0,4096);
  if(!fork()){pin(0); unsigned seen=0; for(int k=0;k<N;k++){ while(W[0]==seen) waitw(0,seen,v); seen=W[0]; W[16]++; syscall(SYS_futex,&W[16],FUTEX_WAKE,1,0,0,0);} exit(0);}
  pin(0); unsigned seen=0; double t=now_ns();
  for(int k=0;k<N;k++){ W[0]++; syscall(SYS_futex,&W[0],FUTEX_WAKE,1,0,0,0); while(W[16]==seen) waitw(1,seen,v); seen=W[16]; }
  double d=now_ns()-t; wait(0); printf("%s: %.2f us per round trip (2 hops)\n", v==2?"waitv 2 words":v==1?"waitv 1 word":"futex_wait", d/N/1e3); fflush(stdout);
}
int main(){ W=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0); for(int r=0;r<3;r++){run(0);run(1);run(2);} }
