/*
 * pe_async.c — asynchronous preemption of a goroutine in native code (Go's asyncPreempt).
 *
 * The path, end to end (docs/design.md §2; Go's runtime/preempt.go calls it "asynchronous
 * safe-points"):
 *
 *   1. sysmon (pe_sysmon.c) sees that the running goroutine has used its slice while the M runs
 *      no bytecode, claims the M for a goroutine preemption (pe_thread_claim_preempt, below:
 *      IDLE -> REQUESTED with kind PE_REQ_PREEMPT) and sends it SIGURG;
 *   2. the handler (pe_signal.c) accepts only at an async safe-point (the interrupted PC is in a
 *      region registered as preemptible, pe_regions.c) and rewrites the ucontext so the thread
 *      resumes in the trampoline (pe_trampoline_amd64.c), which spills every register;
 *   3. the trampoline calls pe_async_preempt_entry (below), outside the handler. For a goroutine
 *      preemption it frees the thread's state word at once and runs the runtime's hook
 *      (_runtime/_asynchook.py, installed with pe_set_preempt_hook): the hook takes the GIL and
 *      parks the goroutine; other goroutines run on this thread, and may be preempted into
 *      their own trampolines, until this one is switched back in; the hook returns, the
 *      trampoline restores the registers and the native code goes on.
 *
 * The thread-suspension requests (preempt.threads: suspend/resume) share steps 1-3 with another
 * kind; their park, on the thread's futex, is pe_suspend.c's.
 */
#include "pe_internal.h"

#include <errno.h>

static pe_preempt_hook_t pe_preempt_hook;

/* Install the function the trampoline runs for PE_REQ_PREEMPT requests (NULL: none; sysmon then
 * never asks for async preemption). Any thread. */
void pe_set_preempt_hook(pe_preempt_hook_t hook)
{
    __atomic_store_n(&pe_preempt_hook, hook, __ATOMIC_RELEASE);
}

/* Ask t for an async preemption (IDLE -> REQUESTED, kind PREEMPT) if a hook is installed and async
 * preemption works here. Returns 1 when claimed; the caller then signals t. sysmon thread. */
PE_HIDDEN int pe_thread_claim_preempt(pe_thread_t *t)
{
    if (!__atomic_load_n(&pe_preempt_hook, __ATOMIC_ACQUIRE) || pe_unavailable_reason())
        return 0;
    uint32_t w = atomic_load(&t->susp);
    if (PE_SUSP_ST(w) != PE_SUSP_IDLE)
        return PE_SUSP_ST(w) == PE_SUSP_REQUESTED && PE_SUSP_KIND(w) == PE_REQ_PREEMPT;
    if (!atomic_compare_exchange_strong(&t->susp, &w, PE_SUSP(PE_SUSP_GEN(w), PE_REQ_PREEMPT, PE_SUSP_REQUESTED)))
        return 0;
    atomic_store(&t->req_ns, pe_now_ns());
    return 1;
}

/* Withdraw an async preemption request that was not taken (REQUESTED -> IDLE). sysmon thread. */
PE_HIDDEN void pe_thread_withdraw_preempt(pe_thread_t *t)
{
    uint32_t w = atomic_load(&t->susp);
    if (PE_SUSP_ST(w) == PE_SUSP_REQUESTED && PE_SUSP_KIND(w) == PE_REQ_PREEMPT)
        atomic_compare_exchange_strong(&t->susp, &w, PE_SUSP(PE_SUSP_GEN(w), PE_REQ_NONE, PE_SUSP_IDLE));
}

/* The trampoline's C half: runs on the preempted thread, outside the signal handler, with the
 * interrupted registers saved at regs and the extended state at xsave. Returns when the thread
 * may continue. Keeps errno (the interrupted code may be between a syscall and reading it). */
PE_HIDDEN void pe_async_preempt_entry(pe_gregs_t *regs, void *xsave)
{
    int saved_errno = errno;
    pe_thread_t *t = pe_thread_by_tid(pe_gettid());
    if (!t)
        PE_THROW("trampoline entered by an unregistered thread");
    uint32_t w = atomic_load(&t->susp);
    if (PE_SUSP_ST(w) != PE_SUSP_ACCEPTED)
        PE_THROW("trampoline entered without an accepted request");
    uint32_t gen = PE_SUSP_GEN(w);
    uint32_t kind = PE_SUSP_KIND(w);
    int64_t now = pe_now_ns();
    atomic_store(&t->parked_ns, now);
    atomic_store(&t->last_latency_ns, now - atomic_load(&t->req_ns));
    atomic_fetch_add(&t->accepted, 1);
    pe_preempt_hook_t hook = __atomic_load_n(&pe_preempt_hook, __ATOMIC_ACQUIRE);
    if (kind == PE_REQ_PREEMPT && hook) {
        /* A goroutine-level park: the hook switches greenlets, and other goroutines on this
         * same thread may be preempted into their own trampolines before this one resumes.
         * So the thread's state word is free again now; this frame and its XSAVE area live on
         * the goroutine's stack, which greenlet saves and restores with it. */
        atomic_store(&t->susp, PE_SUSP(gen, PE_REQ_NONE, PE_SUSP_IDLE));
        pe_futex_wake(&t->susp);
        int code = hook((int32_t)(t - pe_threads));
        if (code != PE_HOOK_CONTINUE)
            pe_py_raise_on_return(code);
        errno = saved_errno;
        return;
    }
    pe_suspend_park(t, gen, kind, regs, xsave);     /* an OS-thread suspension: pe_suspend.c */
    errno = saved_errno;
}
