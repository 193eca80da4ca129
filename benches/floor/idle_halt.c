/* Why the paced round trip is bimodal on the development VM (issue 12,
 * lat8): a bare 4-process futex chain and a Unix socket pair, both on CPU 0
 * and paced at 1 ms (futex_chain.c's code), run alternately as they are
 * ("halting": the vCPU is idle, so it halts, between requests) and beside
 * a SCHED_IDLE busy loop on the same CPU ("awake": the vCPU never halts;
 * the loop runs only when nothing else wants the CPU, so it delays no
 * hop). No shmcollab code is involved.
 *
 *   cc -O2 -o /tmp/idle_halt benches/floor/idle_halt.c && /tmp/idle_halt 8
 *
 * The argument is the number of pairs (default 8); each line prints p50
 * (us) of 3,000 round trips of each, halting and awake, and the CPU the
 * busy loop took (all of what the two left idle: about a core). On the
 * development VM (6.18, a KVM guest whose idle CPUs halt: cpuidle haltpoll,
 * guest_halt_poll_ns=0), quiet, 6 pairs: halting 6.8-19.2 / 9.5-20.7 us
 * (slow in 3 of 6: phases of seconds, the host's), awake 7.1-7.3 / 9.1-9.2
 * us in all 6 (benches/hops.md, "The bimodal paced round trip").
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
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
#define PACE_US 1000
#include "floor.h"
static double p50(double*l){qsort(l,N,sizeof(double),cmp);return l[N/2]/1e3;}
static void pace(double*next){*next+=PACE_US*1e3;double t;while((t=now_ns())<*next){struct timespec d={0,(long)(*next-t)};nanosleep(&d,0);}}
struct slot{_Atomic unsigned seq; _Atomic unsigned sleepers; _Atomic unsigned long val; char pad[48];};
static struct slot *S;
static void post(int i,unsigned long v){
  atomic_store(&S[i].val,v); atomic_thread_fence(memory_order_seq_cst);
  if(atomic_load(&S[i].sleepers)){atomic_fetch_add(&S[i].seq,1); syscall(SYS_futex,&S[i].seq,FUTEX_WAKE,1,0,0,0);}
}
static unsigned long waitv(int i,unsigned long seen){
  unsigned long v;
  for(;;){ atomic_fetch_add(&S[i].sleepers,1); unsigned s=atomic_load(&S[i].seq);
    if((v=atomic_load(&S[i].val))!=seen){atomic_fetch_sub(&S[i].sleepers,1);return v;}
    syscall(SYS_futex,&S[i].seq,FUTEX_WAIT,s,0,0,0); atomic_fetch_sub(&S[i].sleepers,1);
    if((v=atomic_load(&S[i].val))!=seen) return v;}
}
static void member(int k){pin(0); unsigned long seen=0; for(;;){unsigned long v=waitv(k,seen); seen=v; if(v==~0UL){ if(k<3) post(k+1,v); _exit(0);} post((k+1)%4,v);}}
static double chain(void){
  memset(S,0,sizeof(struct slot)*4);
  pid_t m[4]; for(int k=1;k<4;k++) if(!(m[k]=fork())) member(k);
  pin(0); static double lat[N]; unsigned long seen=0; double next=now_ns();
  for(int i=0;i<N+100;i++){ pace(&next); double t0=now_ns(); post(1,i+1); seen=waitv(0,seen); if(i>=100) lat[i-100]=now_ns()-t0;}
  post(1,~0UL); for(int k=1;k<4;k++) waitpid(m[k],0,0); return p50(lat);
}
static double sockpair(void){int sv[2];socketpair(AF_UNIX,SOCK_STREAM,0,sv);char b[64]={0};
  pid_t e=fork(); if(!e){pin(0);close(sv[0]);echo_64(sv[1]);}
  close(sv[1]);pin(0);static double lat[N];double next=now_ns();
  for(int i=0;i<N+100;i++){pace(&next);double t0=now_ns();write(sv[0],b,64);read(sv[0],b,64);if(i>=100)lat[i-100]=now_ns()-t0;}
  close(sv[0]);waitpid(e,0,0);return p50(lat);}
/* A busy loop on CPU 0 in SCHED_IDLE: it runs only when CPU 0 would idle. */
static pid_t awake(void){pid_t p=fork(); if(p) return p;
  pin(0); struct sched_param sp={0}; sched_setscheduler(0,SCHED_IDLE,&sp);
  for(volatile unsigned long x=0;;x++){} }
static double cpu_ms(pid_t p){char f[64];snprintf(f,sizeof f,"/proc/%d/schedstat",p);FILE*fp=fopen(f,"r");
  double ns=0; if(fp){if(fscanf(fp,"%lf",&ns)!=1)ns=0;fclose(fp);} return ns/1e6;}
int main(int c,char**v){int pairs=c>1?atoi(v[1]):8;
  S=mmap(0,4096,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0);
  printf("p50 us, paced 1 ms, CPU 0: socket pair / 4-process futex chain\n"); fflush(stdout);
  for(int r=0;r<pairs;r++){
    double s0=sockpair(), c0=chain();
    pid_t a=awake(); double s1=sockpair(), c1=chain(); double ms=cpu_ms(a);
    kill(a,SIGKILL); waitpid(a,0,0);
    printf("%2d halting %6.2f / %6.2f   awake %6.2f / %6.2f   (busy loop: %.0f ms of CPU)\n",r,s0,c0,s1,c1,ms);
    fflush(stdout);}
}
