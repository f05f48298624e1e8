/*
 * pe_bench.c — the yardstick for suspension latency: a bare signal round trip.
 *
 * Suspending a thread costs one signal delivery plus the handler's checks, the trampoline's
 * XSAVE and the futex hand-off. To show how much of it is the signal itself, the benchmark
 * measures, in the same run and to the same thread, a plain tgkill whose handler only stamps the
 * time and wakes the sender. SIGUSR2 is used (with the previous action restored afterwards)
 * because our SIGURG handler would chain a request-less signal to the user's handler.
 */
#include "pe_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>

/* SIGUSR2 handler for the benchmark: stamp and acknowledge. Async-signal-safe. */
static void pe_bench_handler(int sig)
{
    (void)sig;
    int saved_errno = errno;
    pe_thread_t *t = pe_thread_by_tid(pe_gettid());
    if (t) {
        atomic_store(&t->bench_ns, pe_now_ns());
        atomic_store(&t->bench_ack, 1);
        pe_futex_wake(&t->bench_ack);
    }
    errno = saved_errno;
}

/* n round trips; out[2i] = one-way (send -> handler running), out[2i+1] = round trip (send ->
 * sender sees the acknowledgement). Any thread but the target. */
int pe_bench_signal_rtt(int32_t slot, uint32_t gen, int n, int64_t *out)
{
    pe_thread_t *t = pe_thread_lookup(slot, gen);
    if (!t)
        return PE_EXITED;
    if (atomic_load(&t->tid) == pe_gettid())
        return PE_SELF;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = pe_bench_handler;
    sa.sa_flags = SA_ONSTACK | SA_RESTART;
    sigfillset(&sa.sa_mask);
    if (sigaction(SIGUSR2, &sa, &old) != 0)
        return PE_INVALID;
    int rc = PE_OK;
    for (int i = 0; i < n && rc == PE_OK; i++) {
        atomic_store(&t->bench_ack, 0);
        int32_t tid = atomic_load(&t->tid);
        int64_t t0 = pe_now_ns();
        if (tid == 0 || syscall(SYS_tgkill, getpid(), tid, SIGUSR2) != 0) {
            rc = PE_EXITED;
            break;
        }
        while (atomic_load(&t->bench_ack) == 0) {
            if (pe_now_ns() - t0 > 1000000000LL) {
                rc = PE_TIMEOUT;
                break;
            }
            pe_futex_wait(&t->bench_ack, 0, 100000000);
        }
        int64_t t1 = pe_now_ns();
        out[2 * i] = atomic_load(&t->bench_ns) - t0;
        out[2 * i + 1] = t1 - t0;
    }
    sigaction(SIGUSR2, &old, NULL);
    return rc;
}
