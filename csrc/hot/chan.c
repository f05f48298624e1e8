/*
 * csrc/hot/chan.c: Channels (chan.py): the non-waiting receive, send, recv, recv_ok and iteration.
 *
 * Part of preempt._hot: included by csrc/pe_hot.c, which is the one translation unit
 * (greenlet's way), so every function stays static and inlinable. Not compiled alone.
 */

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
    if (pe_qlen(buf) > 0) {
        PyObject *v = pe_popleft(buf);
        if (v == NULL)
            return NULL;
        PyObject *w = pe_dequeue(SLOT(ch, c_sendq));    /* a sender waited for room */
        if (w != NULL) {
            int rc = pe_append(buf, SLOT(w, w_elem));
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
    Py_ssize_t n = pe_qlen(buf);
    if (n < 0)
        return NULL;
    if (n < cap) {
        if (pe_append(buf, v) < 0)
            return NULL;
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
