/* The floor under the compact round trip: 4 processes on one CPU passing a
 * token around a ring of futex words (each hop a FUTEX_WAKE of the next
 * process and a FUTEX_WAIT of its own: what a compact round trip does,
 * without crypto, routing or rings), paced, next to a Unix socket pair on
 * the same CPU at the same pace. Three chains: every hop sleeps; every
 * waker yields after a wake that woke someone (the compact hand-over); and
 * the requester waits for the reply by sched_yield for up to 100 us before
 * it sleeps (a yield window).
 *
 *   cc -O2 -o /tmp/futex_chain benches/floor/futex_chain.c && /tmp/futex_chain 1000
 *
 * The argument is the pace in us (default 1000; 0 is back to back). Prints
 * p50/p99 of 3,000 round trips each, twice. On the development VM (busy)
 * the bare 4-hop chain took 10-18 us against 6-15 us for the socket pair in
 * the same minutes: four sleeping hops cost about twice two.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>
#define N 3000
#include "floor.h"
static void report(const char*w,double*l){qsort(l,N,sizeof(double),cmp);printf("%-28s p50 %6.2f us p99 %7.2f us\n",w,l[N/2]/1e3,l[N*99/100]/1e3);fflush(stdout);}
struct slot{_Atomic unsigned seq; _Atomic unsigned sleepers; _Atomic unsigned long val; char pad[48];};
static struct slot *S;
static int mode; // 0: sleep, 1: sleep+handover yield, 2: requester polls by yield
static void post(int i,unsigned long v,int hand){
  atomic_store(&S[i].val,v); atomic_thread_fence(memory_order_seq_cst);
  if(atomic_load(&S[i].sleepers)){atomic_fetch_add(&S[i].seq,1);
    long r=syscall(SYS_futex,&S[i].seq,FUTEX_WAKE,1,0,0,0); if(r>0&&hand) sched_yield();}
}
static unsigned long waitv(int i,unsigned long seen,int poll_us){
  unsigned long v;
  if(poll_us){double end=now_ns()+poll_us*1e3; while(now_ns()<end){ if((v=atomic_load(&S[i].val))!=seen) return v; sched_yield();}}
  for(;;){ atomic_fetch_add(&S[i].sleepers,1); unsigned s=atomic_load(&S[i].seq);
    if((v=atomic_load(&S[i].val))!=seen){atomic_fetch_sub(&S[i].sleepers,1);return v;}
    syscall(SYS_futex,&S[i].seq,FUTEX_WAIT,s,0,0,0); atomic_fetch_sub(&S[i].sleepers,1);
    if((v=atomic_load(&S[i].val))!=seen) return v;}
}
// chain: 0 (requester) posts to 1; 1 posts to 2; 2 posts to 3; 3 posts to 0.
static void member(int k){pin(0); unsigned long seen=0; for(;;){unsigned long v=waitv(k,seen,0); seen=v; if(v==~0UL){ if(k<3) post(k+1,v,0); exit(0);} post((k+1)%4,v,mode>=1);}}
static void chain(const char*name,int m,int pace_us){
  mode=m; memset(S,0,sizeof(struct slot)*4);
  for(int k=1;k<4;k++) if(!fork()) member(k);
  pin(0); static double lat[N]; unsigned long seen=0;
  double next=now_ns();
  for(int i=0;i<N+100;i++){ next+=pace_us*1e3; double t; while((t=now_ns())<next){struct timespec d={0,(long)(next-t)}; if(pace_us) nanosleep(&d,0); else break;}
    double t0=now_ns(); post(1,i+1,0); seen=waitv(0,seen,m==2?100:0); if(i>=100) lat[i-100]=now_ns()-t0;}
  post(1,~0UL,0); while(wait(0)>0); report(name,lat);
}
static void sockpair(int pace_us){int sv[2];socketpair(AF_UNIX,SOCK_STREAM,0,sv);char b[64];
  if(!fork()){pin(0);close(sv[0]);echo_64(sv[1]);}
  close(sv[1]);pin(0);static double lat[N];double next=now_ns();
  for(int i=0;i<N+100;i++){next+=pace_us*1e3;double t;while((t=now_ns())<next){struct timespec d={0,(long)(next-t)};if(pace_us)nanosleep(&d,0);else break;}
    double t0=now_ns();write(sv[0],b,64);read(sv[0],b,64);if(i>=100)lat[i-100]=now_ns()-t0;}
  close(sv[0]);wait(0);report("socket 1cpu",lat);}
int main(int c,char**v){int pace=c>1?atoi(v[1]):1000;
  S=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  for(int r=0;r<2;r++){sockpair(pace);chain("chain4 futex",0,pace);chain("chain4 futex+handover",1,pace);chain("chain4 req polls (yield)",2,pace);}
}
