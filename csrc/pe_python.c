/*
 * pe_python.c — the two facts the core needs from the interpreter, isolated here so that Python.h
 * (which must come before any system header) is included by this file and pe_pyoffsets.c only.
 *
 * "Does this thread hold the GIL?" is asked from the signal handler (docs/design.md invariant 3: a
 * thread that holds the GIL is running the interpreter or code that relies on it, never an async
 * safe-point). CPython keeps the attached thread state in a place readable without locks:
 *   3.10-3.11  _PyRuntime.gilstate.tstate_current, an atomic pointer, set to the holder's tstate
 *              on acquire and to NULL on release (read by _PyThreadState_UncheckedGet);
 *   3.12       a thread-local _Py_tss_tstate, non-NULL while this thread is attached;
 *   3.13+      the same, read by the public PyThreadState_GetUnchecked.
 * In every version, comparing the result with the thread's own tstate answers the question:
 * equal means held by this thread. The readers are plain loads, safe in a handler.
 *
 * cffi compiles with the limited API by default, which hides these functions; gcc then assumes
 * an int return and truncates the pointer. build_ffi.py defines _CFFI_NO_LIMITED_API and makes
 * implicit declarations an error so that can never happen silently again.
 */
#include <Python.h>

#include "pe_internal.h"

#include <link.h>
#include <structmember.h>

/* The calling thread's PyThreadState, or NULL when it is not a Python thread. Any GIL state. */
PE_HIDDEN void *pe_py_this_tstate(void)
{
    return (void *)PyGILState_GetThisThreadState();
}

/* 1 when the calling thread holds the GIL. Async-signal-safe (one load). */
PE_HIDDEN int pe_py_holds_gil(void *tstate)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyThreadState *cur = PyThreadState_GetUnchecked();
#else
    PyThreadState *cur = _PyThreadState_UncheckedGet();
#endif
    return cur != NULL && (void *)cur == tstate;
}

/* 1 when the loaded object holds the interpreter (libpython, or the python executable when
 * statically linked). Normal context. */
PE_HIDDEN int pe_python_object_refused(const struct dl_phdr_info *info)
{
    uintptr_t fn = (uintptr_t)&Py_Initialize;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t s = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && fn >= s && fn < s + ph->p_memsz)
            return 1;
    }
    return 0;
}

/* Trip CPython's handler for signum as if the signal had arrived. Async-signal-safe, any thread,
 * no GIL needed (PyErr_SetInterruptEx is documented so). */
PE_HIDDEN void pe_py_trip_signal(int signum)
{
    PyErr_SetInterruptEx(signum);
}

/* Arm the exception a PE_HOOK_* code names so that the calling thread raises it at its next
 * bytecode: after the interrupted native call has returned, since no bytecode runs before. Takes
 * and releases the GIL (no bytecode runs in between either). Trampoline entry only. */
PE_HIDDEN void pe_py_raise_on_return(int code)
{
    PyGILState_STATE st = PyGILState_Ensure();
    PyObject *exc = NULL;
    if (code == PE_HOOK_RAISE_INTERRUPT) {
        exc = PyExc_KeyboardInterrupt;
        Py_INCREF(exc);
    } else if (code == PE_HOOK_RAISE_EXIT) {
        PyObject *mod = PyImport_ImportModule("greenlet");
        if (mod) {
            exc = PyObject_GetAttrString(mod, "GreenletExit");
            Py_DECREF(mod);
        }
    }
    if (exc) {
        PyThreadState_SetAsyncExc((unsigned long)PyThread_get_thread_ident(), exc);
        Py_DECREF(exc);
    } else {
        PyErr_WriteUnraisable(NULL);
    }
    PyErr_Clear();
    PyGILState_Release(st);
}

/* Address of a variable-size object's ob_size (a deque's length), for sysmon's racy reads.
 * Normal context, GIL held (the object must outlive the reads). */
PE_HIDDEN const ssize_t *pe_py_varsize_addr(void *obj)
{
    return &((PyVarObject *)obj)->ob_size;
}

/* Byte offset of the __slots__ member that a member descriptor describes, or -1 when descr is
 * not one (or not an object-pointer slot). Normal context, GIL held. */
PE_HIDDEN ssize_t pe_py_member_offset(void *descr)
{
    PyObject *d = (PyObject *)descr;
    if (!d || !Py_IS_TYPE(d, &PyMemberDescr_Type))
        return -1;
    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
    if (!m || m->type != T_OBJECT_EX)
        return -1;
    return m->offset;
}
