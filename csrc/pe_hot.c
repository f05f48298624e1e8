/*
 * preempt._hot: the channel hand-off path in C.
 *
 * A channel ping-pong round trip in the pure-Python runtime spends ~60% of its time in the
 * bytecode of Chan.send/recv and _park.park_checked (perf, CPython 3.11). This module runs
 * exactly that logic in C, on the same Python objects: Goroutine, Waiter, WaitQ, Chan and the
 * Scheduler are __slots__ classes, and init() reads each slot's offset from its member
 * descriptor, so a field access is one load or store, as in a C struct. The Python versions stay
 * the reference and the fallback (no compiler, other platforms, PREEMPT_PURE=1), and every path
 * this file does not handle (misuse, errors, a send on a closed channel, a pending interrupt,
 * binding a worker greenlet) calls back into them.
 *
 * What runs here, and its rules, are those of _park.park_checked/take_direct/ready,
 * WaitQ.dequeue/park_cached and Chan.send/recv/recv_ok/_try_recv/__iter__: see their
 * docstrings; each function below names its Python twin. Everything runs on the M
 * thread with the GIL held, called from a goroutine (checked as in Python: the scheduler's
 * running G's greenlet is greenlet.getcurrent()).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <time.h>

#define PE_RUNNEXT_STREAK 64   /* _park._RUNNEXT_STREAK */
#define PE_POLL_EVERY 61       /* _park._POLL_EVERY */

/* Slot offsets, filled by init() from the classes' member descriptors. */
static Py_ssize_t g_state, g_glet, g_blocker, g_wait_reason, g_wake_exc, g_pending_exc, g_waiter;
static Py_ssize_t w_g, w_elem, w_ok, w_sel, w_q, w_closed;
static Py_ssize_t q_q;
static Py_ssize_t c_buf, c_cap, c_recvq, c_sendq, c_closed;
static Py_ssize_t s_cur, s_runnext, s_runq, s_streak, s_tick, s_mtick, s_hub_wanted, s_timers,
    s_npoll, s_hub, s_free;

/* Objects from init(): the state strings, the Python twins and helpers. Strong references. */
static PyObject *st_runnable, *st_running, *st_waiting;
static PyObject *py_raise_pending, *py_waiter_cls, *py_getcurrent, *py_switch;
static PyObject *py_send, *py_recv, *py_recv_ok, *py_send_closed, *py_recv_closed;
static PyObject *str_popleft, *str_append, *str_bind, *str_winner, *str_chan_send,
    *str_chan_receive;
static PyObject *pe_sched;      /* the running Scheduler (set_sched), or NULL */
static int pe_ready;

/* Borrowed slot value (NULL if unset). GIL held. */
static inline PyObject *SLOT(PyObject *o, Py_ssize_t off)
{
    return *(PyObject **)((char *)o + off);
}

/* Stores v (new reference taken here) in a slot, releasing the old value. GIL held. */
static inline void SET(PyObject *o, Py_ssize_t off, PyObject *v)
{
    PyObject **p = (PyObject **)((char *)o + off);
    PyObject *old = *p;
    Py_XINCREF(v);
    *p = v;
    Py_XDECREF(old);
}

/* No address-taken locals in any function that can be on the stack while a greenlet switches
 * (nor in the CPython inline helpers they use, e.g. PyObject_CallMethodOneArg's argument array):
 * greenlet copies the stack to the heap as raw bytes, and under ASan the redzones around such
 * locals would be reported as a stack-buffer-underflow in greenlet's memcpy. Hence the
 * exported PyObject_Call{Method,Function}ObjArgs (3.10 inlines even PyObject_CallOneArg), and
 * a static timespec. */
static struct timespec pe_ts;   /* GIL held */
static PyObject *pe_switch_args[1];   /* GIL held; borrowed, valid during one call */

/* time.monotonic() (CLOCK_MONOTONIC, seconds). GIL held. */
static inline double pe_monotonic(void)
{
    clock_gettime(CLOCK_MONOTONIC, &pe_ts);
    return (double)pe_ts.tv_sec + (double)pe_ts.tv_nsec * 1e-9;
}

/* Whether channel ch has every slot the C path reads (a subclass whose __init__ skipped
 * Chan.__init__ has not: the Python twin then raises AttributeError instead of a crash). */
static inline int pe_chan_complete(PyObject *ch)
{
    return SLOT(ch, c_buf) != NULL && SLOT(ch, c_cap) != NULL && SLOT(ch, c_recvq) != NULL &&
           SLOT(ch, c_sendq) != NULL && SLOT(ch, c_closed) != NULL;
}

/* The running scheduler if the caller is its running G's greenlet, else NULL (no error set).
 * GIL held. */
static PyObject *pe_running_sched(void)
{
    PyObject *s = pe_sched;
    if (s == NULL)
        return NULL;
    PyObject *g = SLOT(s, s_cur);
    if (g == NULL || g == Py_None)
        return NULL;
    PyObject *cur = PyObject_Vectorcall(py_getcurrent, NULL, 0, NULL);
    if (cur == NULL) {
        PyErr_Clear();
        return NULL;
    }
    int mine = SLOT(g, g_glet) == cur;
    Py_DECREF(cur);
    return mine ? s : NULL;
}

/* Raises the exception object exc (as Python's `raise exc`); returns NULL. GIL held. */
static PyObject *pe_raise(PyObject *exc)
{
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    return NULL;
}

/* Calls o.name(arg) (arg may be NULL: no argument). New reference or NULL. GIL held. */
static inline PyObject *pe_call1(PyObject *o, PyObject *name, PyObject *arg)
{
    return PyObject_CallMethodObjArgs(o, name, arg, NULL);
}

/* Stores the int v in slot off of o. 0, or -1 with an exception. GIL held. */
static int pe_set_int(PyObject *o, Py_ssize_t off, Py_ssize_t v)
{
    PyObject *i = PyLong_FromSsize_t(v);
    if (i == NULL)
        return -1;
    SET(o, off, i);
    Py_DECREF(i);
    return 0;
}

/* _park.take_direct(s): the next G for a G-to-G switch (fairness rules 1, 2 and 4), or None when
 * the hub must choose. New reference, or NULL with an exception. GIL held. */
static PyObject *pe_take_direct(PyObject *s)
{
    PyObject *runq = SLOT(s, s_runq);
    Py_ssize_t nq = PySequence_Size(runq);
    Py_ssize_t streak = PyLong_AsSsize_t(SLOT(s, s_streak));
    if (nq < 0 || (streak == -1 && PyErr_Occurred()))
        return NULL;
    int no_free = PyList_GET_SIZE(SLOT(s, s_free)) == 0;
    PyObject *nxt = SLOT(s, s_runnext);
    if (nxt != Py_None) {
        if ((streak >= PE_RUNNEXT_STREAK && nq > 0) || (SLOT(nxt, g_glet) == Py_None && no_free))
            Py_RETURN_NONE;
        Py_INCREF(nxt);
        SET(s, s_runnext, Py_None);
        if (pe_set_int(s, s_streak, streak + 1) < 0) {
            Py_DECREF(nxt);
            return NULL;
        }
        return nxt;
    }
    if (nq == 0)
        Py_RETURN_NONE;
    PyObject *head = PySequence_GetItem(runq, 0);
    if (head == NULL)
        return NULL;
    int fresh = SLOT(head, g_glet) == Py_None;
    Py_DECREF(head);
    if (fresh && no_free)
        Py_RETURN_NONE;          /* rule 4: a G needing a new greenlet is started by the hub */
    if (pe_set_int(s, s_streak, 0) < 0)
        return NULL;
    return pe_call1(runq, str_popleft, NULL);
}

/* _park.park_checked(s, g, reason, blocker), in C. New reference (None) or NULL. GIL held.
 * Inlined into its callers: every C frame between a goroutine's Python code and the switch is
 * part of the stack greenlet copies out for each parked goroutine. */
static inline __attribute__((always_inline)) PyObject *pe_park(PyObject *s, PyObject *g, PyObject *reason, PyObject *blocker)
{
    PyObject *pend = SLOT(g, g_pending_exc);
    if (pend != NULL && pend != Py_None)
        return PyObject_CallFunctionObjArgs(py_raise_pending, g, blocker, NULL);
    SET(g, g_state, st_waiting);
    SET(g, g_wait_reason, reason);
    SET(g, g_blocker, blocker);

    unsigned long long tick = PyLong_AsUnsignedLongLong(SLOT(s, s_tick));
    if (tick == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    tick++;
    PyObject *t = PyLong_FromUnsignedLongLong(tick);
    if (t == NULL)
        return NULL;
    SET(s, s_tick, t);
    Py_DECREF(t);

    PyObject *target = NULL;  /* greenlet to switch to; new reference */
    PyObject *nxt = NULL;     /* new reference */
    int direct = 0;
    if (!PyObject_IsTrue(SLOT(s, s_hub_wanted))) {
        PyObject *timers = SLOT(s, s_timers);
        int due = 0;
        if (PyList_GET_SIZE(timers) > 0) {
            PyObject *top = PyList_GET_ITEM(timers, 0);
            double when = PyFloat_AsDouble(PyTuple_GET_ITEM(top, 0));
            if (when == -1.0 && PyErr_Occurred())
                return NULL;
            due = when <= pe_monotonic();
        }
        Py_ssize_t npoll = PyLong_AsSsize_t(SLOT(s, s_npoll));
        if (npoll == -1 && PyErr_Occurred())
            return NULL;
        if (!due && !(npoll && tick % PE_POLL_EVERY == 0))
            direct = 1;
    }
    if (direct) {
        PyObject *rn = SLOT(s, s_runnext);
        Py_ssize_t streak = PyLong_AsSsize_t(SLOT(s, s_streak));
        if (streak == -1 && PyErr_Occurred())
            return NULL;
        if (rn != Py_None && SLOT(rn, g_glet) != Py_None && streak < PE_RUNNEXT_STREAK) {
            nxt = Py_NewRef(rn);
            SET(s, s_runnext, Py_None);
            PyObject *st = PyLong_FromSsize_t(streak + 1);
            if (st == NULL) {
                Py_DECREF(nxt);
                return NULL;
            }
            SET(s, s_streak, st);
            Py_DECREF(st);
        } else {
            nxt = pe_take_direct(s);
            if (nxt == NULL)
                return NULL;
        }
        if (nxt != Py_None) {
            SET(s, s_cur, nxt);
            SET(nxt, g_state, st_running);
            Py_buffer *view = PyMemoryView_GET_BUFFER(SLOT(s, s_mtick));
            *(uint64_t *)view->buf = (uint64_t)tick;
            PyObject *gl = SLOT(nxt, g_glet);
            if (gl == Py_None) {
                /* a worker for it: it reads its G from s.cur (set above), so nothing the
                 * greenlet keeps while it runs, its start arguments included, names the G */
                target = pe_call1(s, str_bind, nxt);
                if (target == NULL) {
                    Py_DECREF(nxt);
                    return NULL;
                }
            } else {
                target = Py_NewRef(gl);
            }
        }
    }
    if (target == NULL) {                       /* the hub decides */
        Py_XDECREF(nxt);
        nxt = NULL;
        SET(s, s_cur, Py_None);
        target = Py_NewRef(SLOT(s, s_hub));
    }
    /* greenlet.switch(target) through a static argument array (GIL held): no array sits in
     * this frame. Nothing is passed: a parked G ignores it, a worker reads s.cur. */
    pe_switch_args[0] = target;
    PyObject *r = PyObject_Vectorcall(py_switch, pe_switch_args, 1, NULL);
    Py_DECREF(target);
    Py_XDECREF(nxt);
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
    if (old != Py_None) {
        PyObject *r = pe_call1(SLOT(s, s_runq), str_append, old);
        if (r == NULL)
            rc = -1;
        Py_XDECREF(r);
    }
    Py_DECREF(old);
    return rc;
}

/* WaitQ.dequeue(): takes and claims the first claimable waiter of WaitQ wq (a select's waiter
 * only if its Sel has no winner yet). New reference; NULL when none (or NULL with an exception).
 * GIL held. */
static PyObject *pe_dequeue(PyObject *wq)
{
    PyObject *q = SLOT(wq, q_q);
    while (PySequence_Size(q) > 0) {
        PyObject *w = pe_call1(q, str_popleft, NULL);
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

/* Chan._try_recv() without waiting: a buffered value (a waiting sender's value takes its slot),
 * else a waiting sender's value, else (closed) None. Returns a new reference with pe_recv_flag
 * set (1: a value, 0: closed and drained); PE_AGAIN when the receiver must wait; NULL on error.
 * GIL held. */
static PyObject pe_again_marker;
#define PE_AGAIN (&pe_again_marker)
static int pe_recv_flag;        /* GIL held: no out-parameter (see the ASan note above) */

static PyObject *pe_try_recv(PyObject *s, PyObject *ch)
{
    PyObject *buf = SLOT(ch, c_buf);
    if (PySequence_Size(buf) > 0) {
        PyObject *v = pe_call1(buf, str_popleft, NULL);
        if (v == NULL)
            return NULL;
        PyObject *w = pe_dequeue(SLOT(ch, c_sendq));    /* a sender waited for room */
        if (w != NULL) {
            PyObject *r = pe_call1(buf, str_append, SLOT(w, w_elem));
            int rc = r == NULL ? -1 : 0;
            Py_XDECREF(r);
            if (rc == 0) {
                SET(w, w_ok, Py_True);
                rc = pe_ready_next(s, SLOT(w, w_g));
            }
            Py_DECREF(w);
            if (rc < 0) {
                Py_DECREF(v);
                return NULL;
            }
        } else if (PyErr_Occurred()) {
            Py_DECREF(v);
            return NULL;
        }
        pe_recv_flag = 1;
        return v;
    }
    PyObject *w = pe_dequeue(SLOT(ch, c_sendq));
    if (w != NULL) {
        SET(w, w_ok, Py_True);
        PyObject *v = Py_NewRef(SLOT(w, w_elem));
        int rc = pe_ready_next(s, SLOT(w, w_g));
        Py_DECREF(w);
        if (rc < 0) {
            Py_DECREF(v);
            return NULL;
        }
        pe_recv_flag = 1;
        return v;
    }
    if (PyErr_Occurred())
        return NULL;
    if (SLOT(ch, c_closed) == Py_True) {
        pe_recv_flag = 0;
        Py_RETURN_NONE;
    }
    return PE_AGAIN;
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
    PyObject *r = pe_call1(SLOT(q, q_q), str_append, w);
    if (r != NULL) {
        Py_DECREF(r);
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

/* Chan.send(v), in C. GIL held; a goroutine. */
static PyObject *pe_chan_send(PyObject *self, PyObject *v)
{
    PyObject *s = pe_chan_complete(self) ? pe_running_sched() : NULL;
    if (s == NULL || PyObject_IsTrue(SLOT(self, c_closed)))
        return PyObject_CallFunctionObjArgs(py_send, self, v, NULL);   /* errors: Python's */
    PyObject *w = pe_dequeue(SLOT(self, c_recvq));  /* _try_send: hand to a receiver */
    if (w != NULL) {
        SET(w, w_elem, v);
        SET(w, w_ok, Py_True);
        int rc = pe_ready_next(s, SLOT(w, w_g));
        Py_DECREF(w);
        if (rc < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    if (PyErr_Occurred())
        return NULL;
    PyObject *buf = SLOT(self, c_buf);
    Py_ssize_t cap = PyLong_AsSsize_t(SLOT(self, c_cap));
    if (cap == -1 && PyErr_Occurred())
        return NULL;
    if (PySequence_Size(buf) < cap) {
        PyObject *r = pe_call1(buf, str_append, v);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    /* Wait for a receiver. */
    w = pe_wait(s, SLOT(self, c_sendq), v, str_chan_send);
    if (w == NULL)
        return NULL;
    int closed = SLOT(w, w_closed) == Py_True;
    Py_DECREF(w);
    if (closed)
        return PyObject_CallFunctionObjArgs(py_send_closed, self, NULL);   /* raises ChanClosed */
    Py_RETURN_NONE;
}

/* recv's core: (value, 1), (None, 0) when closed and drained; NULL on error. The value is
 * returned as a new reference and the flag in pe_recv_flag. GIL held; a goroutine. */
static PyObject *pe_recv_core(PyObject *s, PyObject *ch)
{
    PyObject *v = pe_try_recv(s, ch);
    if (v != PE_AGAIN)
        return v;
    PyObject *w = pe_wait(s, SLOT(ch, c_recvq), Py_None, str_chan_receive);
    if (w == NULL)
        return NULL;
    pe_recv_flag = SLOT(w, w_ok) == Py_True;
    v = Py_NewRef(SLOT(w, w_elem));
    Py_DECREF(w);
    return v;
}

/* Chan.recv_ok(), in C. GIL held; a goroutine. */
static PyObject *pe_chan_recv_ok(PyObject *self, PyObject *unused)
{
    (void)unused;
    PyObject *s = pe_chan_complete(self) ? pe_running_sched() : NULL;
    if (s == NULL)
        return PyObject_CallFunctionObjArgs(py_recv_ok, self, NULL);       /* misuse: Python's */
    PyObject *v = pe_recv_core(s, self);
    if (v == NULL)
        return NULL;
    PyObject *res = PyTuple_Pack(2, v, pe_recv_flag ? Py_True : Py_False);
    Py_DECREF(v);
    return res;
}

/* Chan.recv(), in C. GIL held; a goroutine. */
static PyObject *pe_chan_recv(PyObject *self, PyObject *unused)
{
    (void)unused;
    PyObject *s = pe_chan_complete(self) ? pe_running_sched() : NULL;
    if (s == NULL)
        return PyObject_CallFunctionObjArgs(py_recv, self, NULL);       /* misuse: Python's */
    PyObject *v = pe_recv_core(s, self);
    if (v == NULL || pe_recv_flag)
        return v;
    Py_DECREF(v);
    return PyObject_CallFunctionObjArgs(py_recv_closed, self, NULL);   /* raises ChanClosed */
}

/* iter(Chan): `for v in ch` receives until the channel is closed and drained (Chan.__iter__). */
typedef struct {
    PyObject_HEAD
    PyObject *ch;
} pe_chan_iter;

/* next(): recv_ok() without the tuple; NULL without an exception ends the loop. GIL held. */
static PyObject *pe_chan_iter_next(PyObject *self)
{
    PyObject *ch = ((pe_chan_iter *)self)->ch;
    PyObject *s = pe_chan_complete(ch) ? pe_running_sched() : NULL;
    if (s == NULL) {                             /* misuse: Python's recv_ok raises */
        PyObject *r = PyObject_CallFunctionObjArgs(py_recv_ok, ch, NULL);
        if (r == NULL)
            return NULL;
        PyObject *v = PyTuple_GET_ITEM(r, 1) == Py_True ? Py_NewRef(PyTuple_GET_ITEM(r, 0)) : NULL;
        Py_DECREF(r);
        return v;
    }
    PyObject *v = pe_recv_core(s, ch);
    if (v == NULL || pe_recv_flag)
        return v;
    Py_DECREF(v);
    return NULL;                                 /* closed and drained: the loop ends */
}

static int pe_chan_iter_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((pe_chan_iter *)self)->ch);
    return 0;
}

static void pe_chan_iter_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(((pe_chan_iter *)self)->ch);
    PyObject_GC_Del(self);
}

static PyTypeObject pe_chan_iter_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "preempt._hot.ChanIterator",
    .tp_basicsize = sizeof(pe_chan_iter),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Receives from a channel until it is closed and drained.",
    .tp_traverse = pe_chan_iter_traverse,
    .tp_dealloc = pe_chan_iter_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = pe_chan_iter_next,
};

/* Chan.__iter__(), in C. GIL held. */
static PyObject *pe_chan_iter_new(PyObject *self, PyObject *unused)
{
    (void)unused;
    pe_chan_iter *it = PyObject_GC_New(pe_chan_iter, &pe_chan_iter_type);
    if (it == NULL)
        return NULL;
    it->ch = Py_NewRef(self);
    PyObject_GC_Track((PyObject *)it);
    return (PyObject *)it;
}

static PyMethodDef pe_chan_iter_def = {"__iter__", pe_chan_iter_new, METH_NOARGS, NULL};
static PyMethodDef pe_chan_send_def = {"send", pe_chan_send, METH_O, NULL};
static PyMethodDef pe_chan_recv_def = {"recv", pe_chan_recv, METH_NOARGS, NULL};
static PyMethodDef pe_chan_recv_ok_def = {"recv_ok", pe_chan_recv_ok, METH_NOARGS, NULL};

/* The offset of __slots__ member `name` of class cls, or -1 with an exception. Init only. */
static Py_ssize_t pe_slot_offset(PyObject *cls, const char *name)
{
    PyObject *d = PyObject_GetAttrString(cls, name);
    if (d == NULL)
        return -1;
    Py_ssize_t off = -1;
    if (Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX && !(m->flags & READONLY))
            off = m->offset;
    }
    Py_DECREF(d);
    if (off < 0)
        PyErr_Format(PyExc_TypeError, "preempt._hot: %R.%s is not a writable __slots__ member",
                     cls, name);
    return off;
}

/* init(cfg: dict) -> None: offsets and callbacks (see _runtime/_hotpath.py). Once, GIL held. */
static PyObject *pe_init(PyObject *self, PyObject *cfg)
{
    (void)self;
    if (!PyDict_Check(cfg)) {
        PyErr_SetString(PyExc_TypeError, "init(cfg: dict)");
        return NULL;
    }
#define GET(name) PyDict_GetItemString(cfg, name)
    PyObject *G = GET("Goroutine"), *W = GET("Waiter"), *Q = GET("WaitQ"), *C = GET("Chan"),
             *S = GET("Scheduler");
    if (!G || !W || !Q || !C || !S) {
        PyErr_SetString(PyExc_KeyError, "init: a class is missing");
        return NULL;
    }
    struct { Py_ssize_t *off; PyObject *cls; const char *name; } slots[] = {
        {&g_state, G, "state"}, {&g_glet, G, "glet"}, {&g_blocker, G, "blocker"},
        {&g_wait_reason, G, "wait_reason"}, {&g_wake_exc, G, "wake_exc"},
        {&g_pending_exc, G, "pending_exc"}, {&g_waiter, G, "waiter"},
        {&w_g, W, "g"}, {&w_elem, W, "elem"}, {&w_ok, W, "ok"}, {&w_sel, W, "sel"},
        {&w_q, W, "q"}, {&w_closed, W, "closed"}, {&q_q, Q, "_q"},
        {&c_buf, C, "_buf"}, {&c_cap, C, "_cap"}, {&c_recvq, C, "_recvq"},
        {&c_sendq, C, "_sendq"}, {&c_closed, C, "_closed"},
        {&s_cur, S, "cur"}, {&s_runnext, S, "runnext"}, {&s_runq, S, "runq"},
        {&s_streak, S, "streak"}, {&s_tick, S, "tick"}, {&s_mtick, S, "mtick"},
        {&s_hub_wanted, S, "hub_wanted"}, {&s_timers, S, "timers"}, {&s_npoll, S, "npoll"},
        {&s_hub, S, "hub"}, {&s_free, S, "free"},
    };
    for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
        *slots[i].off = pe_slot_offset(slots[i].cls, slots[i].name);
        if (*slots[i].off < 0)
            return NULL;
    }
    struct { PyObject **dst; const char *name; } objs[] = {
        {&st_runnable, "RUNNABLE"}, {&st_running, "RUNNING"}, {&st_waiting, "WAITING"},
        {&py_raise_pending, "raise_pending"},
        {&py_waiter_cls, "Waiter"}, {&py_getcurrent, "getcurrent"}, {&py_switch, "switch"},
        {&py_send, "send"}, {&py_recv, "recv"}, {&py_recv_ok, "recv_ok"},
        {&py_send_closed, "send_closed"}, {&py_recv_closed, "recv_closed"},
    };
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) {
        PyObject *o = GET(objs[i].name);
        if (o == NULL) {
            PyErr_Format(PyExc_KeyError, "init: %s is missing", objs[i].name);
            return NULL;
        }
        Py_XSETREF(*objs[i].dst, Py_NewRef(o));
    }
#undef GET
    pe_ready = 1;
    Py_RETURN_NONE;
}

/* set_sched(s or None): the running scheduler, mirrored from _park.sched. GIL held. */
static PyObject *pe_set_sched(PyObject *self, PyObject *s)
{
    (void)self;
    Py_XSETREF(pe_sched, s == Py_None ? NULL : Py_NewRef(s));
    Py_RETURN_NONE;
}

/* chan_methods(Chan) -> (send, recv, recv_ok): method descriptors bound to class Chan. */
static PyObject *pe_chan_methods(PyObject *self, PyObject *cls)
{
    (void)self;
    if (!pe_ready || !PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "chan_methods(Chan) after init()");
        return NULL;
    }
    PyTypeObject *t = (PyTypeObject *)cls;
    /* The Python twins' docstrings, so help(Chan) reads the same: the strings stay alive with
     * the functions init() holds. */
    struct { PyMethodDef *def; PyObject *twin; } docs[] = {
        {&pe_chan_send_def, py_send}, {&pe_chan_recv_def, py_recv},
        {&pe_chan_recv_ok_def, py_recv_ok},
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        PyObject *doc = PyObject_GetAttrString(docs[i].twin, "__doc__");
        if (doc == NULL)
            return NULL;
        if (PyUnicode_Check(doc))
            docs[i].def->ml_doc = PyUnicode_AsUTF8(doc);
        Py_DECREF(doc);               /* still referenced by the function */
    }
    PyObject *a = PyDescr_NewMethod(t, &pe_chan_send_def);
    PyObject *b = PyDescr_NewMethod(t, &pe_chan_recv_def);
    PyObject *c = PyDescr_NewMethod(t, &pe_chan_recv_ok_def);
    PyObject *d = PyDescr_NewMethod(t, &pe_chan_iter_def);
    PyObject *r = (a && b && c && d) ? PyTuple_Pack(4, a, b, c, d) : NULL;
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(c);
    Py_XDECREF(d);
    return r;
}

static PyMethodDef pe_hot_methods[] = {
    {"init", pe_init, METH_O, "init(cfg): slot offsets and callbacks"},
    {"set_sched", pe_set_sched, METH_O, "set_sched(s): the running scheduler or None"},
    {"park", (PyCFunction)(void (*)(void))pe_park_py, METH_FASTCALL,
     "park(s, g, reason, blocker): _park.park_checked in C"},
    {"chan_methods", pe_chan_methods, METH_O,
     "chan_methods(Chan) -> (send, recv, recv_ok, __iter__)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef pe_hot_module = {
    PyModuleDef_HEAD_INIT, "preempt._hot", "The channel hand-off path in C. See csrc/pe_hot.c.",
    -1, pe_hot_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__hot(void)
{
    str_popleft = PyUnicode_InternFromString("popleft");
    str_append = PyUnicode_InternFromString("append");
    str_bind = PyUnicode_InternFromString("bind");
    str_winner = PyUnicode_InternFromString("winner");
    str_chan_send = PyUnicode_InternFromString("chan send");
    str_chan_receive = PyUnicode_InternFromString("chan receive");
    if (!str_popleft || !str_append || !str_bind || !str_winner || !str_chan_send ||
        !str_chan_receive)
        return NULL;
    if (PyType_Ready(&pe_chan_iter_type) < 0)
        return NULL;
    return PyModule_Create(&pe_hot_module);
}
