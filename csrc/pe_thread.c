/*
 * pe_thread.c — the thread registry: which OS threads may be suspended, and what the signal
 * handler needs to know about each of them without taking a lock.
 *
 * A thread registers itself (preempt.threads.current()). Its slot in a fixed array holds its
 * kernel tid (the handler's lookup key: gettid() is async-signal-safe, thread-local storage of a
 * dlopen'ed module is not, since glibc may allocate it lazily), the bounds of its stack (for the
 * "enough stack" rule), its PyThreadState (for the "does not hold the GIL" rule), the suspension
 * state word, and a sigaltstack of its own.
 *
 * The alternate signal stack is not optional. Without one the kernel builds the signal frame on
 * the thread's stack just below the interrupted RSP's red zone — exactly where the handler must
 * push the interrupted RIP to enter the trampoline — so the push would overwrite the saved FPU
 * state the kernel is about to restore. The handler therefore declines to preempt when it finds
 * itself running on the thread's own stack (see pe_signal.c).
 *
 * A slot is freed when its thread unregisters or exits (a pthread key destructor runs at exit).
 * Freeing bumps the slot's generation, so a handle (slot, generation) held by Python for an
 * exited thread answers PE_EXITED instead of naming whichever thread reuses the slot; the same
 * generation is packed into the suspension word so that a requester racing with the exit fails
 * its CAS instead of touching the new owner's state.
 *
 * After fork() only the forking thread exists in the child: its slot is kept (with its new tid),
 * every other slot is freed and the mutex is re-initialised (pe_thread_atfork_child, called by
 * the core's at-fork handler in pe_init.c).
 */
#include "pe_internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

PE_HIDDEN pe_thread_t pe_threads[PE_MAX_THREADS];
static _Atomic int32_t pe_threads_hw;     /* slots [0, hw) have ever been used: handler scan bound */
static pthread_mutex_t pe_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t pe_key;              /* -> the calling thread's slot; destructor unregisters */

/* Write msg to stderr and abort. Async-signal-safe. */
PE_HIDDEN _Noreturn void pe_throw(const char *msg)
{
    ssize_t r = write(2, msg, strlen(msg));
    (void)r;
    abort();
}

/* Kernel thread id of the caller. Async-signal-safe. */
PE_HIDDEN int32_t pe_gettid(void)
{
    return (int32_t)syscall(SYS_gettid);
}

/* CLOCK_MONOTONIC in ns. Async-signal-safe. */
PE_HIDDEN int64_t pe_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sleep while *w == val, at most timeout_ns (<0: no limit). Returns 0 when woken or the value
 * differed, ETIMEDOUT, or EINTR. Any thread, never a signal handler. */
PE_HIDDEN int pe_futex_wait(_Atomic uint32_t *w, uint32_t val, int64_t timeout_ns)
{
    struct timespec ts, *tp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tp = &ts;
    }
    long r = syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, val, tp, NULL, 0);
    if (r == 0 || errno == EAGAIN)
        return 0;
    return errno;
}

/* Wake every waiter on w. Async-signal-safe (one syscall). */
PE_HIDDEN void pe_futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* The registered thread with this tid, or NULL. Async-signal-safe: a bounded scan of atomics. */
PE_HIDDEN pe_thread_t *pe_thread_by_tid(int32_t tid)
{
    int32_t hw = atomic_load_explicit(&pe_threads_hw, memory_order_acquire);
    for (int32_t i = 0; i < hw; i++)
        if (atomic_load_explicit(&pe_threads[i].tid, memory_order_acquire) == tid)
            return &pe_threads[i];
    return NULL;
}

/* The live thread a Python handle names, or NULL when it exited or unregistered. Any thread. */
PE_HIDDEN pe_thread_t *pe_thread_lookup(int32_t slot, uint32_t gen)
{
    if (slot < 0 || slot >= PE_MAX_THREADS)
        return NULL;
    pe_thread_t *t = &pe_threads[slot];
    if (atomic_load_explicit(&t->tid, memory_order_acquire) == 0)
        return NULL;
    if (atomic_load_explicit(&t->gen, memory_order_acquire) != gen)
        return NULL;
    return t;
}

/* Bytes of sigaltstack each registered thread gets: room for the kernel's signal frame with the
 * full XSAVE state (sysconf(_SC_MINSIGSTKSZ) accounts for AVX-512) plus our handler. */
static size_t pe_altstack_need(void)
{
    long min = SIGSTKSZ;
#ifdef _SC_MINSIGSTKSZ
    long m = sysconf(_SC_MINSIGSTKSZ);
    if (m > min)
        min = m;
#endif
    size_t need = (size_t)min * 4;
    return need < 65536 ? 65536 : need;
}

/* Give the calling thread an alternate signal stack unless it has a big enough one. Calling
 * thread, at registration. Returns 0 or an errno. */
static int pe_altstack_setup(pe_thread_t *t)
{
    size_t need = pe_altstack_need();
    if (sigaltstack(NULL, &t->old_altstack) != 0)
        return errno;
    if (!(t->old_altstack.ss_flags & SS_DISABLE) && t->old_altstack.ss_size >= need) {
        t->altstack = NULL;
        return 0;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t total = need + page;
    void *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return errno;
    mprotect(m, page, PROT_NONE); /* guard page: an overflow faults instead of corrupting */
    stack_t ss = {.ss_sp = (char *)m + page, .ss_size = need, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        int e = errno;
        munmap(m, total);
        return e;
    }
    t->altstack = m;
    t->altstack_size = total;
    return 0;
}

/* Free a slot: make it invisible to the handler first, then bump the generation (stale handles
 * and racing requesters now fail), then release it. Caller must be the slot's own thread (or
 * the fork child for dead threads) with PE_SIG blocked. */
static void pe_slot_free(pe_thread_t *t)
{
    atomic_store_explicit(&t->tid, 0, memory_order_release);
    uint32_t g = atomic_fetch_add(&t->gen, 1) + 1;
    atomic_store(&t->susp, PE_SUSP(g, PE_REQ_NONE, PE_SUSP_IDLE));
    pe_futex_wake(&t->susp); /* requesters waiting on this thread see the new generation */
    atomic_store(&t->regs, NULL);
    atomic_store(&t->xsave, NULL);
    atomic_store_explicit(&t->used, 0, memory_order_release);
}

/* Unregister the calling thread's slot t. Calling thread only. */
static void pe_unregister_self(pe_thread_t *t)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, PE_SIG);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    pthread_setspecific(pe_key, NULL);
    if (t->altstack) {
        stack_t cur;
        if (sigaltstack(NULL, &cur) == 0 && (char *)cur.ss_sp >= (char *)t->altstack &&
            (char *)cur.ss_sp < (char *)t->altstack + t->altstack_size) {
            stack_t restore = t->old_altstack;
            if (restore.ss_flags & SS_DISABLE) {
                restore.ss_flags = SS_DISABLE;
                restore.ss_sp = NULL;
                restore.ss_size = 0;
            }
            sigaltstack(&restore, NULL);
        }
        munmap(t->altstack, t->altstack_size);
        t->altstack = NULL;
    }
    pthread_mutex_lock(&pe_reg_mu);
    pe_slot_free(t);
    pthread_mutex_unlock(&pe_reg_mu);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* pthread key destructor: the thread is exiting. Runs on the exiting thread. */
static void pe_thread_exit_hook(void *p)
{
    if (p)
        pe_unregister_self((pe_thread_t *)p);
}

/* Create the key whose destructor unregisters an exiting thread. pe_init only (once). 0 or -1. */
PE_HIDDEN int pe_thread_key_init(void)
{
    return pthread_key_create(&pe_key, pe_thread_exit_hook) == 0 ? 0 : -1;
}

/* fork() child: only the forking thread survives; its slot is kept with its new tid, every other
 * slot is freed. Runs in the child, single-threaded (pe_init.c's at-fork handler). */
PE_HIDDEN void pe_thread_atfork_child(void)
{
    pthread_mutex_init(&pe_reg_mu, NULL);
    pe_thread_t *self = pthread_getspecific(pe_key);
    int32_t hw = atomic_load(&pe_threads_hw);
    for (int32_t i = 0; i < hw; i++) {
        pe_thread_t *t = &pe_threads[i];
        if (!atomic_load(&t->used) || t == self)
            continue;
        if (t->altstack)
            munmap(t->altstack, t->altstack_size);
        t->altstack = NULL;
        pe_slot_free(t);
    }
    if (self) {
        uint32_t g = atomic_load(&self->gen);
        atomic_store(&self->susp, PE_SUSP(g, PE_REQ_NONE, PE_SUSP_IDLE));
        atomic_store(&self->tid, pe_gettid());
    }
}

/* Register the calling thread. Calling thread only; idempotent. */
int pe_thread_register(int32_t *slot, uint32_t *gen)
{
    if (pe_init() != PE_OK)
        return PE_UNAVAILABLE;
    pe_thread_t *t = pthread_getspecific(pe_key);
    if (t) {
        *slot = (int32_t)(t - pe_threads);
        *gen = atomic_load(&t->gen);
        return PE_OK;
    }
    void *tstate = pe_py_this_tstate();
    if (!tstate)
        return PE_INVALID;
    pthread_attr_t attr;
    void *stack_addr = NULL;
    size_t stack_size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return PE_INVALID;
    pthread_attr_getstack(&attr, &stack_addr, &stack_size);
    pthread_attr_destroy(&attr);

    pthread_mutex_lock(&pe_reg_mu);
    int32_t i;
    for (i = 0; i < PE_MAX_THREADS; i++)
        if (!atomic_load(&pe_threads[i].used))
            break;
    if (i == PE_MAX_THREADS) {
        pthread_mutex_unlock(&pe_reg_mu);
        return PE_FULL;
    }
    t = &pe_threads[i];
    atomic_store(&t->used, 1);
    if (i >= atomic_load(&pe_threads_hw))
        atomic_store_explicit(&pe_threads_hw, i + 1, memory_order_release);
    pthread_mutex_unlock(&pe_reg_mu);

    t->pthread = pthread_self();
    t->tstate = tstate;
    t->stack_lo = (uintptr_t)stack_addr;
    t->stack_hi = (uintptr_t)stack_addr + stack_size;
    atomic_store(&t->signals_sent, 0);
    atomic_store(&t->declined, 0);
    atomic_store(&t->accepted, 0);
    atomic_store(&t->last_latency_ns, -1);
    uint32_t g = atomic_load(&t->gen);
    atomic_store(&t->susp, PE_SUSP(g, PE_REQ_NONE, PE_SUSP_IDLE));
    if (pe_altstack_setup(t) != 0) {
        pthread_mutex_lock(&pe_reg_mu);
        atomic_store(&t->used, 0);
        pthread_mutex_unlock(&pe_reg_mu);
        return PE_INVALID;
    }
    pthread_setspecific(pe_key, t);
    atomic_store_explicit(&t->tid, pe_gettid(), memory_order_release); /* visible to the handler */
    *slot = i;
    *gen = g;
    return PE_OK;
}

/* Unregister the calling thread. Calling thread only. */
int pe_thread_unregister(void)
{
    pe_thread_t *t = pthread_getspecific(pe_key);
    if (!t)
        return PE_EXITED;
    uint32_t st = PE_SUSP_ST(atomic_load(&t->susp));
    if (st != PE_SUSP_IDLE && st != PE_SUSP_REQUESTED)
        return PE_BUSY; /* cannot happen for a running thread; kept as a guard */
    pe_unregister_self(t);
    return PE_OK;
}

/* Handles of all registered threads. Any thread. */
int pe_thread_list(int32_t *slots, uint32_t *gens, int max)
{
    int n = 0;
    int32_t hw = atomic_load(&pe_threads_hw);
    for (int32_t i = 0; i < hw && n < max; i++) {
        pe_thread_t *t = &pe_threads[i];
        if (atomic_load(&t->tid) == 0)
            continue;
        slots[n] = i;
        gens[n] = atomic_load(&t->gen);
        n++;
    }
    return n;
}

/* Counters and state. Any thread. */
int pe_thread_info(int32_t slot, uint32_t gen, pe_thread_info_t *out)
{
    pe_thread_t *t = pe_thread_lookup(slot, gen);
    if (!t)
        return PE_EXITED;
    out->tid = atomic_load(&t->tid);
    out->suspended = PE_SUSP_ST(atomic_load(&t->susp)) == PE_SUSP_PARKED;
    out->signals_sent = atomic_load_explicit(&t->signals_sent, memory_order_relaxed);
    out->declined = atomic_load_explicit(&t->declined, memory_order_relaxed);
    out->accepted = atomic_load_explicit(&t->accepted, memory_order_relaxed);
    out->last_latency_ns = atomic_load(&t->last_latency_ns);
    return pe_thread_lookup(slot, gen) ? PE_OK : PE_EXITED;
}

/* The calling thread's errno location (preempt.h). Any thread, for itself. */
int *pe_errno_location(void)
{
    return &errno;
}
