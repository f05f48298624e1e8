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
 */
#define Py_BUILD_CORE 1
#include <Python.h>

#include <stddef.h>

#if PY_VERSION_HEX < 0x030D0000 && defined(__has_include)
#if __has_include(<internal/pycore_interp.h>)
#include <internal/pycore_interp.h>
#define PE_HAVE_EVAL_BREAKER_OFFSET 1
#endif
#endif

#include "pe_internal.h"

/* Address of the main interpreter's eval_breaker word, or NULL where no poke is needed or
 * possible. Any thread (reads an immutable pointer). */
PE_HIDDEN void *pe_py_eval_breaker_addr(void)
{
#ifdef PE_HAVE_EVAL_BREAKER_OFFSET
    PyInterpreterState *interp = PyInterpreterState_Main();
    if (!interp)
        return NULL;
    return (char *)interp + offsetof(PyInterpreterState, ceval.eval_breaker);
#else
    return NULL;
#endif
}
