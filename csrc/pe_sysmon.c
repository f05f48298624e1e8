/*
 * pe_sysmon.c — the monitor thread: Go's sysmon/retake for one M.
 *
 * sysmon is a pthread that never takes the GIL and never runs Python. It reads plain shared
 * memory that the M writes (pe_sysmon_shared_t: a switch counter, whether a goroutine is running,
 * the earliest timer deadline, the number of the last request the hook took) and decides when
 * the running goroutine must give up the CPU (docs/design.md §2, §4):
 *
 *   1. slice: the M's switch counter (schedtick) has not moved for a whole slice — as in Go's
 *      retake, sysmon notes when it first saw each schedtick value, so a goroutine runs between
 *      one and two slices;
 *   2. timer: the earliest timer the hub published is due while a goroutine computes (Go does
 *      not do this): the goroutine is preempted at once so the sleeper wakes on time. To keep
 *      many timers from becoming a preemption storm, timer-driven requests are at least
 *      PE_TIMER_QUANTUM_NS apart: deadlines closer than that are coalesced into one switch to
 *      the hub, which runs every timer that is due;
 *   3. I/O: once the goroutine has run for an I/O slice (0.5 ms), an fd is ready in the
 *      poller's epoll (a poll(), never epoll_wait, which would take edge-triggered events from
 *      the hub) or an I/O-woken goroutine waits at the head of the run queue (_netpoll.py
 *      invariant 6); a bridge publishes its event loop's epoll fd the same way
 *      (pe_sysmon_watch_epoll).
 *
 * A request is numbered (req_seq) and made by tripping SLOT, a signal number used only as a slot
 * in CPython's handler table: PyErr_SetInterruptEx(SLOT) marks it pending; on 3.10-3.12 sysmon
 * also pokes the interpreter's eval_breaker (pe_pyoffsets.c explains why). At its next eval-
 * breaker check the M runs the Python-level SLOT handler, the runtime's preemption hook, which
 * compares req_seq with what it consumed (stale requests are ignored: a request never yields
 * twice) and acknowledges (ack_seq).
 *
 * A request not taken is not forgotten (invariant 7). Every PE_REPOKE_NS (100 us) it is tripped again (a
 * poke can race with the M recomputing its breaker); after PE_GRACE_NS (200 us) the M is presumably in
 * native code or a blocking call, where no bytecode check happens, and sysmon sends it SIGURG:
 * the handler, running on the M — which *can* handle signals — trips SLOT itself, and the signal
 * interrupts blocking calls that CPython retries after running handlers (time.sleep, select;
 * not a futex wait such as Lock.acquire: the handler is SA_RESTART, and the kernel restarts
 * it). Those signals back off exponentially (to PE_SIGNAL_BACKOFF_MAX_NS) so that C
 * code that does not retry on EINTR still finishes. A switch on the M (schedtick moved) answers
 * any outstanding request.
 *
 * A slice ends without any request when nothing else could run (Go's retake also leaves a P
 * alone whose run queue is empty): the run queue and runnext are empty, no fd or offload result
 * is ready in the poller's epoll, no timer is due and no signal handler left work for the hub.
 * A request then would only switch the goroutine out and straight back in — and, were it in
 * native code or a blocking call, hand C code that does not retry EINTR (usleep, nanosleep,
 * poll through ctypes) a spurious EINTR. While the M runs no bytecode the run queue cannot
 * change (only the M touches it), so sysmon reads it without locks: racy reads of aligned
 * words the M writes, where a stale answer costs one slice of delay, never correctness.
 *
 * A Python signal handler that CPython has tripped but not run is work too. Its C handler sets
 * CPython's tripped word wherever the signal landed, but the Python handler runs only at a
 * bytecode on the M: not while the goroutine is inside a long native call, nor while the hub
 * sleeps in epoll if the signal went to another thread. When the word stays set for a grace
 * period while no request of ours is outstanding, sysmon first pokes eval_breaker on 3.10-3.12
 * (the M may be running bytecode whose breaker was recomputed to 0, as with requests; that also
 * settles a trip of ours that landed after the hook acked); if it is still set a grace later,
 * sysmon asks for an async preemption and signals the M (backing off like the requests): the
 * trampoline takes the GIL and the handler runs in the runtime's hook; elsewhere the signal
 * makes a blocking call return EINTR and CPython runs the handler. Ctrl-C thus reaches a program whose goroutines loop in native code.
 *
 * sysmon blocks every signal (so SIGINT and friends go to the M) and sets its timer slack to
 * 1 ns so its sleeps end when asked. It sleeps on a futex (kick) so the M can wake it when it
 * publishes an earlier deadline or stops.
 *
 * (An alternative would be a POSIX timer per slice delivering a signal to the M. Rejected: it
 * interrupts the M every slice even when nothing else is runnable, costs a signal where a poke
 * suffices, and cannot follow the timer heap without a syscall per change.)
 */
#include "pe_internal.h"

#include <errno.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define PE_REPOKE_NS 100000LL
#define PE_GRACE_NS 200000LL
#define PE_GRACE_GIL_FREE_NS 10000LL  /* nobody holds the GIL: the M runs no bytecode */
#define PE_SIGNAL_BACKOFF_MAX_NS 50000000LL
#define PE_IDLE_SLEEP_NS 20000000LL    /* also how late a signal that missed the M is seen */
#define PE_SIG_GRACE_NS 1000000LL      /* a tripped Python handler not run within this: kick */
#define PE_TIMER_QUANTUM_NS 200000LL  /* at most one timer-driven request per 200 us */

static pe_sysmon_shared_t pe_sm;        /* the shared words (one M per process in version 1) */
static pthread_t pe_sm_thread;
static int pe_sm_started;
static int pe_sm_slot_signum;
static int64_t pe_sm_slice_ns;
static int64_t pe_sm_io_slice_ns;       /* a G runs at least this long before I/O preempts it */
static _Atomic int32_t pe_sm_m_tid;     /* the M's kernel tid, for SIGURG escalation */
static int32_t pe_sm_m_slot;            /* the M's registry handle, for async preemption */
static uint32_t pe_sm_m_gen;
static _Atomic int pe_sm_stop;
static int pe_sm_idle;                  /* sysmon sleeps with nothing running (seq_cst, see
                                         * pe_sysmon_set_running) */
static void *pe_sm_breaker;             /* eval_breaker to poke (3.10-3.12) or NULL */
static const int *pe_sm_gil_locked;     /* the GIL's locked word, or NULL (pe_pyoffsets.c) */
static int64_t pe_sm_grace_ns = PE_GRACE_NS; /* PREEMPT_SYSMON_GRACE_US overrides (tests) */
static pthread_mutex_t pe_sm_mu = PTHREAD_MUTEX_INITIALIZER; /* start/stop only */
static const int *pe_sm_sig_tripped;    /* CPython's "a signal is tripped" word, or NULL */
/* Where "another goroutine could run" is read (pe_sysmon_watch_work); NULL: assume it could. */
static const ssize_t *_Atomic pe_sm_runq_len;
static void *const *_Atomic pe_sm_runnext;
static void *pe_sm_none;
static _Atomic int pe_sm_epfd = -1;
static const uint64_t *_Atomic pe_sm_iofront; /* I/O-woken Gs queued, not yet run (_netpoll 6) */

#define LOAD(f) __atomic_load_n(&pe_sm.f, __ATOMIC_ACQUIRE)
#define STORE(f, v) __atomic_store_n(&pe_sm.f, (v), __ATOMIC_RELEASE)
#define BUMP(f) __atomic_fetch_add(&pe_sm.f, 1, __ATOMIC_RELAXED)

/* The shared words. Any thread. */
pe_sysmon_shared_t *pe_sysmon_shared(void)
{
    return &pe_sm;
}

/* 1: requests poke eval_breaker (3.10-3.12); 0: PyErr_SetInterruptEx alone suffices (3.13+).
 * Any thread. */
int pe_sysmon_poke_mode(void)
{
    return pe_py_eval_breaker_addr() != NULL;
}

/* Make CPython run the SLOT handler on the M soon. sysmon thread or a handler on the M. */
static void pe_sysmon_trip(void)
{
    pe_py_trip_signal(pe_sm_slot_signum);
    if (pe_sm_breaker)
        __atomic_store_n((int *)pe_sm_breaker, 1, __ATOMIC_RELAXED);
}

/* Issue request number req_seq+1. sysmon thread only. */
static void pe_sysmon_request(int64_t now, uint32_t reason, uint64_t tick)
{
    STORE(req_ns, now);
    STORE(req_tick, tick);
    STORE(req_reason, reason);
    STORE(req_seq, LOAD(req_seq) + 1);
    BUMP(n_requests);
    if (reason == PE_REASON_TIMER)
        BUMP(n_timer_requests);
    else if (reason == PE_REASON_IO)
        BUMP(n_io_requests);
    pe_sysmon_trip();
}

/* Send the M our signal (marked, see pe_signal.c). sysmon thread only. */
static void pe_sysmon_signal_m(void)
{
    if (pe_signal_send(atomic_load(&pe_sm_m_tid)) == 0)
        BUMP(n_signals);
}

/* Called by the SIGURG handler for one of our signals on thread t. If t is the M and a sync
 * request is outstanding, trip SLOT from here: on the M the interpreter sets its breaker
 * properly, and a blocking call returns EINTR and runs handlers. Returns 1 if it acted.
 * Async-signal-safe. */
PE_HIDDEN int pe_sysmon_on_signal(int32_t tid)
{
    if (tid == 0 || tid != atomic_load(&pe_sm_m_tid))
        return 0;
    if (LOAD(req_seq) == LOAD(ack_seq))
        return 0;
    pe_sysmon_trip();
    return 1;
}

/* Whether the hub's epoll has an event ready: 1, 0, or -1 on error. poll() on the epoll fd,
 * never epoll_wait(): that would take the events, and an edge-triggered fd's (_netpoll.py
 * invariant 2) would then be gone for the hub. Polling an epoll fd only looks at its ready
 * list. sysmon thread only. */
static int pe_sysmon_epoll_ready(int epfd)
{
    struct pollfd p = {.fd = epfd, .events = POLLIN};
    return poll(&p, 1, 0);
}

/* 1 when a goroutine other than the running one could run, or the hub has work: the switch a
 * request causes would do something. Racy reads by design (see the top). sysmon thread only. */
static int pe_sysmon_other_work(int64_t now, int64_t deadline)
{
    if (deadline <= now || LOAD(want_hub))
        return 1;
    const ssize_t *len = atomic_load(&pe_sm_runq_len);
    void *const *rn = atomic_load(&pe_sm_runnext);
    if (!len || !rn)
        return 1;
    if (__atomic_load_n(len, __ATOMIC_RELAXED) > 0)
        return 1;
    void *next = __atomic_load_n(rn, __ATOMIC_RELAXED);
    if (next && next != pe_sm_none)
        return 1;
    int epfd = atomic_load(&pe_sm_epfd);
    if (epfd >= 0 && pe_sysmon_epoll_ready(epfd) != 0)
        return 1; /* ready, or an error (a closed fd): let the hub find out */
    return 0;
}

/* 1 when I/O has work for the hub or the run queue: a G that I/O woke waits at the run queue's
 * head (_netpoll.py invariant 6), or the hub's epoll has something ready — a watched fd, or the
 * eventfd (an offload call finished, a signal handler left hub work). Looking at the epoll does
 * not consume what the hub will see. Go's sysmon polls the network the same way when nobody has
 * for a while. Racy read of a word the M writes (see the top). sysmon thread only. */
static int pe_sysmon_io_ready(void)
{
    const uint64_t *iofront = atomic_load(&pe_sm_iofront);
    if (iofront && __atomic_load_n(iofront, __ATOMIC_RELAXED) > 0)
        return 1;
    int epfd = atomic_load(&pe_sm_epfd);
    return epfd >= 0 && pe_sysmon_epoll_ready(epfd) > 0;
}

/* 1 while CPython has a Python-level signal handler tripped and not yet run. sysmon only. */
static int pe_sysmon_signal_tripped(void)
{
    return pe_sm_sig_tripped && __atomic_load_n(pe_sm_sig_tripped, __ATOMIC_RELAXED) != 0;
}

int pe_sysmon_watch_work(void *runq, void *sched, void *runnext_descr, void *none, int epfd,
                         const uint64_t *iofront)
{
    if (!runq || !sched || !runnext_descr) {
        atomic_store(&pe_sm_runq_len, NULL);
        atomic_store(&pe_sm_runnext, NULL);
        atomic_store(&pe_sm_epfd, -1);
        atomic_store(&pe_sm_iofront, NULL);
        return PE_OK;
    }
    atomic_store(&pe_sm_iofront, iofront);
    ssize_t off = pe_py_member_offset(runnext_descr);
    if (off < 0)
        return PE_INVALID;
    pe_sm_none = none;
    atomic_store(&pe_sm_epfd, epfd);
    atomic_store(&pe_sm_runnext, (void *const *)((char *)sched + off));
    atomic_store(&pe_sm_runq_len, pe_py_varsize_addr(runq));
    return PE_OK;
}

int pe_sysmon_watch_epoll(int epfd)
{
    atomic_store(&pe_sm_runq_len, NULL);
    atomic_store(&pe_sm_runnext, NULL);
    atomic_store(&pe_sm_iofront, NULL);
    atomic_store(&pe_sm_epfd, epfd >= 0 ? epfd : -1);
    return PE_OK;
}

/* The monitor loop. sysmon thread only. */
static void *pe_sysmon_main(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    prctl(PR_SET_NAME, "preempt-sysmon", 0, 0, 0);

    uint64_t seen_tick = LOAD(schedtick);
    int64_t seen_when = pe_now_ns();
    uint64_t req_tick = 0;           /* schedtick when the outstanding request was made */
    int async_claimed = 0;           /* we asked the M for an async preemption */
    int64_t last_timer_req = 0;      /* when the last timer-driven request was made */
    int64_t next_io_look = 0;        /* when to look at the hub's epoll again while a G runs */
    int was_pending = 0;             /* a request was outstanding at the previous look */
    int64_t next_repoke = 0, next_signal = 0, signal_backoff = PE_GRACE_NS;
    int64_t sig_seen = 0;            /* when a tripped, unrun Python handler was first seen */
    int64_t sig_next = 0, sig_backoff = PE_SIG_GRACE_NS;
    int sig_claimed = 0;             /* we asked for an async preemption for that handler */
    int sig_poked = 0;               /* we poked eval_breaker for it (3.10-3.12) */

    while (!atomic_load(&pe_sm_stop)) {
        /* The futex value the sleep below waits on is read before any shared word: a kick that
         * lands after this read (a deadline published, running turned on) ends that sleep.
         * Read just before the sleep, a kick between the reads of the words and it was lost:
         * sysmon slept a whole slice past a deadline published meanwhile. */
        uint32_t k = LOAD(kick);
        int64_t now = pe_now_ns();
        uint64_t tick = LOAD(schedtick);
        if (tick != seen_tick) {
            seen_tick = tick;
            seen_when = now;
        }
        int running = LOAD(running) != 0;
        uint64_t rseq = LOAD(req_seq);
        int pending = rseq != LOAD(ack_seq) && tick == req_tick;
        int64_t deadline = LOAD(next_deadline_ns);
        int64_t wake = now + PE_IDLE_SLEEP_NS;

        if (!pending && was_pending) {
            /* answered: the hook is switching the goroutine out (or a switch answered it); a
             * new slice starts now, not when the answered request was made */
            seen_when = now;
        }
        was_pending = pending;
        if (!pending && async_claimed) {
            /* answered (hook ran, or the M switched): withdraw the async request if untaken */
            pe_thread_t *m = pe_thread_lookup(pe_sm_m_slot, pe_sm_m_gen);
            if (m)
                pe_thread_withdraw_preempt(m);
            async_claimed = 0;
        }
        if (pending) {
            int64_t age = now - LOAD(req_ns);
            if (pe_sm_gil_locked && __atomic_load_n(pe_sm_gil_locked, __ATOMIC_RELAXED) == 0 &&
                next_signal > LOAD(req_ns) + PE_GRACE_GIL_FREE_NS && signal_backoff == pe_sm_grace_ns)
                next_signal = LOAD(req_ns) + PE_GRACE_GIL_FREE_NS; /* first signal only */
            if (age > LOAD(max_pending_ns))
                STORE(max_pending_ns, age);
            if (now >= next_signal) {
                /* The M is in native code or a blocking call. If it is in a registered region
                 * without the GIL, the handler preempts it asynchronously (kind PREEMPT); else
                 * the handler trips SLOT from the M, interrupting a blocking call. */
                pe_thread_t *m = pe_thread_lookup(pe_sm_m_slot, pe_sm_m_gen);
                if (m && pe_thread_claim_preempt(m))
                    async_claimed = 1;
                pe_sysmon_signal_m();
                next_signal = now + signal_backoff;
                signal_backoff = signal_backoff * 2 < PE_SIGNAL_BACKOFF_MAX_NS ? signal_backoff * 2
                                                                                : PE_SIGNAL_BACKOFF_MAX_NS;
            } else if (now >= next_repoke) {
                pe_sysmon_trip();
                BUMP(n_repokes);
                next_repoke = now + PE_REPOKE_NS;
            }
            wake = next_repoke < next_signal ? next_repoke : next_signal;
        } else if (running && now - seen_when >= pe_sm_slice_ns && deadline > now &&
                   !pe_sysmon_other_work(now, deadline)) {
            /* the slice is over but nothing else could run: let it go on, look again in a slice */
            BUMP(n_alone);
            seen_when = now;
            wake = now + pe_sm_slice_ns;
        } else if (running && (now - seen_when >= pe_sm_slice_ns ||
                               (deadline <= now && now - last_timer_req >= PE_TIMER_QUANTUM_NS) ||
                               (now - seen_when >= pe_sm_io_slice_ns && now >= next_io_look &&
                                (next_io_look = now + pe_sm_io_slice_ns, pe_sysmon_io_ready())))) {
            /* The slice is over, a timer is due, or I/O became ready after the G had run for an
             * I/O slice: the switch goes through the hub, which polls (_park.yield_preempted),
             * and the G the I/O woke runs first (_netpoll.py invariant 6). */
            int slice_over = now - seen_when >= pe_sm_slice_ns;
            int timer_due = deadline <= now && now - last_timer_req >= PE_TIMER_QUANTUM_NS;
            uint32_t reason = slice_over ? PE_REASON_SLICE
                              : timer_due ? PE_REASON_TIMER : PE_REASON_IO;
            if (reason == PE_REASON_TIMER)
                last_timer_req = now;
            pe_sysmon_request(now, reason, tick);
            req_tick = tick;
            seen_when = now; /* the next slice request for this tick is one slice away */
            next_repoke = now + PE_REPOKE_NS;
            next_signal = now + pe_sm_grace_ns;
            if (pe_sm_gil_locked && __atomic_load_n(pe_sm_gil_locked, __ATOMIC_RELAXED) == 0)
                next_signal = now + PE_GRACE_GIL_FREE_NS;
            signal_backoff = pe_sm_grace_ns;
            wake = next_repoke < next_signal ? next_repoke : next_signal;
        } else if (running) {
            int64_t end = seen_when + pe_sm_slice_ns;
            int64_t due = deadline;
            if (due <= now) /* due, but a timer request was made less than a quantum ago */
                due = last_timer_req + PE_TIMER_QUANTUM_NS;
            wake = end < due ? end : due;
            if (atomic_load(&pe_sm_epfd) >= 0) { /* the next look at the hub's epoll */
                int64_t turn_end = seen_when + pe_sm_io_slice_ns;
                int64_t io = turn_end > next_io_look ? turn_end : next_io_look;
                if (io < wake)
                    wake = io;
            }
        }
        if (!pending && pe_sysmon_signal_tripped()) {
            /* a Python handler waits for a bytecode on the M that does not come (see the top) */
            if (!sig_seen) {
                sig_seen = now;
                sig_next = now + PE_SIG_GRACE_NS;
                sig_backoff = PE_SIG_GRACE_NS;
                sig_poked = 0;
            } else if (now >= sig_next && pe_sm_breaker && !sig_poked) {
                /* 3.10-3.12: the M may be running bytecode after all, its breaker recomputed
                 * to 0 under a trip of ours that came late or a signal that hit another
                 * thread. A poke settles that; only what is still tripped a grace later
                 * needs a signal. */
                __atomic_store_n((int *)pe_sm_breaker, 1, __ATOMIC_RELAXED);
                BUMP(n_repokes);
                sig_poked = 1;
                sig_next = now + PE_SIG_GRACE_NS;
            } else if (now >= sig_next) {
                pe_thread_t *m = pe_thread_lookup(pe_sm_m_slot, pe_sm_m_gen);
                if (m && running && pe_thread_claim_preempt(m))
                    sig_claimed = 1;
                pe_sysmon_signal_m();
                BUMP(n_signal_kicks);
                sig_backoff = sig_backoff * 2 < PE_SIGNAL_BACKOFF_MAX_NS ? sig_backoff * 2
                                                                         : PE_SIGNAL_BACKOFF_MAX_NS;
                sig_next = now + sig_backoff;
            }
            if (sig_next < wake)
                wake = sig_next;
        } else {
            sig_seen = 0;
            if (sig_claimed && pending) {
                async_claimed = 1; /* the outstanding request now owns the async claim */
            } else if (sig_claimed) {
                /* the handler ran: withdraw the async request if the M did not take it */
                pe_thread_t *m = pe_thread_lookup(pe_sm_m_slot, pe_sm_m_gen);
                if (m)
                    pe_thread_withdraw_preempt(m);
            }
            sig_claimed = 0;
        }
        int64_t d = wake - pe_now_ns();
        if (d > 0) {
            int idle = !running && !pending;
            if (idle) {
                /* Dekker with pe_sysmon_set_running: either the M sees idle and wakes us, or
                 * we see running here; its kick bump after our load of k ends the wait. */
                __atomic_store_n(&pe_sm_idle, 1, __ATOMIC_SEQ_CST);
                if (__atomic_load_n(&pe_sm.running, __ATOMIC_SEQ_CST)) {
                    __atomic_store_n(&pe_sm_idle, 0, __ATOMIC_SEQ_CST);
                    continue;
                }
            }
            pe_futex_wait((_Atomic uint32_t *)&pe_sm.kick, k, d);
            if (idle)
                __atomic_store_n(&pe_sm_idle, 0, __ATOMIC_SEQ_CST);
        }
    }
    return NULL;
}

/* Start sysmon for the M (the calling thread, registered as m_slot/m_gen). slot_signum is the
 * CPython handler slot the runtime installed its hook on; io_slice_ns the runtime's I/O slice
 * (_rules.IO_SLICE_NS: it is defined there, not here). M thread, GIL held or not. */
int pe_sysmon_start(int slot_signum, int64_t slice_ns, int64_t io_slice_ns, int32_t m_slot,
                    uint32_t m_gen)
{
    if (slice_ns <= 0 || io_slice_ns <= 0 || slot_signum <= 0 || slot_signum >= NSIG)
        return PE_INVALID;
    pe_thread_t *m = pe_thread_lookup(m_slot, m_gen);
    if (!m)
        return PE_EXITED;
    pthread_mutex_lock(&pe_sm_mu);
    if (pe_sm_started) {
        pthread_mutex_unlock(&pe_sm_mu);
        return PE_BUSY;
    }
    memset(&pe_sm, 0, sizeof pe_sm);
    pe_sm.next_deadline_ns = INT64_MAX;
    pe_sm_slot_signum = slot_signum;
    pe_sm_slice_ns = slice_ns;
    pe_sm_io_slice_ns = io_slice_ns;
    pe_sm_breaker = pe_py_eval_breaker_addr();
    pe_sm_gil_locked = pe_py_gil_locked_addr();
    pe_sm_sig_tripped = pe_py_signals_tripped_addr();
    const char *g = getenv("PREEMPT_SYSMON_GRACE_US");
    pe_sm_grace_ns = (g && atoll(g) > 0) ? atoll(g) * 1000 : PE_GRACE_NS;
    atomic_store(&pe_sm_m_tid, atomic_load(&m->tid));
    pe_sm_m_slot = m_slot;
    pe_sm_m_gen = m_gen;
    atomic_store(&pe_sm_stop, 0);
    if (pthread_create(&pe_sm_thread, NULL, pe_sysmon_main, NULL) != 0) {
        atomic_store(&pe_sm_m_tid, 0);
        pthread_mutex_unlock(&pe_sm_mu);
        return PE_INVALID;
    }
    pe_sm_started = 1;
    pthread_mutex_unlock(&pe_sm_mu);
    return PE_OK;
}

/* Wake sysmon now (an earlier deadline was published). Any thread. */
void pe_sysmon_kick(void)
{
    __atomic_fetch_add(&pe_sm.kick, 1, __ATOMIC_RELEASE);
    pe_futex_wake((_Atomic uint32_t *)&pe_sm.kick);
}

/* See preempt.h. The lost wake-up it prevents: sysmon saw running == 0 (the M in its hub),
 * went to sleep for PE_IDLE_SLEEP_NS, and the M then switched to a greenlet and published a
 * later deadline (no kick: only earlier ones kick): the greenlet ran up to 20 ms unwatched, and
 * a bridge's 1 ms heartbeat woke 10-20 ms late. M thread. */
void pe_sysmon_set_running(int running)
{
    __atomic_store_n(&pe_sm.running, running ? 1 : 0, __ATOMIC_SEQ_CST);
    if (!running)
        return;
    __atomic_fetch_add(&pe_sm.kick, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&pe_sm_idle, __ATOMIC_SEQ_CST))
        pe_futex_wake((_Atomic uint32_t *)&pe_sm.kick);
}

/* Stop and join sysmon (idempotent). M thread. */
void pe_sysmon_stop(void)
{
    pthread_mutex_lock(&pe_sm_mu);
    if (pe_sm_started) {
        atomic_store(&pe_sm_stop, 1);
        pe_sysmon_kick();
        pthread_join(pe_sm_thread, NULL);
        pe_thread_t *m = pe_thread_lookup(pe_sm_m_slot, pe_sm_m_gen);
        if (m)
            pe_thread_withdraw_preempt(m);
        pe_sm_started = 0;
        atomic_store(&pe_sm_m_tid, 0);
    }
    pe_sysmon_watch_work(NULL, NULL, NULL, NULL, -1, NULL);
    pthread_mutex_unlock(&pe_sm_mu);
}

/* fork() child: sysmon does not exist there. Child, single-threaded. */
PE_HIDDEN void pe_sysmon_atfork_child(void)
{
    pthread_mutex_init(&pe_sm_mu, NULL);
    pe_sm_started = 0;
    atomic_store(&pe_sm_m_tid, 0);
    /* the parent's objects exist here too, but the runtime re-publishes them when it restarts */
    atomic_store(&pe_sm_runq_len, NULL);
    atomic_store(&pe_sm_runnext, NULL);
    atomic_store(&pe_sm_epfd, -1);
    atomic_store(&pe_sm_iofront, NULL);
}
