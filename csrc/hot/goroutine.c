/*
 * csrc/hot/goroutine.c: A goroutine's life: its end (_sched._g_done), join, and a new Goroutine made
 * without its Python __init__ (new_g).
 *
 * Part of preempt._hot: included by csrc/pe_hot.c, which is the one translation unit
 * (greenlet's way), so every function stays static and inlinable. Not compiled alone.
 */

/* _sched._g_done(s, g), in C, with Goroutine._finish inlined: the bookkeeping for a G whose
 * function returned or raised. The reporter for an exception (rare) is armed in Python. Its
 * worker greenlet, GIL held. */
static PyObject *pe_g_done(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyObject_TypeCheck(args[1], (PyTypeObject *)py_goroutine_cls)) {
        PyErr_SetString(PyExc_TypeError, "g_done(s, g: Goroutine)");
        return NULL;
    }
    PyObject *s = args[0], *g = args[1];
    PyObject *gs = SLOT(s, s_gs);                     /* del s.gs[g.id] */
    if (gs == NULL || PyObject_DelItem(gs, SLOT(g, g_id)) < 0) {
        if (gs == NULL)
            PyErr_SetString(PyExc_AttributeError, "g_done: the scheduler has no gs");
        return NULL;
    }
    SET(g, g_state, st_dead);                         /* Goroutine._finish */
    SET(g, g_fn, Py_None);
    SET(g, g_args, Py_None);
    SET(g, g_kwargs, Py_None);
    SET(g, g_locals, Py_None);
    SET(g, g_waiter, Py_None);
    PyObject *q = SLOT(g, g_joiners);
    if (q != NULL && q != Py_None) {
        Py_INCREF(q);
        SET(g, g_joiners, Py_None);       /* the queue names the G: no cycle keeps it alive */
        Py_ssize_t n = pe_sched != NULL ? pe_wake_all(pe_sched, q) : -2;
        if (n == -2) {
            PyObject *r = PyObject_CallFunctionObjArgs(py_wake_all, q, NULL);
            n = r == NULL ? -1 : 0;
            Py_XDECREF(r);
        }
        Py_DECREF(q);
        if (n < 0)
            return NULL;
    }
    PyObject *exc = SLOT(g, g_exc);
    if (exc != NULL && exc != Py_None && !PyObject_TypeCheck(exc, (PyTypeObject *)py_cancelled)) {
        if (SLOT(s, s_main) != g)
            return PyObject_CallFunctionObjArgs(py_arm_reporter, g, NULL);
    }
    Py_RETURN_NONE;
}

/* Goroutine.join(timeout=None), in C for the common case — no timeout, called from another
 * goroutine — and for a result; the Python twin for everything else (a timeout, misuse, the
 * exception of a G that raised, which it re-raises and un-reports). A goroutine, GIL held. */
static PyObject *pe_g_join(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames)
{
    if (kwnames != NULL || nargs > 1 || (nargs == 1 && args[0] != Py_None))
        goto python;
    if (SLOT(self, g_state) != st_dead) {
        PyObject *s = pe_running_sched();
        if (s == NULL || SLOT(s, s_cur) == self)
            goto python;                             /* outside a goroutine, or itself */
        PyObject *q = SLOT(self, g_joiners);
        if (q == NULL || q == Py_None) {
            q = pe_new_waitq(self);
            if (q == NULL)
                return NULL;
            SET(self, g_joiners, q);
            Py_DECREF(q);
        }
        Py_INCREF(s);
        PyObject *w = pe_wait(s, q, Py_None, str_join);
        Py_DECREF(s);
        if (w == NULL)
            return NULL;                             /* interrupted while it waited */
        Py_DECREF(w);
    }
    PyObject *exc = SLOT(self, g_exc);
    if (exc == NULL || exc == Py_None) {
        PyObject *r = SLOT(self, g_result);
        return Py_NewRef(r != NULL ? r : Py_None);
    }
python:
    return pe_call_twin(py_join, self, args, nargs, kwnames);
}

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

/* new_g(fn, args, kwargs, name, preemptible): Goroutine(...) without running the Python
 * __init__: the same fields, the defaults read from a Goroutine that __init__ made (init()), the
 * id from the same counter. Runtime code on the M, GIL held. */
static PyObject *pe_new_g(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "new_g(fn, args, kwargs, name, preemptible)");
        return NULL;
    }
    PyObject *fn = args[0], *name = args[3];
    PyObject *id = PyIter_Next(py_g_ids);
    if (id == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "new_g: the goroutine id counter ended");
        return NULL;
    }
    if (name == Py_None) {                       /* getattr(fn, "__name__", None) or repr(fn) */
        PyObject *n = PyObject_GetAttr(fn, str_dunder_name);
        if (n == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                Py_DECREF(id);
                return NULL;
            }
            PyErr_Clear();
        } else {
            int t = PyObject_IsTrue(n);
            if (t <= 0)
                Py_CLEAR(n);
            if (t < 0) {
                Py_DECREF(id);
                return NULL;
            }
        }
        name = n != NULL ? n : PyObject_Repr(fn);
        if (name == NULL) {
            Py_DECREF(id);
            return NULL;
        }
    } else {
        Py_INCREF(name);
    }
    PyTypeObject *t = (PyTypeObject *)py_goroutine_cls;
    PyObject *g = t->tp_alloc(t, 0);
    if (g == NULL) {
        Py_DECREF(id);
        Py_DECREF(name);
        return NULL;
    }
    SET(g, g_id, id);
    SET(g, g_name, name);
    Py_DECREF(id);
    Py_DECREF(name);
    SET(g, g_fn, fn);
    SET(g, g_args, args[1]);
    SET(g, g_kwargs, args[2]);
    SET(g, g_preemptible, args[4]);
    for (int i = 0; i < pe_g_ndefaults; i++)
        SET(g, pe_g_default_off[i], pe_g_default_val[i]);
    return g;
}

/* Reads Goroutine.__init__'s defaults from a G it made (``sample``), for new_g: every slot but
 * those new_g sets from its arguments. 0, or -1 with an exception. Init only. */
static int pe_g_defaults(PyObject *sample)
{
    PyObject *fields = PyObject_GetAttrString(py_goroutine_cls, "__slots__");
    PyObject *seq = fields != NULL ? PySequence_Fast(fields, "Goroutine.__slots__") : NULL;
    Py_XDECREF(fields);
    if (seq == NULL)
        return -1;
    for (int i = 0; i < pe_g_ndefaults; i++)
        Py_CLEAR(pe_g_default_val[i]);
    pe_g_ndefaults = 0;
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *n = PySequence_Fast_GET_ITEM(seq, i);
        const char *name = PyUnicode_Check(n) ? PyUnicode_AsUTF8(n) : NULL;
        if (name == NULL) {
            rc = -1;
            break;
        }
        if (!strcmp(name, "__weakref__") || !strcmp(name, "id") || !strcmp(name, "name") ||
            !strcmp(name, "fn") || !strcmp(name, "args") || !strcmp(name, "kwargs") ||
            !strcmp(name, "preemptible"))
            continue;
        Py_ssize_t off = pe_slot_offset(py_goroutine_cls, name);
        PyObject *v = off >= 0 ? SLOT(sample, off) : NULL;
        if (v == NULL) {
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "init: Goroutine.__init__ left %s unset", name);
            rc = -1;
        } else if (pe_g_ndefaults == PE_G_MAX_FIELDS) {
            PyErr_SetString(PyExc_TypeError, "init: Goroutine has too many slots");
            rc = -1;
        } else {
            pe_g_default_off[pe_g_ndefaults] = off;
            pe_g_default_val[pe_g_ndefaults++] = Py_NewRef(v);
        }
    }
    Py_DECREF(seq);
    return rc;
}
