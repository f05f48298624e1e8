/*
 * pe_signal.c — the SIGURG handler: Go's doSigPreempt for native code.
 *
 * Why SIGURG (Go's sigPreempt gives the same reasons): it is sent by the kernel only for
 * out-of-band socket data, which almost nobody uses; its default action is to ignore it, so a
 * stray one is harmless; and CPython installs no handler for it. A program that has its own
 * SIGURG handler keeps it: we chain to whatever was installed before us, for every SIGURG that is
 * not one of ours.
 *
 * Ours are told apart exactly, unlike Go's (whose programs may see spurious SIGURGs): requesters
 * send with rt_tgsigqueueinfo, si_code SI_QUEUE, our pid, and si_value pointing at
 * pe_signal_magic — a value no other sender can know. A request signal that arrives after its
 * request was already taken (a retry overtaken by the first signal) is swallowed, never passed to
 * the user's handler. Non-real-time signals do not queue: if a user's SIGURG is pending when ours
 * is sent, ours is merged into it and the requester's retry covers it.
 *
 * The handler preempts only when all of these hold (docs/design.md invariant 3, Go's
 * wantAsyncPreempt + isAsyncSafePoint); otherwise it does nothing and the requester retries:
 *   1. the signal is ours (pe_is_our_signal) and a request is pending for this thread, which is
 *      a registered thread (found by tid: no thread-local storage here);
 *   2. the handler runs on the alternate signal stack, so the push below cannot land in the
 *      kernel's signal frame (pe_thread.c explains);
 *   3. the interrupted RIP lies in a registered preemptible region (never libc, the vDSO, the
 *      interpreter or this module: pe_regions.c refuses to register those);
 *   4. the thread does not hold the GIL;
 *   5. the interrupted RSP lies in the thread's stack with PE_ASYNC_STACK_NEED bytes below it;
 *   6. the CAS REQUESTED -> ACCEPTED succeeds (the requester has not withdrawn).
 * Then it rewrites the ucontext: skip the 128-byte red zone, push the interrupted RIP, and set RIP
 * to pe_trampoline. When the handler returns, the kernel restores every register from the
 * ucontext and the thread runs the trampoline (pe_trampoline_amd64.c).
 *
 * Everything here is async-signal-safe: atomics, gettid/getpid/futex syscalls, no allocation, no
 * locks; errno is saved and restored. The handler is installed SA_SIGINFO | SA_ONSTACK |
 * SA_RESTART with every signal blocked while it runs.
 */
#include "pe_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>

static struct sigaction pe_prev_action; /* what was installed before us: chained to */

/* Run the handler that was installed before ours. Signal handler only. */
static void pe_chain(int sig, siginfo_t *si, void *uc)
{
    if (pe_prev_action.sa_flags & SA_SIGINFO) {
        if (pe_prev_action.sa_sigaction)
            pe_prev_action.sa_sigaction(sig, si, uc);
    } else if (pe_prev_action.sa_handler != SIG_DFL && pe_prev_action.sa_handler != SIG_IGN) {
        pe_prev_action.sa_handler(sig);
    }
    /* SIG_DFL for SIGURG is "ignore". */
}

PE_HIDDEN const int pe_signal_magic = 0x50524545;

/* Send thread tid our preemption signal, marked as ours (SI_QUEUE, our pid, si_value pointing
 * at pe_signal_magic). Returns 0 or an errno. Any thread; async-signal-safe. */
PE_HIDDEN int pe_signal_send(int32_t tid)
{
    if (tid == 0)
        return ESRCH;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = PE_SIG;
    si.si_code = SI_QUEUE;
    si.si_pid = getpid();
    si.si_uid = getuid();
    si.si_value.sival_ptr = (void *)&pe_signal_magic;
    if (syscall(SYS_rt_tgsigqueueinfo, si.si_pid, tid, PE_SIG, &si) != 0)
        return errno;
    return 0;
}

/* 1 when the signal was sent by a preempt requester. Signal handler only. */
static int pe_is_our_signal(const siginfo_t *si)
{
    return si->si_code == SI_QUEUE && si->si_pid == getpid() && si->si_value.sival_ptr == (void *)&pe_signal_magic;
}

/* Rule 1: the registered thread this request is for, or NULL. Signal handler only. */
static pe_thread_t *pe_want_async_preempt(uint32_t *w)
{
    pe_thread_t *t = pe_thread_by_tid(pe_gettid());
    if (!t)
        return NULL;
    *w = atomic_load(&t->susp);
    return PE_SUSP_ST(*w) == PE_SUSP_REQUESTED ? t : NULL;
}

/* Rules 2-5. Signal handler only. */
static int pe_is_async_safe_point(pe_thread_t *t, const ucontext_t *uc)
{
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (here >= t->stack_lo && here < t->stack_hi)
        return 0;
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    if (!pe_regions_contains(pc))
        return 0;
    if (pe_py_holds_gil(t->tstate))
        return 0;
    if (sp > t->stack_hi || sp < t->stack_lo + PE_ASYNC_STACK_NEED + pe_cpu_frame_bytes)
        return 0;
    return 1;
}

/* Make the interrupted context call pe_trampoline: skip the red zone, push RIP. Handler only. */
static void pe_push_call(ucontext_t *uc)
{
    greg_t *g = uc->uc_mcontext.gregs;
    uintptr_t sp = (uintptr_t)g[REG_RSP] - PE_RED_ZONE_BYTES - 8;
    PE_VALGRIND_MAKE_STACK(sp, 8);
    *(uint64_t *)sp = (uint64_t)g[REG_RIP];
    g[REG_RSP] = (greg_t)sp;
    g[REG_RIP] = (greg_t)(uintptr_t)pe_trampoline;
}

/* The SIGURG handler. */
static void pe_sig_handler(int sig, siginfo_t *si, void *ucv)
{
    int saved_errno = errno;
    uint32_t w = 0;
    pe_thread_t *t;
    if (!pe_is_our_signal(si)) {
        pe_chain(sig, si, ucv);
    } else if ((t = pe_want_async_preempt(&w)) && pe_is_async_safe_point(t, (ucontext_t *)ucv) &&
               atomic_compare_exchange_strong(&t->susp, &w,
                                              PE_SUSP(PE_SUSP_GEN(w), PE_SUSP_KIND(w), PE_SUSP_ACCEPTED))) {
        pe_push_call((ucontext_t *)ucv);
    } else {
        if (t)
            atomic_fetch_add_explicit(&t->declined, 1, memory_order_relaxed);
        /* Not at an async safe-point (or a retry overtaken by the request it repeats). If this
         * is the M with a synchronous request outstanding, trip SLOT from here: on the M the
         * interpreter sets its eval breaker, and a blocking call returns EINTR and runs
         * handlers. */
        pe_sysmon_on_signal(pe_gettid());
    }
    errno = saved_errno;
}

/* Install the handler, remembering the previous one. pe_init only. Returns 0 or -1. */
PE_HIDDEN int pe_signal_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = pe_sig_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigfillset(&sa.sa_mask);
    return sigaction(PE_SIG, &sa, &pe_prev_action);
}

/* 1 while our handler is the installed one. Any thread. */
int pe_signal_handler_installed(void)
{
    struct sigaction cur;
    if (sigaction(PE_SIG, NULL, &cur) != 0)
        return 0;
    return (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == pe_sig_handler;
}
