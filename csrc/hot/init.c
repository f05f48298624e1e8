/*
 * csrc/hot/init.c: init(): the offsets, constants and callbacks chan.py hands over; set_sched; the
 * method descriptors chan.py puts on Chan, WaitQ and Goroutine.
 *
 * Part of preempt._hot: included by csrc/pe_hot.c, which is the one translation unit
 * (greenlet's way), so every function stays static and inlinable. Not compiled alone.
 */

static PyMethodDef pe_chan_iter_def = {"__iter__", pe_chan_iter_new, METH_NOARGS, NULL};
static PyMethodDef pe_waitq_dequeue_def = {"dequeue", pe_waitq_dequeue, METH_NOARGS, NULL};
static PyMethodDef pe_waitq_wake_all_def = {"wake_all", pe_waitq_wake_all, METH_NOARGS, NULL};
static PyMethodDef pe_g_join_def = {"join", (PyCFunction)(void (*)(void))pe_g_join,
                                    METH_FASTCALL | METH_KEYWORDS, NULL};

/* g_methods(Goroutine) -> (join,): method descriptors bound to class Goroutine. */
static PyObject *pe_g_methods(PyObject *self, PyObject *cls)
{
    (void)self;
    if (!pe_ready || cls != py_goroutine_cls) {
        PyErr_SetString(PyExc_TypeError, "g_methods(Goroutine) after init()");
        return NULL;
    }
    PyObject *doc = PyObject_GetAttrString(py_join, "__doc__");
    if (doc == NULL)
        return NULL;
    if (PyUnicode_Check(doc))
        pe_g_join_def.ml_doc = PyUnicode_AsUTF8(doc);  /* kept alive by py_join */
    Py_DECREF(doc);
    PyObject *a = PyDescr_NewMethod((PyTypeObject *)cls, &pe_g_join_def);
    PyObject *r = a != NULL ? PyTuple_Pack(1, a) : NULL;
    Py_XDECREF(a);
    return r;
}
static PyMethodDef pe_waitq_park_cached_def = {
    "park_cached", (PyCFunction)(void (*)(void))pe_waitq_park_cached,
    METH_FASTCALL | METH_KEYWORDS, NULL};
static PyMethodDef pe_chan_send_def = {"send", pe_chan_send, METH_O, NULL};
static PyMethodDef pe_chan_recv_def = {"recv", pe_chan_recv, METH_NOARGS, NULL};
static PyMethodDef pe_chan_recv_ok_def = {"recv_ok", pe_chan_recv_ok, METH_NOARGS, NULL};

/* The C function of builtin method `name` of type t, if its calling convention is `flags`
 * (exactly); else NULL, and the generic call is used. Init only. */
static PyCFunction pe_cfunc_of(PyObject *t, const char *name, int flags)
{
    PyObject *d = PyObject_GetAttrString(t, name);
    PyCFunction fn = NULL;
    if (d != NULL && Py_IS_TYPE(d, &PyMethodDescr_Type)) {
        PyMethodDef *m = ((PyMethodDescrObject *)d)->d_method;
        if ((m->ml_flags & ~METH_COEXIST) == flags)
            fn = m->ml_meth;
    }
    Py_XDECREF(d);
    PyErr_Clear();
    return fn;
}

/* Fills the direct-call table (see pe_deque_type) from collections.deque and the greenlet
 * objects init() was given. 0, or -1 with an exception. Init only. */
static int pe_bind_cfuncs(PyObject *deque)
{
    if (deque == NULL || !PyType_Check(deque)) {
        PyErr_SetString(PyExc_KeyError, "init: deque (collections.deque) is missing");
        return -1;
    }
    if (pe_empty_tuple == NULL && (pe_empty_tuple = PyTuple_New(0)) == NULL)
        return -1;
    PyCFunction pl = pe_cfunc_of(deque, "popleft", METH_NOARGS);
    PyCFunction ap = pe_cfunc_of(deque, "append", METH_O);
    if (pl != NULL && ap != NULL) {
        pe_deque_popleft = pl;
        pe_deque_append = ap;
        Py_XSETREF(pe_deque_type, (PyTypeObject *)Py_NewRef(deque));
    }
    pe_green_switch = NULL;
    if (Py_IS_TYPE(py_switch, &PyMethodDescr_Type)) {
        PyMethodDef *m = ((PyMethodDescrObject *)py_switch)->d_method;
        if ((m->ml_flags & ~METH_COEXIST) == (METH_VARARGS | METH_KEYWORDS))
            pe_green_switch = (PyCFunctionWithKeywords)(void (*)(void))m->ml_meth;
    }
    pe_getcurrent_fn = NULL;
    if (PyCFunction_Check(py_getcurrent) &&
        (PyCFunction_GET_FLAGS(py_getcurrent) & ~METH_COEXIST) == METH_NOARGS) {
        pe_getcurrent_fn = PyCFunction_GET_FUNCTION(py_getcurrent);
        Py_XSETREF(pe_getcurrent_self, Py_XNewRef(PyCFunction_GET_SELF(py_getcurrent)));
    }
    return 0;
}

/* init(cfg: dict) -> None: offsets and callbacks (see chan.py's _load_c_path). Once, GIL held. */
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
        {&w_q, W, "q"}, {&w_closed, W, "closed"}, {&q_q, Q, "_q"}, {&q_owner, Q, "_owner"},
        {&c_buf, C, "_buf"}, {&c_cap, C, "_cap"}, {&c_recvq, C, "_recvq"},
        {&c_sendq, C, "_sendq"}, {&c_closed, C, "_closed"},
        {&s_cur, S, "cur"}, {&s_runnext, S, "runnext"}, {&s_runq, S, "runq"},
        {&s_streak, S, "streak"}, {&s_ticks, S, "ticks"}, {&s_mtick, S, "mtick"},
        {&s_iofront, S, "iofront"},
        {&s_hub_wanted, S, "hub_wanted"}, {&s_timers, S, "timers"}, {&s_npoll, S, "npoll"},
        {&s_hub, S, "hub"}, {&s_free, S, "free"}, {&s_free_max, S, "free_max"},
        {&s_main, S, "main"}, {&s_gs, S, "gs"},
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
        {&py_ready, "ready"}, {&py_park_cached, "park_cached"}, {&py_goroutine_cls, "Goroutine"},
        {&py_g_ids, "g_ids"}, {&st_dead, "DEAD"}, {&py_cancelled, "Cancelled"},
        {&py_arm_reporter, "arm_reporter"}, {&py_wake_all, "wake_all"}, {&py_join, "join"},
        {&py_waitq_cls, "WaitQ"},
    };
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) {
        PyObject *o = GET(objs[i].name);
        if (o == NULL) {
            PyErr_Format(PyExc_KeyError, "init: %s is missing", objs[i].name);
            return NULL;
        }
        Py_XSETREF(*objs[i].dst, Py_NewRef(o));
    }
    if (pe_bind_cfuncs(GET("deque")) < 0)
        return NULL;
    struct { Py_ssize_t *off; const char *name; } gslots[] = {
        {&g_id, "id"}, {&g_name, "name"}, {&g_fn, "fn"}, {&g_args, "args"},
        {&g_kwargs, "kwargs"}, {&g_preemptible, "preemptible"}, {&g_joiners, "joiners"},
        {&g_locals, "locals"}, {&g_exc, "exc"}, {&g_result, "result"},
    };
    for (size_t i = 0; i < sizeof gslots / sizeof gslots[0]; i++)
        if ((*gslots[i].off = pe_slot_offset(G, gslots[i].name)) < 0)
            return NULL;
    PyObject *sample = GET("g_sample");
    if (sample == NULL || !PyObject_TypeCheck(sample, (PyTypeObject *)py_goroutine_cls)) {
        PyErr_SetString(PyExc_KeyError, "init: g_sample (a Goroutine) is missing");
        return NULL;
    }
    if (pe_g_defaults(sample) < 0)
        return NULL;
    struct { Py_ssize_t *dst; const char *name; } ints[] = {
        {&pe_runnext_streak, "RUNNEXT_STREAK"}, {&pe_poll_every, "POLL_EVERY"},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        PyObject *o = GET(ints[i].name);
        Py_ssize_t v = o != NULL && PyLong_Check(o) ? PyLong_AsSsize_t(o) : -1;
        if (v <= 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "init: %s must be an int > 0", ints[i].name);
            return NULL;
        }
        *ints[i].dst = v;
    }
    /* gstack_owner: the frame stacks' "_owner_api" capsule, or None where they are off */
    PyObject *cap = GET("gstack_owner");
    pe_gs_owner_fn = NULL;
    if (cap != NULL && cap != Py_None) {
        void *fn = PyCapsule_GetPointer(cap, "preempt._gstack._owner_api");
        if (fn == NULL)
            return NULL;
        pe_gs_owner_fn = (pe_owner_fn)(uintptr_t)fn;
    }
#undef GET
    if (pe_watch_modules() < 0)
        return NULL;
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

/* waitq_methods(WaitQ) -> (dequeue, park_cached, wake_all): method descriptors bound to class
 * WaitQ. */
static PyObject *pe_waitq_methods(PyObject *self, PyObject *cls)
{
    (void)self;
    if (!pe_ready || !PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "waitq_methods(WaitQ) after init()");
        return NULL;
    }
    struct { PyMethodDef *def; const char *twin; } docs[] = {
        {&pe_waitq_dequeue_def, "dequeue"}, {&pe_waitq_park_cached_def, "park_cached"},
        {&pe_waitq_wake_all_def, "wake_all"},
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        PyObject *f = PyObject_GetAttrString(cls, docs[i].twin);
        PyObject *doc = f != NULL ? PyObject_GetAttrString(f, "__doc__") : NULL;
        Py_XDECREF(f);                 /* the class keeps the function, and it its docstring */
        if (doc == NULL)
            return NULL;
        if (PyUnicode_Check(doc))
            docs[i].def->ml_doc = PyUnicode_AsUTF8(doc);
        Py_DECREF(doc);
    }
    PyTypeObject *t = (PyTypeObject *)cls;
    PyObject *a = PyDescr_NewMethod(t, &pe_waitq_dequeue_def);
    PyObject *b = PyDescr_NewMethod(t, &pe_waitq_park_cached_def);
    PyObject *c = PyDescr_NewMethod(t, &pe_waitq_wake_all_def);
    PyObject *r = (a && b && c) ? PyTuple_Pack(3, a, b, c) : NULL;
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(c);
    return r;
}
