/*
 * pe_pyoffsets.c — the one private CPython layout fact the monitor relies on, computed by the
 * compiler from the interpreter's own internal headers at build time, never hard-coded.
 *
 * On 3.10-3.12, PyErr_SetInterruptEx() called from a thread other than the main thread records
 * the signal (signals_pending = 1) but leaves the interpreter's eval_breaker word at 0, because
 * COMPUTE_EVAL_BREAKER asks whether the *calling* thread can handle signals. The main thread then
 * notices only when something else sets the breaker. sysmon therefore stores 1 into
 * PyInterpreterState.ceval.eval_breaker itself after each request — what CPython's own
 * SIGNAL_PENDING_SIGNALS(interp, force=1) does. The main thread's next eval-breaker check sees
 * signals_pending and runs our SLOT handler. Offsets seen: 68 (3.10.13), 100 (3.11.7),
 * 368 (3.12.1); the test suite checks the poke works on every version it runs.
 *
 * On 3.13+ the breaker lives in each thread state and PyErr_SetInterruptEx sets the main
 * thread's bit from any thread: no poke is needed, and this returns -1. Where the internal
 * headers are missing, it returns -1 too and sysmon falls back to signalling the M.
 *
 * The second fact is the GIL's "locked" word (in _PyRuntime.ceval.gil on 3.10-3.11, behind
 * interp->ceval.gil on 3.12+). When a request is pending and nobody holds the GIL, the M is in
 * native code or a blocking call — no bytecode will run to take a poke — so sysmon signals it
 * after 10 us (PE_GRACE_GIL_FREE_NS) instead of waiting out the 200 us grace period. Read-only, racy by design: a wrong guess
 * costs one declined signal or one grace period, never correctness.
 *
 * The third is CPython's "a signal is tripped" word: _PyRuntime.ceval.signals_pending on
 * 3.10-3.11, _PyRuntime.signals.is_tripped on 3.12+. CPython's C handler sets it wherever the
 * signal lands; the M clears it when it runs the Python-level handlers, at a bytecode. When it
 * stays set, the M runs no bytecode (native code, a blocking call, or a signal that landed on
 * another thread while the hub sleeps in epoll), and sysmon signals the M so that the handler
 * runs now: Ctrl-C reaches a program whose goroutines loop in native code. Our own SLOT trips
 * set it too; sysmon only looks while no request of its own is outstanding.
 */
#define Py_BUILD_CORE 1
#include <Python.h>

#include <stddef.h>

/* The private layouts below are used only for the CPython versions they were tested on
 * (PE_NEWEST_TESTED_HEX and older). On a newer CPython the internal headers may have moved or
 * renamed any of these fields: the core then compiles without them — no eval_breaker poke, no
 * GIL word, no tripped-signal word, no main_tstate repair — and sysmon falls back to what needs
 * no private layout (PyErr_SetInterruptEx and signals). preempt.available() says so.
 * PREEMPT_NO_PRIVATE_LAYOUT=1 at build time forces that fallback (to test it). */
#define PE_NEWEST_TESTED_HEX 0x030EFFFF  /* 3.14.x */

#if defined(__has_include) && PY_VERSION_HEX <= PE_NEWEST_TESTED_HEX && !defined(PE_NO_PRIVATE_LAYOUT)
#if __has_include(<internal/pycore_interp.h>)
#include <internal/pycore_interp.h>
#include <internal/pycore_runtime.h>
#define PE_HAVE_INTERNALS 1
#if PY_VERSION_HEX < 0x030D0000
#define PE_HAVE_EVAL_BREAKER_OFFSET 1
#endif
#endif
#endif

#include "pe_internal.h"

/* Set by pe_py_check_layout when what the layouts point at does not look like what they
 * should: every accessor below then returns NULL (the fallback of an untested CPython). Written
 * once, at import, before sysmon starts; read by sysmon's start. */
static int pe_layout_distrusted;

/* Address of the main interpreter's eval_breaker word, or NULL where no poke is needed or
 * possible. Any thread (reads an immutable pointer). */
PE_HIDDEN void *pe_py_eval_breaker_addr(void)
{
#ifdef PE_HAVE_EVAL_BREAKER_OFFSET
    PyInterpreterState *interp = PyInterpreterState_Main();
    if (!interp || pe_layout_distrusted)
        return NULL;
    return (char *)interp + offsetof(PyInterpreterState, ceval.eval_breaker);
#else
    return NULL;
#endif
}

/* Address of the GIL's "locked" word, or NULL where unknown. Any thread (the GIL state of the
 * main interpreter lives as long as the interpreter). */
PE_HIDDEN const int *pe_py_gil_locked_addr(void)
{
#ifdef PE_HAVE_INTERNALS
    if (pe_layout_distrusted)
        return NULL;
#if PY_VERSION_HEX >= 0x030C0000
    PyInterpreterState *interp = PyInterpreterState_Main();
    if (!interp || !interp->ceval.gil)
        return NULL;
    return (const int *)&interp->ceval.gil->locked;
#else
    return (const int *)&_PyRuntime.ceval.gil.locked;
#endif
#else
    return NULL;
#endif
}

/* Address of CPython's "some signal is tripped" word, or NULL where unknown. Any thread (a field
 * of _PyRuntime, which lives as long as the process). */
PE_HIDDEN const int *pe_py_signals_tripped_addr(void)
{
#ifdef PE_HAVE_INTERNALS
    if (pe_layout_distrusted)
        return NULL;
#if PY_VERSION_HEX >= 0x030C0000
    return (const int *)&_PyRuntime.signals.is_tripped;
#else
    return (const int *)&_PyRuntime.ceval.signals_pending;
#endif
#else
    return NULL;
#endif
}

/* fork() child, called by the runtime's at-fork handler on the forking thread (its only one).
 *
 * CPython 3.13 delivers a tripped signal by setting a bit in _PyRuntime.main_tstate's
 * eval_breaker, and after a fork from a thread other than the main one it makes the forking
 * thread the main thread (main_thread) but leaves main_tstate naming the old main thread's
 * state: in that child no Python signal handler ever runs again (measured on 3.13.0: a SIGALRM
 * handler under a busy loop, and so preempt's preemption slot and Ctrl-C). Point main_tstate at
 * the thread that now is the main thread, as 3.10-3.12 need not (their breaker is per
 * interpreter). Returns 1 when it repaired it, 0 when nothing needed it, -1 when this is not
 * the main thread (nothing done). */
int pe_py_after_fork_child(void)
{
#if defined(PE_HAVE_INTERNALS) && PY_VERSION_HEX >= 0x030D0000
    /* cffi releases the GIL around the call: the thread's state, attached or not */
    PyThreadState *ts = PyGILState_GetThisThreadState();
    if (pe_layout_distrusted)
        return 0;
    if (!ts || _PyRuntime.main_thread != PyThread_get_thread_ident())
        return -1;
    if (_PyRuntime.main_tstate == ts)
        return 0;
    _PyRuntime.main_tstate = ts;
    return 1;
#else
    return 0;
#endif
}

/* Checks, once, that the private fields this build compiled in hold what they should — a
 * second line of defence behind the version gate, against a patched or differently configured
 * interpreter whose headers and binary disagree. Called at import from Python (cffi released
 * the GIL; this takes it back). main_ident is threading.main_thread().ident.
 *
 *   PE_LAYOUT_GIL      the GIL's locked word is 1 and its last_holder is this thread's state,
 *                      read while this thread holds it (take_gil stores both);
 *   PE_LAYOUT_TRIPPED  the "signal tripped" word is 0 or 1;
 *   PE_LAYOUT_BREAKER  3.10-3.12: the interpreter's eval_breaker word is 0 or 1;
 *   PE_LAYOUT_MAIN     _PyRuntime.main_thread is main_ident: a check of _PyRuntime's layout,
 *                      where the tripped word lives and, right after main_thread, the
 *                      main_tstate that pe_py_after_fork_child repairs. (main_tstate itself is
 *                      not compared: in a child forked from another thread it is stale until
 *                      that repair, which must not be what disables the repair.)
 *
 * Returns the mask of the checks that failed (0: all passed, or nothing was compiled in); on
 * any failure the accessors above return NULL from then on. Python thread with a thread state. */
int pe_py_check_layout(unsigned long main_ident)
{
    int bad = 0;
#ifdef PE_HAVE_INTERNALS
    PyGILState_STATE st = PyGILState_Ensure();
    PyThreadState *ts = PyThreadState_Get();
#if PY_VERSION_HEX >= 0x030C0000
    PyInterpreterState *interp = PyInterpreterState_Main();
    struct _gil_runtime_state *gil = interp ? interp->ceval.gil : NULL;
#else
    struct _gil_runtime_state *gil = &_PyRuntime.ceval.gil;
#endif
    /* last_holder is a plain pointer (3.13+) or an _Py_atomic_address (3.10-3.12) whose only
     * member is the pointer-sized value: the same load serves both */
    if (gil == NULL || *(const volatile int *)&gil->locked != 1 ||
        *(void *const volatile *)&gil->last_holder != (void *)ts)
        bad |= PE_LAYOUT_GIL;
    const int *tripped = pe_py_signals_tripped_addr();
    int t = tripped ? __atomic_load_n(tripped, __ATOMIC_RELAXED) : 0;
    if (t != 0 && t != 1)
        bad |= PE_LAYOUT_TRIPPED;
#ifdef PE_HAVE_EVAL_BREAKER_OFFSET
    const int *breaker = (const int *)pe_py_eval_breaker_addr();
    int b = breaker ? __atomic_load_n(breaker, __ATOMIC_RELAXED) : 0;
    if (b != 0 && b != 1)
        bad |= PE_LAYOUT_BREAKER;
#endif
    if (_PyRuntime.main_thread != main_ident)
        bad |= PE_LAYOUT_MAIN;
    PyGILState_Release(st);
    if (bad)
        pe_layout_distrusted = 1;
#else
    (void)main_ident;
#endif
    return bad;
}

/* 1 when this build uses CPython's private layouts (a tested CPython), 0 when it was built
 * without them, -1 when it was built with them but pe_py_check_layout found them wrong (they
 * are not used). Any thread. */
int pe_py_private_layout(void)
{
#ifdef PE_HAVE_INTERNALS
    return pe_layout_distrusted ? -1 : 1;
#else
    return 0;
#endif
}
