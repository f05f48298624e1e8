/*
 * csrc/hot/park.c: park, exit_g and ready: how a G gives up the CPU and is given it back (_park.py).
 *
 * Part of preempt._hot: included by csrc/pe_hot.c, which is the one translation unit
 * (greenlet's way), so every function stays static and inlinable. Not compiled alone.
 */

/* _park.park_checked(s, g, reason, blocker), in C. New reference (None) or NULL. GIL held.
 * Inlined into its callers: every C frame between a goroutine's Python code and the switch is
 * part of the stack greenlet copies out for each parked goroutine. */
static inline __attribute__((always_inline)) PyObject *pe_park(PyObject *s, PyObject *g,
                                                                PyObject *reason,
                                                                PyObject *blocker)
{
    PyObject *pend = SLOT(g, g_pending_exc);
    if (pend != NULL && pend != Py_None)
        return PyObject_CallFunctionObjArgs(py_raise_pending, g, blocker, NULL);
    PyObject *loop = pe_loop_away();
    if (loop == NULL && PyErr_Occurred())
        return NULL;
    SET(g, g_state, st_waiting);
    SET(g, g_wait_reason, reason);
    SET(g, g_blocker, blocker);
    unsigned long long tick = pe_bump_tick(s);
    PyObject *target = tick == 0 ? NULL : pe_next_or_hub(s, tick);
    PyObject *r = target == NULL ? NULL : pe_switch_to(target);
    if (loop != NULL && pe_loop_back(loop, r != NULL) < 0)
        Py_CLEAR(r);
    if (r == NULL)
        return NULL;                             /* thrown into this greenlet */
    Py_DECREF(r);
    PyObject *exc = SLOT(g, g_wake_exc);
    if (exc != NULL && exc != Py_None) {
        Py_INCREF(exc);
        SET(g, g_wake_exc, Py_None);
        pe_raise(exc);
        Py_DECREF(exc);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* exit_g(s, glet, is_main): _park.exit_g in C — a worker whose G finished hands the CPU on and
 * returns the next G bound to it (reuse), or None when its greenlet must end. Its worker
 * greenlet, GIL held. */
static PyObject *pe_exit_g_py(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "exit_g(s, glet, is_main)");
        return NULL;
    }
    PyObject *s = args[0], *glet = args[1];
    int is_main = PyObject_IsTrue(args[2]);
    if (is_main < 0)
        return NULL;
    PyObject *free = SLOT(s, s_free);
    Py_ssize_t free_max = PyLong_AsSsize_t(SLOT(s, s_free_max));
    if (free_max == -1 && PyErr_Occurred())
        return NULL;
    if (!PyList_Check(free)) {
        PyErr_SetString(PyExc_TypeError, "exit_g: Scheduler.free must be a list");
        return NULL;
    }
    if (PyList_GET_SIZE(free) >= free_max) {
        SET(s, s_cur, Py_None);
        Py_RETURN_NONE;     /* the worker returns; its greenlet dies; its parent, the hub, runs */
    }
    if (PyList_Append(free, glet) < 0)
        return NULL;
    unsigned long long tick = pe_bump_tick(s);
    if (tick == 0)
        return NULL;
    PyObject *other;
    if (is_main) {
        SET(s, s_cur, Py_None);
        other = Py_NewRef(SLOT(s, s_hub));
    } else {
        other = pe_next_or_hub(s, tick);
        if (other == NULL)
            return NULL;
    }
    if (other == glet) {    /* a new G was bound to this very greenlet: it runs on our stack */
        Py_DECREF(other);
    } else {
        PyObject *r = pe_switch_to(other);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    return Py_NewRef(SLOT(s, s_cur));
}

/* park(s, g, reason, blocker): _park.park_checked. Python-callable from a goroutine. */
static PyObject *pe_park_py(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "park(s, g, reason, blocker)");
        return NULL;
    }
    return pe_park(args[0], args[1], args[2], args[3]);
}

/* _park.ready(g, next=True): g becomes runnable in runnext, the G it displaces goes to the
 * tail of the run queue. 0, or -1 with an exception. GIL held. */
static int pe_ready_next(PyObject *s, PyObject *g)
{
    SET(g, g_state, st_runnable);
    SET(g, g_blocker, Py_None);
    PyObject *old = Py_NewRef(SLOT(s, s_runnext));
    SET(s, s_runnext, g);
    int rc = 0;
    if (old != Py_None)
        rc = pe_append(SLOT(s, s_runq), old);
    Py_DECREF(old);
    return rc;
}


/* _park.ready(g, next=False), in C. Any context on the M thread, GIL held; never switches.
 * Anything unusual (keywords, not a Goroutine, no scheduler) goes to the Python twin. */
static PyObject *pe_ready_py(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    (void)self;
    PyObject *s = pe_sched;
    if (kwnames != NULL || nargs < 1 || nargs > 2 || s == NULL ||
        !PyObject_TypeCheck(args[0], (PyTypeObject *)py_goroutine_cls))
        return PyObject_Vectorcall(py_ready, args, (size_t)nargs, kwnames);
    PyObject *g = args[0];
    int next = 0;
    if (nargs == 2 && (next = PyObject_IsTrue(args[1])) < 0)
        return NULL;
    if (next) {
        if (pe_ready_next(s, g) < 0)
            return NULL;
    } else {
        SET(g, g_state, st_runnable);
        SET(g, g_blocker, Py_None);
        if (pe_append(SLOT(s, s_runq), g) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}
