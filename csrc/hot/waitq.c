/*
 * csrc/hot/waitq.c: Wait queues (_runtime/_waitq.py): dequeue, the cached-waiter park, wake_all, a
 * new WaitQ.
 *
 * Part of preempt._hot: included by csrc/pe_hot.c, which is the one translation unit
 * (greenlet's way), so every function stays static and inlinable. Not compiled alone.
 */

/* WaitQ.dequeue(): takes and claims the first claimable waiter of WaitQ wq (a select's waiter
 * only if its Sel has no winner yet). New reference; NULL when none (or NULL with an exception).
 * GIL held. */
static PyObject *pe_dequeue(PyObject *wq)
{
    PyObject *q = SLOT(wq, q_q);
    while (pe_qlen(q) > 0) {
        PyObject *w = pe_popleft(q);
        if (w == NULL)
            return NULL;
        SET(w, w_q, Py_None);
        PyObject *sel = SLOT(w, w_sel);
        if (sel == Py_None)
            return w;
        PyObject *win = PyObject_GetAttr(sel, str_winner);
        if (win == NULL) {
            Py_DECREF(w);
            return NULL;
        }
        int taken = win != Py_None;
        Py_DECREF(win);
        if (!taken) {
            if (PyObject_SetAttr(sel, str_winner, w) < 0) {
                Py_DECREF(w);
                return NULL;
            }
            return w;
        }
        Py_DECREF(w);
    }
    return NULL;
}

/* The waiting half of send and recv (WaitQ.park_cached): parks the running G of
 * s in WaitQ q with its cached waiter (Go's sudog cache) holding elem. Returns the waiter (new
 * reference) once woken, or NULL. GIL held; a goroutine. */
static inline __attribute__((always_inline)) PyObject *pe_wait(PyObject *s, PyObject *q,
                                                                PyObject *elem, PyObject *reason)
{
    PyObject *g = Py_NewRef(SLOT(s, s_cur));
    PyObject *w = SLOT(g, g_waiter);
    if (w == Py_None) {
        w = PyObject_CallFunctionObjArgs(py_waiter_cls, g, NULL);
        if (w == NULL) {
            Py_DECREF(g);
            return NULL;
        }
        SET(g, g_waiter, w);
    } else {
        Py_INCREF(w);
    }
    SET(w, w_elem, elem);
    SET(w, w_ok, Py_False);
    SET(w, w_closed, Py_False);
    SET(w, w_q, q);
    PyObject *r = NULL;
    if (pe_append(SLOT(q, q_q), w) == 0) {
        Py_INCREF(s);
        r = pe_park(s, g, reason, w);
        Py_DECREF(s);
    }
    Py_DECREF(g);
    if (r == NULL) {
        Py_DECREF(w);
        return NULL;
    }
    Py_DECREF(r);
    return w;
}


/* WaitQ.wake_all(), in C: readies every waiter's G (run-queue tail); returns how many, or -1
 * with an exception. GIL held, M thread. */
static Py_ssize_t pe_wake_all(PyObject *s, PyObject *q)
{
    Py_ssize_t n = 0;
    while (pe_qlen(SLOT(q, q_q)) > 0) {
        PyObject *w = pe_dequeue(q);
        if (w == NULL)
            return PyErr_Occurred() ? -1 : n;
        SET(w, w_ok, Py_True);
        PyObject *g = SLOT(w, w_g);
        SET(g, g_state, st_runnable);               /* _park.ready(w.g) */
        SET(g, g_blocker, Py_None);
        int rc = pe_append(SLOT(s, s_runq), g);
        Py_DECREF(w);
        if (rc < 0)
            return -1;
        n++;
    }
    return n;
}

static PyObject *pe_waitq_wake_all(PyObject *self, PyObject *unused)
{
    (void)unused;
    if (pe_sched == NULL)                    /* ready() needs a scheduler: Python's error */
        return PyObject_CallFunctionObjArgs(py_wake_all, self, NULL);
    Py_ssize_t n = pe_wake_all(pe_sched, self);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

/* WaitQ(owner) for an owner with weak references (a Goroutine), in C: WaitQ.__init__'s fields —
 * an empty deque and a weak reference to the owner (test_runtime_hotpath checks they match).
 * New reference or NULL. GIL held. */
static PyObject *pe_new_waitq(PyObject *owner)
{
    PyTypeObject *t = (PyTypeObject *)py_waitq_cls;
    if (pe_deque_type == NULL || !PyType_SUPPORTS_WEAKREFS(Py_TYPE(owner)))
        return PyObject_CallFunctionObjArgs(py_waitq_cls, owner, NULL);
    PyObject *q = t->tp_alloc(t, 0);
    if (q == NULL)
        return NULL;
    PyObject *d = PyObject_CallNoArgs((PyObject *)pe_deque_type);
    PyObject *r = d != NULL ? PyWeakref_NewRef(owner, NULL) : NULL;
    if (r == NULL) {
        Py_XDECREF(d);
        Py_DECREF(q);
        return NULL;
    }
    SET(q, q_q, d);
    SET(q, q_owner, r);
    Py_DECREF(d);
    Py_DECREF(r);
    return q;
}

/* new_waitq(owner): WaitQ(owner) in C (for tests). */
static PyObject *pe_new_waitq_py(PyObject *self, PyObject *owner)
{
    (void)self;
    return pe_new_waitq(owner);
}

/* WaitQ.dequeue(), in C: the first claimable waiter, claimed, or None. GIL held. */
static PyObject *pe_waitq_dequeue(PyObject *self, PyObject *unused)
{
    (void)unused;
    PyObject *w = pe_dequeue(self);
    if (w != NULL || PyErr_Occurred())
        return w;
    Py_RETURN_NONE;
}

/* WaitQ.park_cached(s, g, reason, elem=None), in C (pe_wait). s must be the running scheduler
 * and g its running G, as every caller has checked; else the Python twin. A goroutine. */
static PyObject *pe_waitq_park_cached(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                      PyObject *kwnames)
{
    PyObject *s = pe_sched;
    if (kwnames != NULL || nargs < 3 || nargs > 4 || s == NULL || args[0] != s ||
        args[1] != SLOT(s, s_cur) || SLOT(self, q_q) == NULL) {
        return pe_call_twin(py_park_cached, self, args, nargs, kwnames);
    }
    return pe_wait(s, self, nargs == 4 ? args[3] : Py_None, args[2]);
}
