/*
 * csrc/hot/base.h: The state init() fills in (slot offsets, the states and the Python twins), slot
 * access, the direct calls into deque and greenlet, and the small helpers every part uses.
 *
 * Part of preempt._hot: included by csrc/pe_hot.c, which is the one translation unit
 * (greenlet's way), so every function stays static and inlinable. Not compiled alone.
 */
#ifndef PE_HOT_BASE_H
#define PE_HOT_BASE_H

/* The scheduling constants, from init() (their one definition is _runtime/_rules.py). */
static Py_ssize_t pe_runnext_streak, pe_poll_every;

/* Slot offsets, filled by init() from the classes' member descriptors. */
static Py_ssize_t g_state, g_glet, g_blocker, g_wait_reason, g_wake_exc, g_pending_exc, g_waiter;
static Py_ssize_t w_g, w_elem, w_ok, w_sel, w_q, w_closed;
static Py_ssize_t q_q;
static Py_ssize_t c_buf, c_cap, c_recvq, c_sendq, c_closed;
static Py_ssize_t s_cur, s_runnext, s_runq, s_streak, s_ticks, s_mtick, s_iofront, s_hub_wanted,
    s_timers, s_npoll, s_hub, s_free, s_free_max, s_main, s_gs;

/* Objects from init(): the state strings, the Python twins and helpers. Strong references. */
static PyObject *st_runnable, *st_running, *st_waiting;
static PyObject *py_raise_pending, *py_waiter_cls, *py_getcurrent, *py_switch;
static PyObject *py_send, *py_recv, *py_recv_ok, *py_send_closed, *py_recv_closed;
static PyObject *py_ready, *py_park_cached, *py_goroutine_cls, *py_g_ids;
static Py_ssize_t g_id, g_name, g_fn, g_args, g_kwargs, g_preemptible, g_joiners, g_locals,
    g_exc;
static PyObject *st_dead, *py_cancelled, *py_arm_reporter, *py_wake_all, *py_join,
    *py_waitq_cls;
static Py_ssize_t g_result, q_owner;
/* Goroutine.__init__'s defaults: (offset, value) for every other slot, from init(). */
#define PE_G_MAX_FIELDS 64
static Py_ssize_t pe_g_default_off[PE_G_MAX_FIELDS];
static PyObject *pe_g_default_val[PE_G_MAX_FIELDS];
static int pe_g_ndefaults;
static PyObject *str_popleft, *str_append, *str_bind, *str_winner, *str_dunder_name, *str_join,
    *str_chan_send, *str_chan_receive;
static PyObject *pe_sched;      /* the running Scheduler (set_sched), or NULL */
static int pe_ready;

/* The C functions behind collections.deque's popleft/append, greenlet.switch and
 * greenlet.getcurrent, read from their descriptors by init(), so that the hot path calls them
 * directly: no method lookup, no argument tuple, and two C frames fewer on the stack that
 * greenlet copies out for every parked goroutine. A deque is used that way only if its type is
 * exactly collections.deque (whose ob_size is its length: Py_SIZE, as _collectionsmodule.c
 * reads it); anything else goes through the generic calls. NULL until init(). */
static PyTypeObject *pe_deque_type;
static PyCFunction pe_deque_popleft, pe_deque_append;     /* METH_NOARGS, METH_O */
static PyCFunctionWithKeywords pe_green_switch;           /* METH_VARARGS | METH_KEYWORDS */
static PyCFunction pe_getcurrent_fn;                      /* METH_NOARGS */
/* The frame stacks' running-greenlet reader (csrc/pe_gstack.c, its "_owner_api" capsule), or
 * NULL where they are off: the greenlet whose small root chunk the caller's frames are on. */
typedef PyObject *(*pe_owner_fn)(void);
static pe_owner_fn pe_gs_owner_fn;
static PyObject *pe_getcurrent_self, *pe_empty_tuple;

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
 * The caller's greenlet comes from the frame stack its frames are on when that is one of ours
 * (every worker greenlet on 3.11+: a few loads), else from greenlet.getcurrent(). GIL held. */
static PyObject *pe_running_sched(void)
{
    PyObject *s = pe_sched;
    if (s == NULL)
        return NULL;
    PyObject *g = SLOT(s, s_cur);
    if (g == NULL || g == Py_None)
        return NULL;
    if (pe_gs_owner_fn != NULL) {
        PyObject *owner = pe_gs_owner_fn();
        if (owner != NULL)
            return SLOT(g, g_glet) == owner ? s : NULL;
    }
    PyObject *cur = pe_getcurrent_fn != NULL ? pe_getcurrent_fn(pe_getcurrent_self, NULL)
                                             : PyObject_Vectorcall(py_getcurrent, NULL, 0, NULL);
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

/* len(q) for a deque q (-1 with an exception). GIL held. */
static inline Py_ssize_t pe_qlen(PyObject *q)
{
    return Py_IS_TYPE(q, pe_deque_type) ? Py_SIZE(q) : PySequence_Size(q);
}

/* q.popleft(): new reference or NULL. GIL held. */
static inline PyObject *pe_popleft(PyObject *q)
{
    return Py_IS_TYPE(q, pe_deque_type) ? pe_deque_popleft(q, NULL)
                                        : pe_call1(q, str_popleft, NULL);
}

/* q.append(v): 0, or -1 with an exception. GIL held. */
static inline int pe_append(PyObject *q, PyObject *v)
{
    PyObject *r = Py_IS_TYPE(q, pe_deque_type) ? pe_deque_append(q, v)
                                               : pe_call1(q, str_append, v);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
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

/* The 64-bit word behind the memoryview o (Scheduler.ticks, .mtick or .iofront), or NULL with an
 * exception when o is not one (a scheduler whose fields were replaced). GIL held. */
static inline uint64_t *pe_word(PyObject *o)
{
    if (PyMemoryView_Check(o)) {
        Py_buffer *view = PyMemoryView_GET_BUFFER(o);
        if (view->len == (Py_ssize_t)sizeof(uint64_t) && !view->readonly)
            return (uint64_t *)view->buf;
        PyErr_Format(PyExc_TypeError, "scheduler word: want a writable 8-byte memoryview, not "
                     "a %s%zd-byte one", view->readonly ? "read-only " : "", view->len);
        return NULL;
    }
    PyErr_Format(PyExc_TypeError, "scheduler word: want a writable 8-byte memoryview, not %.100s",
                 Py_TYPE(o)->tp_name);
    return NULL;
}

/* twin(self, *args, **kwargs) for a vectorcall (args, nargs, kwnames): how a C method hands an
 * unusual call to its Python twin. New reference or NULL. GIL held. */
static PyObject *pe_call_twin(PyObject *twin, PyObject *self, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t nk = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *pos = PyTuple_New(nargs + 1), *kw = nk ? PyDict_New() : NULL, *r = NULL;
    if (pos != NULL && (nk == 0 || kw != NULL)) {
        PyTuple_SET_ITEM(pos, 0, Py_NewRef(self));
        for (Py_ssize_t i = 0; i < nargs; i++)
            PyTuple_SET_ITEM(pos, i + 1, Py_NewRef(args[i]));
        int ok = 1;
        for (Py_ssize_t i = 0; ok && i < nk; i++)   /* keyword values follow the positional */
            ok = PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) == 0;
        if (ok)
            r = PyObject_Call(twin, pos, kw);
    }
    Py_XDECREF(pos);
    Py_XDECREF(kw);
    return r;
}

#endif /* PE_HOT_BASE_H */
