/*
 * pe_wakeup.c — the wakeup-fd relay: the program's signal.set_wakeup_fd() fd gets a byte for the
 * program's signals only, never for preempt's own.
 *
 * CPython writes the signal number into the wakeup fd for every signal it trips
 * (Modules/signalmodule.c, trip_signal), and PyErr_SetInterruptEx trips through the same
 * function. sysmon makes every preemption request that way (PyErr_SetInterruptEx(SLOT),
 * pe_sysmon.c), and the pure-Python monitor's timer signal is a real signal with CPython's
 * handler: a program that set a wakeup fd found a byte in it per preemption — 50/s under run(),
 * 275/s under preempt.gevent — and an event loop selecting on it woke for nothing each time.
 *
 * So while a monitor runs and the program has a wakeup fd, CPython's wakeup fd is the write end
 * of a pipe of ours (_runtime/_signals.py sets it, and wraps signal.set_wakeup_fd so that the
 * program sets and reads its own fd as before), and this thread copies every byte read from the
 * pipe into the program's fd, except the numbers marked as preempt's (pe_wakeup_relay_skip):
 *
 *   1. Bytes keep their order, and reach the program's fd after CPython has marked the signal
 *      tripped (it writes the pipe after that), as a direct write would.
 *   2. The program's fd is written as CPython writes it: one byte, retried on EINTR, never
 *      blocking (CPython requires a non-blocking fd). A byte that does not fit is dropped, as
 *      CPython drops it; CPython also prints a warning then unless warn_on_full_buffer=False,
 *      which the relay does not (it has no interpreter to print with).
 *   3. pe_wakeup_relay_flush() returns once every byte written to the pipe before the call was
 *      copied: the runtime calls it before it stops relaying, so no signal of the program's that
 *      CPython wrote to the pipe is lost and no byte is written to an fd the program has since
 *      closed.
 *   4. The thread is started once (when a monitor first relays) and kept; it blocks every
 *      signal and sleeps in read(). A byte 0, which CPython never writes (there is no signal
 *      0), is the flush marker. In a fork() child the thread does not exist: the at-fork handler
 *      forgets the pipe (the parent's thread still reads it) and the runtime starts a new pipe
 *      and thread in the child.
 *
 * (An alternative would be to trip SLOT without trip_signal, writing CPython's tripped flags
 * directly. Rejected: on 3.10 and 3.11 those flags are statics of signalmodule.c, reachable only
 * through the symbol table of an unstripped interpreter. Another would be to point the wakeup fd
 * at -1 around each of sysmon's trips. Rejected: sysmon trips from its own thread, and a
 * set_wakeup_fd() by the program or a real signal landing inside that window would be lost.)
 */
#include "pe_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/prctl.h>

static pthread_mutex_t pe_wk_mu = PTHREAD_MUTEX_INITIALIZER; /* start/flush only */
static int pe_wk_started;              /* the thread runs (under pe_wk_mu) */
static int pe_wk_rfd = -1, pe_wk_wfd = -1; /* the pipe: the thread reads, CPython writes */
static int pe_wk_stale_rfd = -1, pe_wk_stale_wfd = -1; /* a fork child's copy of the parent's */
static pthread_t pe_wk_thread;
static _Atomic int pe_wk_target = -1;  /* the program's fd, or -1: bytes are dropped */
static _Atomic uint32_t pe_wk_flushed; /* flush markers the thread has read (a futex word) */
static _Atomic uint64_t pe_wk_skip;    /* bit n-1: signal n is preempt's, never copied */
static _Atomic uint64_t pe_wk_copied;  /* bytes copied to the program's fd (tests) */

/* Copy one byte to the program's fd, as trip_signal writes it (rule 2). Relay thread only. */
static void pe_wakeup_copy(unsigned char b)
{
    if (b >= 1 && b <= 64 && (atomic_load(&pe_wk_skip) >> (b - 1)) & 1)
        return;
    int fd = atomic_load(&pe_wk_target);
    if (fd < 0)
        return;
    ssize_t w;
    do
        w = write(fd, &b, 1);
    while (w < 0 && errno == EINTR);
    if (w == 1)
        atomic_fetch_add(&pe_wk_copied, 1);
}

/* The relay loop (rule 4). Relay thread only. */
static void *pe_wakeup_main(void *arg)
{
    int rfd = (int)(intptr_t)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    prctl(PR_SET_NAME, "preempt-wakeup", 0, 0, 0);
    unsigned char buf[256];
    for (;;) {
        ssize_t n = read(rfd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL; /* the pipe was closed: nothing to relay any more */
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == 0) {
                atomic_fetch_add(&pe_wk_flushed, 1);
                pe_futex_wake(&pe_wk_flushed);
            } else {
                pe_wakeup_copy(buf[i]);
            }
        }
    }
}

/* Start the relay thread (once) and return the pipe's write end, the fd CPython is to write:
 * non-blocking, as CPython requires, close-on-exec. -errno on failure. Main thread, where
 * signal.set_wakeup_fd runs. */
int pe_wakeup_relay_start(void)
{
    pthread_mutex_lock(&pe_wk_mu);
    if (pe_wk_started) {
        int w = pe_wk_wfd;
        pthread_mutex_unlock(&pe_wk_mu);
        return w;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        int e = errno;
        pthread_mutex_unlock(&pe_wk_mu);
        return -e;
    }
    int fl = fcntl(fds[1], F_GETFL);
    if (fl < 0 || fcntl(fds[1], F_SETFL, fl | O_NONBLOCK) != 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        pthread_mutex_unlock(&pe_wk_mu);
        return -e;
    }
    int rc = pthread_create(&pe_wk_thread, NULL, pe_wakeup_main, (void *)(intptr_t)fds[0]);
    if (rc != 0) {
        close(fds[0]);
        close(fds[1]);
        pthread_mutex_unlock(&pe_wk_mu);
        return -rc;
    }
    pthread_detach(pe_wk_thread);
    pe_wk_rfd = fds[0];
    pe_wk_wfd = fds[1];
    pe_wk_started = 1;
    pthread_mutex_unlock(&pe_wk_mu);
    return fds[1];
}

/* Where copied bytes go: the program's wakeup fd, or -1 (dropped). Any thread. */
void pe_wakeup_relay_target(int fd)
{
    atomic_store(&pe_wk_target, fd < 0 ? -1 : fd);
}

/* Mark signal signum as preempt's own (on: 1) or not: its bytes are never copied. Any thread. */
void pe_wakeup_relay_skip(int signum, int on)
{
    if (signum < 1 || signum > 64)
        return;
    uint64_t bit = (uint64_t)1 << (signum - 1);
    if (on)
        atomic_fetch_or(&pe_wk_skip, bit);
    else
        atomic_fetch_and(&pe_wk_skip, ~bit);
}

/* Wait until the relay has copied every byte written to the pipe before this call (rule 3), at
 * most timeout_ns. PE_OK, PE_TIMEOUT, or PE_OK at once when the relay never started. Main
 * thread (cffi released the GIL). */
int pe_wakeup_relay_flush(int64_t timeout_ns)
{
    pthread_mutex_lock(&pe_wk_mu);
    int w = pe_wk_started ? pe_wk_wfd : -1;
    uint32_t seen = atomic_load(&pe_wk_flushed);
    int64_t end = pe_now_ns() + timeout_ns;
    int rc = PE_OK;
    if (w >= 0) {
        unsigned char zero = 0;
        /* the pipe is non-blocking: when it is full, wait for the relay to make room */
        while (write(w, &zero, 1) != 1) {
            if (errno != EINTR && errno != EAGAIN) {
                rc = PE_INVALID;
                break;
            }
            if (pe_now_ns() >= end) {
                rc = PE_TIMEOUT;
                break;
            }
            usleep(100);
        }
        while (rc == PE_OK && atomic_load(&pe_wk_flushed) == seen) {
            int64_t left = end - pe_now_ns();
            if (left <= 0) {
                rc = PE_TIMEOUT;
                break;
            }
            pe_futex_wait(&pe_wk_flushed, seen, left);
        }
    }
    pthread_mutex_unlock(&pe_wk_mu);
    return rc;
}

/* Bytes copied to the program's fd since the process started. Any thread. */
uint64_t pe_wakeup_relay_copied(void)
{
    return atomic_load(&pe_wk_copied);
}

/* Close a fork child's copy of the parent's pipe, once CPython's wakeup fd no longer names it
 * (rule 4). Main thread. */
void pe_wakeup_relay_close_stale(void)
{
    pthread_mutex_lock(&pe_wk_mu);
    if (pe_wk_stale_rfd >= 0)
        close(pe_wk_stale_rfd);
    if (pe_wk_stale_wfd >= 0)
        close(pe_wk_stale_wfd);
    pe_wk_stale_rfd = pe_wk_stale_wfd = -1;
    pthread_mutex_unlock(&pe_wk_mu);
}

/* fork() child: the relay thread does not exist here, and the pipe is shared with the parent,
 * whose thread still reads it. The next pe_wakeup_relay_start makes a new pipe and thread; the
 * old fds stay open until pe_wakeup_relay_close_stale, because CPython's wakeup fd may still
 * name the write end (closed now, its number could be reused by a file the child opens, and a
 * signal's byte would land in that file). Child, single-threaded. */
PE_HIDDEN void pe_wakeup_atfork_child(void)
{
    pthread_mutex_init(&pe_wk_mu, NULL);
    if (pe_wk_started) {
        pe_wk_stale_rfd = pe_wk_rfd;
        pe_wk_stale_wfd = pe_wk_wfd;
    }
    pe_wk_rfd = pe_wk_wfd = -1;
    pe_wk_started = 0;
    atomic_store(&pe_wk_flushed, 0);
}
