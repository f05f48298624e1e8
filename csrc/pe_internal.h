/*
 * pe_internal.h — what the core's C files share and Python never sees.
 *
 * The thread registry (pe_thread.c) is the only global state beyond the region table
 * (pe_regions.c) and the CPU facts (pe_cpu.c). Fields that the signal handler reads are atomics
 * written with release and read with acquire; nothing here is ever locked by a handler.
 */
#ifndef PE_INTERNAL_H
#define PE_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "preempt.h"

#define PE_HIDDEN __attribute__((visibility("hidden")))

/* Unrecoverable internal error: Go's throw(). Async-signal-safe (write + abort). */
#define PE_THROW(msg) pe_throw("preempt: " msg "\n")
PE_HIDDEN _Noreturn void pe_throw(const char *msg);

/* Under valgrind, memory below the interrupted RSP is "unaddressable" and stays so when the
 * handler moves RSP down through the ucontext: memcheck does not see the trampoline's frame as
 * stack, not even after the trampoline's own pushes (checked: a client check in pe_suspend_park
 * found the spill frame unaddressable). PE_VALGRIND_MAKE_STACK tells it a slot is stack
 * (pe_signal.c, the pushed RIP); PE_VALGRIND_MAKE_DEFINED that the pushed registers are there
 * (pe_suspend.c, before a requester reads them). Each client request is a no-op sequence of a
 * few instructions when not under valgrind, and async-signal-safe. Optional: without the header
 * nothing changes. */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define PE_VALGRIND_MAKE_STACK(lo, len) VALGRIND_MAKE_MEM_UNDEFINED((void *)(lo), (len))
#define PE_VALGRIND_MAKE_DEFINED(lo, len) VALGRIND_MAKE_MEM_DEFINED((void *)(lo), (len))
#endif
#endif
#ifndef PE_VALGRIND_MAKE_STACK
#define PE_VALGRIND_MAKE_STACK(lo, len) ((void)0)
#define PE_VALGRIND_MAKE_DEFINED(lo, len) ((void)0)
#endif

/* The System V red zone: the 128 bytes below RSP that a leaf may use without moving RSP. The
 * handler skips it before pushing the interrupted RIP (pe_signal.c); the trampoline's `ret $128`
 * skips it back (pe_trampoline_amd64.c, which spells the number itself). */
#define PE_RED_ZONE_BYTES 128

/* Stack the trampoline, its C entry and a park hook need below the interrupted RSP (invariant 3,
 * "enough stack"). The runtime's hook runs the scheduler (Python, greenlet) there. */
#define PE_ASYNC_STACK_NEED (256 * 1024)

/* Suspension state machine of one thread. The word pe_thread_t.susp packs, so that one CAS
 * covers all three and a stale requester can never act on a reused slot:
 *   bits 0-2  state (PE_SUSP_*)      bits 3-4  request kind (PE_REQ_*)
 *   bits 5-31 the slot's generation (low 27 bits)
 * Transitions:
 *   IDLE -> REQUESTED        requester claims the thread          (pe_thread_suspend)
 *   REQUESTED -> IDLE        requester withdraws after a timeout  (pe_thread_suspend)
 *   REQUESTED -> ACCEPTED    handler found an async safe-point    (signal handler)
 *   ACCEPTED -> PARKED       trampoline entry published registers (pe_suspend_park)
 *   PARKED -> RESUMING       somebody resumed it                  (pe_thread_resume)
 *   RESUMING -> IDLE         the thread left its park             (pe_suspend_park)
 * The CAS on REQUESTED is what makes a timeout and an acceptance exclusive: no lost and no
 * double request. Every store that somebody may sleep on is followed by a futex wake. */
enum {
    PE_SUSP_IDLE = 0,
    PE_SUSP_REQUESTED = 1,
    PE_SUSP_ACCEPTED = 2,
    PE_SUSP_PARKED = 3,
    PE_SUSP_RESUMING = 4,
};

/* What a request asks of the thread once it reaches the trampoline. */
enum {
    PE_REQ_NONE = 0,
    PE_REQ_SUSPEND = 1, /* park on the futex until pe_thread_resume (threads API) */
    PE_REQ_PREEMPT = 2, /* run the installed preempt hook (the goroutine runtime) */
};

#define PE_GEN_MASK 0x07ffffffu
#define PE_SUSP(gen, kind, st) ((((gen) & PE_GEN_MASK) << 5) | ((uint32_t)(kind) << 3) | (uint32_t)(st))
#define PE_SUSP_ST(w) ((w) & 7u)
#define PE_SUSP_KIND(w) (((w) >> 3) & 3u)
#define PE_SUSP_GEN(w) ((w) >> 5)

typedef struct pe_thread {
    _Atomic int32_t tid;        /* kernel tid; 0 while the slot is free (handler's lookup key) */
    _Atomic uint32_t gen;       /* bumped when the slot is freed: stale handles see PE_EXITED */
    _Atomic int32_t used;       /* slot claimed (set before tid, cleared after) */
    _Atomic uint32_t susp;      /* PE_SUSP(gen, kind, state), also the futex word */
    pthread_t pthread;          /* for pthread_getattr_np and diagnostics */
    void *tstate;               /* the thread's PyThreadState*, to tell whether it holds the GIL */
    uintptr_t stack_lo;         /* lowest usable address of the thread's stack */
    uintptr_t stack_hi;         /* one past its highest address */
    void *altstack;             /* our sigaltstack mapping, or NULL when a big enough one existed */
    size_t altstack_size;       /* bytes of that mapping, guard page included */
    stack_t old_altstack;       /* what to restore when the thread unregisters */
    pe_gregs_t *_Atomic regs;   /* spill frame while parked, else NULL */
    void *_Atomic xsave;        /* XSAVE/FXSAVE area while parked, else NULL */
    _Atomic int64_t req_ns;     /* CLOCK_MONOTONIC of the first signal of this request */
    _Atomic int64_t parked_ns;  /* CLOCK_MONOTONIC when it parked */
    _Atomic int64_t last_latency_ns; /* parked_ns - req_ns of the last suspension */
    _Atomic uint64_t signals_sent;   /* statistics, relaxed */
    _Atomic uint64_t declined;
    _Atomic uint64_t accepted;
    _Atomic uint32_t bench_ack;      /* pe_bench_signal_rtt's futex word */
    _Atomic int64_t bench_ns;        /* when its handler ran */
} pe_thread_t;

/* pe_thread.c */
PE_HIDDEN extern pe_thread_t pe_threads[PE_MAX_THREADS];
PE_HIDDEN pe_thread_t *pe_thread_by_tid(int32_t tid);          /* signal-safe */
PE_HIDDEN pe_thread_t *pe_thread_lookup(int32_t slot, uint32_t gen);
PE_HIDDEN int32_t pe_gettid(void);                              /* signal-safe */
PE_HIDDEN int64_t pe_now_ns(void);                              /* signal-safe */
PE_HIDDEN int pe_futex_wait(_Atomic uint32_t *w, uint32_t val, int64_t timeout_ns);
PE_HIDDEN void pe_futex_wake(_Atomic uint32_t *w);
PE_HIDDEN int pe_thread_key_init(void);                        /* pe_init only */
PE_HIDDEN void pe_thread_atfork_child(void);                   /* fork child */

/* pe_regions.c */
PE_HIDDEN void pe_regions_atfork_child(void);

/* pe_cpu.c */
PE_HIDDEN extern uint32_t pe_cpu_xsave_size;   /* 0 means FXSAVE (512 bytes) */
PE_HIDDEN extern uint32_t pe_cpu_xsave_lo;     /* XCR0 mask, low and high halves for EDX:EAX */
PE_HIDDEN extern uint32_t pe_cpu_xsave_hi;
PE_HIDDEN extern uint64_t pe_cpu_frame_bytes;  /* bytes the trampoline reserves for the area */
PE_HIDDEN const char *pe_cpu_probe(void);      /* NULL or why async preemption is off */
PE_HIDDEN void pe_cpu_scramble_extended_state(void); /* testing aid */

/* pe_python.c */
PE_HIDDEN void *pe_py_this_tstate(void);
PE_HIDDEN int pe_py_holds_gil(void *tstate);     /* signal-safe */
struct dl_phdr_info;
PE_HIDDEN int pe_python_object_refused(const struct dl_phdr_info *info);
PE_HIDDEN void pe_py_trip_signal(int signum);    /* signal-safe */
PE_HIDDEN void pe_py_raise_on_return(int code);
PE_HIDDEN const ssize_t *pe_py_varsize_addr(void *obj);
PE_HIDDEN ssize_t pe_py_member_offset(void *descr);

/* pe_pyoffsets.c */
PE_HIDDEN void *pe_py_eval_breaker_addr(void);
PE_HIDDEN const int *pe_py_gil_locked_addr(void);
PE_HIDDEN const int *pe_py_signals_tripped_addr(void);

/* pe_signal.c */
PE_HIDDEN int pe_signal_install(void);
PE_HIDDEN extern const int pe_signal_magic;  /* si_value of our signals points here */
PE_HIDDEN int pe_signal_send(int32_t tid);        /* signal-safe */
#define PE_SIG SIGURG

/* pe_sysmon.c */
PE_HIDDEN int pe_sysmon_on_signal(int32_t tid);   /* signal-safe */
PE_HIDDEN void pe_sysmon_atfork_child(void);
PE_HIDDEN void pe_wakeup_atfork_child(void);

/* pe_async.c: goroutine preemption in native code, and the trampoline's C entry */
typedef int (*pe_preempt_hook_t)(int32_t slot);
PE_HIDDEN int pe_thread_claim_preempt(pe_thread_t *t);      /* sysmon thread */
PE_HIDDEN void pe_thread_withdraw_preempt(pe_thread_t *t);  /* sysmon thread */
PE_HIDDEN void pe_async_preempt_entry(pe_gregs_t *regs, void *xsave);  /* the trampoline */

/* pe_suspend.c: OS-thread suspension */
PE_HIDDEN void pe_suspend_park(pe_thread_t *t, uint32_t gen, uint32_t kind, pe_gregs_t *regs,
                               void *xsave);            /* the suspended thread, no handler */

/* pe_trampoline_amd64.c */
PE_HIDDEN void pe_trampoline(void);

#endif /* PE_INTERNAL_H */
