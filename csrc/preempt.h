/*
 * preempt.h — the only C API the Python layer sees.
 *
 * The block between the CDEF markers is read verbatim by csrc/build_ffi.py as the cffi cdef, so it
 * must stay in the subset of C that pycparser accepts: no #if, no attributes, no includes, and
 * #define only for integer constants. Everything else (layout of the thread registry, the
 * trampoline's private symbols) lives in pe_internal.h.
 *
 * Where each function may run is said beside it. "any thread" means any thread, GIL held or not:
 * cffi releases the GIL around every call into this API.
 */
#ifndef PREEMPT_H
#define PREEMPT_H

#include <stddef.h>
#include <stdint.h>

/* CDEF BEGIN */

/* Result codes shared by the functions below. */
#define PE_OK            0
#define PE_TIMEOUT       1    /* the thread did not reach an async safe-point in time */
#define PE_EXITED       -1    /* the handle names a thread that has exited or unregistered */
#define PE_SELF         -2    /* the caller tried to suspend itself */
#define PE_BUSY         -3    /* another caller is suspending or has suspended that thread */
#define PE_NOT_SUSPENDED -4   /* resume()/registers() on a thread that is not parked */
#define PE_FULL         -5    /* the registry (PE_MAX_THREADS) or region table is full */
#define PE_INVALID      -6    /* bad argument; the error buffer says which */
#define PE_UNAVAILABLE  -7    /* the core could not start; pe_unavailable_reason() says why */

#define PE_MAX_THREADS   256
#define PE_MAX_REGIONS   256

/* The trampoline's spill frame, lowest address first. Field order is ABI with
 * pe_trampoline_amd64.c: change both or neither. */
typedef struct {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t rflags;
    uint64_t rip;
} pe_gregs_t;

/* A snapshot of one registered thread, for Python's ThreadHandle. */
typedef struct {
    int32_t  tid;             /* kernel thread id */
    int32_t  suspended;       /* 1 while parked in the trampoline */
    uint64_t signals_sent;    /* SIGURG sent to it by requesters */
    uint64_t declined;        /* handler ran but the PC was not an async safe-point */
    uint64_t accepted;        /* handler rewrote the context to the trampoline */
    int64_t  last_latency_ns; /* request -> parked, of the last suspension */
} pe_thread_info_t;

/* Start the core once per process: CPU feature probe, SIGURG handler, fork hooks.
 * Any thread; idempotent; returns PE_OK or PE_UNAVAILABLE. */
int pe_init(void);
/* Why async preemption is unavailable, or NULL when it is available. Any thread. */
const char *pe_unavailable_reason(void);
/* Bytes of the XSAVE area (0: FXSAVE fallback) and the XCR0 mask in use. Any thread. */
uint32_t pe_xsave_size(void);
uint64_t pe_xsave_mask(void);

/* Register the calling thread (idempotent). Fills its slot and generation: together they are
 * the handle. Calling thread only (any GIL state; it must be a Python thread). */
int pe_thread_register(int32_t *slot, uint32_t *gen);
/* Unregister the calling thread (also done automatically at thread exit). Calling thread. */
int pe_thread_unregister(void);
/* Slots and generations of every registered thread; returns how many were written. Any thread. */
int pe_thread_list(int32_t *slots, uint32_t *gens, int max);
/* Ask the thread to park at its next async safe-point and wait up to timeout_ns (<0: forever).
 * Returns PE_OK once it is parked, PE_TIMEOUT (request withdrawn, thread untouched), PE_EXITED,
 * PE_SELF or PE_BUSY. *backoff_ns is the signal retry interval, carried across calls by a caller
 * that waits in slices (start with 0). Any thread other than the target. */
int pe_thread_suspend(int32_t slot, uint32_t gen, int64_t timeout_ns, int64_t *backoff_ns);
/* Let a parked thread go. PE_OK, PE_NOT_SUSPENDED or PE_EXITED. Any thread. */
int pe_thread_resume(int32_t slot, uint32_t gen);
/* Copy the saved register file (and MXCSR from the XSAVE area) of a parked thread, and give the
 * stack pointer it was interrupted at (in its own stack; the spill frame has no RSP field).
 * PE_OK, PE_NOT_SUSPENDED or PE_EXITED. Any thread. */
int pe_thread_registers(int32_t slot, uint32_t gen, pe_gregs_t *out, uint32_t *mxcsr,
                        uint64_t *rsp);
/* Counters and state of a thread. PE_OK or PE_EXITED. Any thread. */
int pe_thread_info(int32_t slot, uint32_t gen, pe_thread_info_t *out);

/* Register the executable PT_LOAD segments of a loaded shared object as preemptible. The object
 * is named by one of: a dlopen handle, an address inside it, or a path (realpath-compared).
 * Writes the region ids (up to max) and returns how many, or a negative PE_ code with a reason
 * in err. Any thread; serialised by a mutex; readers (the signal handler) never block. */
int pe_regions_add_handle(void *dl_handle, int32_t *ids, int max, char *err, size_t errlen);
int pe_regions_add_address(uintptr_t addr, int32_t *ids, int max, char *err, size_t errlen);
int pe_regions_add_path(const char *path, int32_t *ids, int max, char *err, size_t errlen);
/* Remove one region id returned above. PE_OK or PE_INVALID. Any thread. */
int pe_regions_remove(int32_t id);
/* 1 when pc lies in a registered region. Any context, including signal handlers. */
int pe_regions_contains(uintptr_t pc);
/* Number of live regions. Any thread. */
int pe_regions_count(void);

/* 1 while our SIGURG handler is the installed one (user code may have replaced it). Any thread. */
int pe_signal_handler_installed(void);

/* Benchmark helper: n round trips of a bare signal (SIGURG with no request pending is chained
 * and otherwise ignored, so this uses SIGUSR2 with a trivial handler) to the registered thread,
 * each waiting for the handler to acknowledge; writes each round trip's ns to out. Any thread
 * but the target. Returns PE_OK, PE_EXITED or PE_TIMEOUT. */
int pe_bench_signal_rtt(int32_t slot, uint32_t gen, int n, int64_t *out);
/* Testing aid: while on, a parked thread overwrites its whole extended register state (XMM/YMM/
 * ZMM, opmask, MXCSR, x87 control) with garbage before it resumes, so that only what the
 * trampoline saved can come back. Any thread. */
void pe_debug_scramble_on_park(int on);
/* The last suspension's request -> parked latency, or -1. Any thread. */
int64_t pe_thread_last_latency_ns(int32_t slot, uint32_t gen);
/* The wakeup-fd relay (pe_wakeup.c): CPython's wakeup fd is the pipe whose write end start()
 * returns, and the relay copies to the program's fd (target) every byte but preempt's own
 * signals' (skip). start/flush/close_stale: main thread; target/skip/copied: any thread. */
int pe_wakeup_relay_start(void);
void pe_wakeup_relay_target(int fd);
void pe_wakeup_relay_skip(int signum, int on);
int pe_wakeup_relay_flush(int64_t timeout_ns);
uint64_t pe_wakeup_relay_copied(void);
void pe_wakeup_relay_close_stale(void);
/* The calling thread's errno, as an address: Python keeps a goroutine's errno across a switch
 * by reading and writing it there (_runtime/_errno.py), not by calling a getter, because cffi
 * puts its own saved copy into errno before every call it makes. Valid while the thread lives.
 * Any thread, for itself. */
int *pe_errno_location(void);

/* Why sysmon made a request (pe_sysmon_shared_t.req_reason). */
#define PE_REASON_SLICE  1
#define PE_REASON_TIMER  2
#define PE_REASON_IO     3   /* an fd or the hub's eventfd became ready while a goroutine ran */

/* The words the M and sysmon share (pe_sysmon.c). Written with plain aligned stores by the side
 * named on each field and read by the other; no locks. */
typedef struct {
    uint64_t schedtick;        /* M: bumped at every switch to a goroutine */
    int32_t  running;          /* M: 1 while a goroutine runs, 0 while the hub waits */
    uint32_t kick;             /* futex word: bumped to wake sysmon early */
    int64_t  next_deadline_ns; /* M: earliest timer, CLOCK_MONOTONIC ns (INT64_MAX: none) */
    uint64_t req_seq;          /* sysmon: number of the latest request */
    uint64_t ack_seq;          /* M: the latest request the hook took */
    int64_t  req_ns;           /* sysmon: when req_seq was made (CLOCK_MONOTONIC ns) */
    uint32_t req_reason;       /* sysmon: PE_REASON_* of req_seq */
    uint32_t want_hub;         /* M: a Python signal handler left work for the hub (1), done (0) */
    uint64_t req_tick;         /* sysmon: schedtick when req_seq was made (stale once it moved) */
    int64_t  max_pending_ns;   /* sysmon: longest a request waited so far (invariant 7) */
    uint64_t n_requests;       /* sysmon statistics */
    uint64_t n_timer_requests;
    uint64_t n_repokes;
    uint64_t n_signals;
    uint64_t n_alone;          /* slices that ended with nothing else to run: no request made */
    uint64_t n_signal_kicks;   /* signals sent because a Python signal handler was not run */
    uint64_t n_io_requests;    /* requests made for I/O: an fd ready, an I/O-woken G waiting */
} pe_sysmon_shared_t;

/* Start the monitor thread for the calling thread, the M (registered as m_slot/m_gen). Requests
 * trip CPython's handler for slot_signum. slice_ns: a goroutine's time slice; io_slice_ns: how
 * long it runs at least before a ready fd preempts it (the runtime's _rules.IO_SLICE_NS).
 * PE_OK, PE_BUSY (already running), PE_EXITED, PE_INVALID. M thread. */
int pe_sysmon_start(int slot_signum, int64_t slice_ns, int64_t io_slice_ns, int32_t m_slot,
                    uint32_t m_gen);
/* Stop and join it (idempotent). M thread. */
void pe_sysmon_stop(void);
/* The shared words. Any thread. */
pe_sysmon_shared_t *pe_sysmon_shared(void);
/* Wake sysmon early (after publishing an earlier deadline). Any thread. */
void pe_sysmon_kick(void);
/* The M says whether preemptible code runs (1) or its hub/loop does (0): the shared word
 * `running`, and, when it turns 1 while sysmon sleeps idle (it sleeps long while nothing runs),
 * a wake-up, so the slice and the published deadline are watched from now on, not from the end
 * of that sleep. No system call unless sysmon is idle. M thread. */
void pe_sysmon_set_running(int running);
/* Tell sysmon where to look for "another goroutine could run": the run queue (a deque: its
 * length), the scheduler's runnext slot (sched + the offset its member descriptor gives; none is
 * the object that means empty), the poller's epoll fd (-1: none) and the count of I/O-woken Gs
 * queued at the run queue's head (the scheduler's iofront word; NULL: none). While these are
 * set, a slice ends without a request when nothing else could run (docs/design.md §4), and a G that
 * has run an I/O slice is preempted when an fd is ready or an I/O-woken G waits. All NULL:
 * forget them. The objects must outlive sysmon or the next call. M thread, GIL held. PE_OK or
 * PE_INVALID. */
int pe_sysmon_watch_work(void *runq, void *sched, void *runnext_descr, void *none, int epfd,
                         const uint64_t *iofront);
/* Tell sysmon the epoll fd of an event loop that is not the runtime's (a bridge's: gevent's
 * libev/libuv backend, asyncio's selector, uvloop's libuv backend; -1: none). While a greenlet
 * computes, sysmon looks at it every I/O slice and preempts when one of the loop's fds is ready,
 * as it does with the runtime's poller. Only the fd: "another goroutine could run" is not known,
 * so every slice ends with a request. M thread. PE_OK. */
int pe_sysmon_watch_epoll(int epfd);
/* What the preempt hook asks the trampoline to do once the goroutine may continue. */
#define PE_HOOK_CONTINUE         0
#define PE_HOOK_RAISE_INTERRUPT  1  /* KeyboardInterrupt at the next bytecode after the call */
#define PE_HOOK_RAISE_EXIT       2  /* greenlet.GreenletExit likewise (the G is being killed) */

/* The function the trampoline runs on the M for an async preemption (the runtime's hook: takes
 * the GIL, parks the goroutine, returns a PE_HOOK_* code when it is resumed). An exception
 * cannot cross native frames, so one the goroutine must raise is armed with
 * PyThreadState_SetAsyncExc and fires at its first bytecode after the native call returns.
 * NULL: sysmon never asks for async preemption. Any thread. */
void pe_set_preempt_hook(int (*hook)(int32_t slot));
/* 1 when requests also poke eval_breaker (3.10-3.12), 0 when not needed (3.13+). */
int pe_sysmon_poke_mode(void);
/* fork() child: repair the interpreter's idea of its main thread's state where CPython leaves
 * it stale (3.13, after a fork from a non-main thread: pe_pyoffsets.c). The child's only
 * thread. 1: repaired, 0: nothing to repair, -1: not the main thread. */
int pe_py_after_fork_child(void);
/* 1 when the core uses CPython's private layouts (a tested CPython), 0 when it was built
 * without them (a newer CPython, or PREEMPT_NO_PRIVATE_LAYOUT=1), -1 when pe_py_check_layout
 * found them wrong and they are not used: pe_pyoffsets.c. */
int pe_py_private_layout(void);
/* Checks the private fields against what they must hold now (import time, before sysmon
 * starts; takes the GIL). Returns the mask of failed checks, 0 when all passed. */
#define PE_LAYOUT_GIL 1
#define PE_LAYOUT_TRIPPED 2
#define PE_LAYOUT_BREAKER 4
#define PE_LAYOUT_MAIN 8
int pe_py_check_layout(unsigned long main_ident);

/* CDEF END */

#endif /* PREEMPT_H */
