/*
 * pe_suspend.c — suspending a registered thread at an async safe-point, and resuming it.
 *
 * This is Go's suspendG/resumeG for threads that run native code. A requester claims the target
 * (IDLE -> REQUESTED in the packed state word, see pe_internal.h), then sends it SIGURG with
 * rt_tgsigqueueinfo (pe_signal.c: si_value tells our requests from anybody's SIGURG). The handler (pe_signal.c) either declines — the thread is not at an async safe-point:
 * in libc, in the interpreter, holding the GIL, short of stack — or accepts (REQUESTED ->
 * ACCEPTED) and redirects the thread into the trampoline, whose C entry (pe_async.c) hands over
 * to pe_suspend_park below: it publishes the spill frame, marks the thread PARKED, and sleeps on
 * the state word until somebody resumes it. (A goroutine preemption, the other kind of request,
 * takes the same signal and trampoline but parks a goroutine, not the thread: pe_async.c.)
 *
 * A declined signal is not retried at once. The target may be in C code that does not restart
 * on EINTR (nanosleep, poll): a signal every few microseconds would keep it from ever finishing.
 * The requester backs off exponentially (20 us doubling to 10 ms) until its deadline, then
 * withdraws the request with a CAS (REQUESTED -> IDLE). If that CAS fails the handler accepted
 * just in time, and the requester waits the few microseconds until the thread is PARKED: the
 * request is never lost and never answered twice.
 *
 * The park itself is a futex wait on the state word, outside any signal handler: the thread has
 * already returned from the handler into the trampoline, so the code here may call anything that
 * does not need a lock held by the interrupted code (the contract of preemptible regions is that
 * they hold none; see pe_regions.c).
 */
#include "pe_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>

#define PE_BACKOFF_FIRST_NS 20000LL
#define PE_BACKOFF_MAX_NS 10000000LL

static _Atomic int pe_debug_scramble; /* testing aid: see pe_cpu_scramble_extended_state */

/* Testing aid: while on, every parked thread destroys its extended register state before it
 * returns to the trampoline, so only what the trampoline saved can come back. Any thread. */
void pe_debug_scramble_on_park(int on)
{
    atomic_store(&pe_debug_scramble, on);
}

/* Claim t for a request of this kind: IDLE -> REQUESTED. Waits out a RESUMING thread (it is a
 * few instructions from IDLE). Returns PE_OK, PE_EXITED, PE_BUSY or PE_TIMEOUT. Requester. */
static int pe_claim(pe_thread_t *t, uint32_t gen, int kind, int64_t deadline)
{
    for (;;) {
        uint32_t w = atomic_load(&t->susp);
        if (PE_SUSP_GEN(w) != (gen & PE_GEN_MASK))
            return PE_EXITED;
        switch (PE_SUSP_ST(w)) {
        case PE_SUSP_IDLE:
            if (atomic_compare_exchange_strong(&t->susp, &w, PE_SUSP(gen, kind, PE_SUSP_REQUESTED)))
                return PE_OK;
            continue;
        case PE_SUSP_RESUMING: {
            int64_t now = pe_now_ns();
            if (now >= deadline)
                return PE_TIMEOUT;
            pe_futex_wait(&t->susp, w, 1000000);
            continue;
        }
        default:
            return PE_BUSY;
        }
    }
}

/* Ask t to park and wait until it has, or until timeout_ns. *backoff_ns carries the retry
 * interval across calls (0: start afresh) so that a caller waiting in slices keeps backing off.
 * Any thread but t. */
int pe_thread_suspend(int32_t slot, uint32_t gen, int64_t timeout_ns, int64_t *backoff_ns)
{
    if (pe_unavailable_reason())
        return PE_UNAVAILABLE;
    pe_thread_t *t = pe_thread_lookup(slot, gen);
    if (!t)
        return PE_EXITED;
    if (atomic_load(&t->tid) == pe_gettid())
        return PE_SELF;
    int64_t start = pe_now_ns();
    int64_t deadline = timeout_ns < 0 ? INT64_MAX : start + timeout_ns;
    int rc = pe_claim(t, gen, PE_REQ_SUSPEND, deadline);
    if (rc != PE_OK)
        return rc;
    const uint32_t requested = PE_SUSP(gen, PE_REQ_SUSPEND, PE_SUSP_REQUESTED);
    atomic_store(&t->req_ns, start);
    int64_t backoff = *backoff_ns > 0 ? *backoff_ns : PE_BACKOFF_FIRST_NS;
    int send = 1;
    for (;;) {
        if (send) {
            if (pe_signal_send(atomic_load(&t->tid)) != 0) {
                /* The thread is exiting: its key destructor will free the slot. */
                uint32_t w = requested;
                atomic_compare_exchange_strong(&t->susp, &w, PE_SUSP(gen, PE_REQ_NONE, PE_SUSP_IDLE));
                return PE_EXITED;
            }
            atomic_fetch_add_explicit(&t->signals_sent, 1, memory_order_relaxed);
        }
        int64_t now = pe_now_ns();
        int64_t until = now + backoff < deadline ? now + backoff : deadline;
        for (;;) {
            uint32_t w = atomic_load(&t->susp);
            if (PE_SUSP_GEN(w) != (gen & PE_GEN_MASK))
                return PE_EXITED;
            uint32_t st = PE_SUSP_ST(w);
            if (st == PE_SUSP_PARKED)
                return PE_OK;
            if (st == PE_SUSP_ACCEPTED) { /* in the trampoline: parked within microseconds */
                pe_futex_wait(&t->susp, w, 1000000);
                continue;
            }
            if (st != PE_SUSP_REQUESTED)
                PE_THROW("suspend: state word changed under a pending request");
            now = pe_now_ns();
            if (now >= until)
                break;
            pe_futex_wait(&t->susp, w, until - now);
        }
        if (now >= deadline) {
            uint32_t w = requested;
            if (atomic_compare_exchange_strong(&t->susp, &w, PE_SUSP(gen, PE_REQ_NONE, PE_SUSP_IDLE))) {
                *backoff_ns = backoff;
                return PE_TIMEOUT;
            }
            send = 0; /* accepted at the last moment: wait for PARKED without another signal */
            deadline = INT64_MAX;
            continue;
        }
        backoff = backoff * 2 < PE_BACKOFF_MAX_NS ? backoff * 2 : PE_BACKOFF_MAX_NS;
        send = 1;
    }
}

/* Let a parked thread continue. Any thread. */
int pe_thread_resume(int32_t slot, uint32_t gen)
{
    pe_thread_t *t = pe_thread_lookup(slot, gen);
    if (!t)
        return PE_EXITED;
    for (;;) {
        uint32_t w = atomic_load(&t->susp);
        if (PE_SUSP_GEN(w) != (gen & PE_GEN_MASK))
            return PE_EXITED;
        if (PE_SUSP_ST(w) != PE_SUSP_PARKED || PE_SUSP_KIND(w) != PE_REQ_SUSPEND)
            return PE_NOT_SUSPENDED;
        if (atomic_compare_exchange_strong(&t->susp, &w, PE_SUSP(gen, PE_SUSP_KIND(w), PE_SUSP_RESUMING))) {
            pe_futex_wake(&t->susp);
            return PE_OK;
        }
    }
}

/* Copy a parked thread's saved registers, and give its interrupted stack pointer. The spill
 * frame lies on the parked thread's own stack, its last field (the interrupted RIP the handler
 * pushed) just below the red zone the handler skipped: so the interrupted RSP is the frame's
 * address + the frame + the red zone, the value the trampoline's `ret $128` restores. (The
 * frame's address, not the caller's copy: the copy is the caller's memory.) Any thread. */
int pe_thread_registers(int32_t slot, uint32_t gen, pe_gregs_t *out, uint32_t *mxcsr,
                        uint64_t *rsp)
{
    pe_thread_t *t = pe_thread_lookup(slot, gen);
    if (!t)
        return PE_EXITED;
    uint64_t parks = atomic_load(&t->accepted);
    uint32_t w = atomic_load(&t->susp);
    if (PE_SUSP_ST(w) != PE_SUSP_PARKED)
        return PE_NOT_SUSPENDED;
    pe_gregs_t *regs = atomic_load(&t->regs);
    const unsigned char *area = atomic_load(&t->xsave);
    if (!regs || !area)
        return PE_NOT_SUSPENDED;
    memcpy(out, regs, sizeof *out);
    memcpy(mxcsr, area + 24, sizeof *mxcsr); /* legacy region: MXCSR at byte 24 (FXSAVE too) */
    *rsp = (uint64_t)(uintptr_t)regs + sizeof *regs + PE_RED_ZONE_BYTES;
    if (atomic_load(&t->susp) != w || atomic_load(&t->accepted) != parks)
        return PE_NOT_SUSPENDED; /* resumed while we copied: the copy may be torn */
    return PE_OK;
}

/* Request -> parked latency of the last suspension, or -1. Any thread. */
int64_t pe_thread_last_latency_ns(int32_t slot, uint32_t gen)
{
    pe_thread_t *t = pe_thread_lookup(slot, gen);
    return t ? atomic_load(&t->last_latency_ns) : -1;
}

/* The OS-thread half of the trampoline entry (pe_async.c's pe_async_preempt_entry hands over
 * here for every request but a goroutine preemption): publishes the spill frame, marks t PARKED
 * and sleeps on its state word until pe_thread_resume. Runs on t, outside the signal handler. */
PE_HIDDEN void pe_suspend_park(pe_thread_t *t, uint32_t gen, uint32_t kind, pe_gregs_t *regs,
                               void *xsave)
{
    PE_VALGRIND_MAKE_DEFINED(regs, sizeof *regs);   /* the requester reads it (pe_internal.h) */
    atomic_store(&t->regs, regs);
    atomic_store(&t->xsave, xsave);
    atomic_store(&t->susp, PE_SUSP(gen, kind, PE_SUSP_PARKED));
    pe_futex_wake(&t->susp);
    for (;;) {
        uint32_t w = atomic_load(&t->susp);
        if (PE_SUSP_ST(w) != PE_SUSP_PARKED)
            break;
        pe_futex_wait(&t->susp, w, -1);
    }
    if (atomic_load(&pe_debug_scramble))
        pe_cpu_scramble_extended_state();
    atomic_store(&t->regs, NULL);
    atomic_store(&t->xsave, NULL);
    atomic_store(&t->susp, PE_SUSP(gen, PE_REQ_NONE, PE_SUSP_IDLE));
    pe_futex_wake(&t->susp);
}
