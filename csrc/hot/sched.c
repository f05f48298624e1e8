/*
 * csrc/hot/sched.c: The run queue and the switch: take_direct, bind, the switch count, next_or_hub
 * and switch_to (_park.py fairness rules 1-4).
 *
 * Part of preempt._hot: included by csrc/pe_hot.c, which is the one translation unit
 * (greenlet's way), so every function stays static and inlinable. Not compiled alone.
 */

/* _park.take_direct(s): the next G for a G-to-G switch (fairness rules 1, 2 and 4), or None when
 * the hub must choose. New reference, or NULL with an exception. GIL held. */
static PyObject *pe_take_direct(PyObject *s)
{   /* its twin caps streak at the limit: only whether it got there matters */
    PyObject *runq = SLOT(s, s_runq);
    Py_ssize_t nq = pe_qlen(runq);
    Py_ssize_t streak = PyLong_AsSsize_t(SLOT(s, s_streak));
    if (nq < 0 || (streak == -1 && PyErr_Occurred()))
        return NULL;
    int no_free = PyList_GET_SIZE(SLOT(s, s_free)) == 0;
    PyObject *nxt = SLOT(s, s_runnext);
    if (nxt != Py_None) {
        if ((streak >= pe_runnext_streak && nq > 0) || (SLOT(nxt, g_glet) == Py_None && no_free))
            Py_RETURN_NONE;
        Py_INCREF(nxt);
        SET(s, s_runnext, Py_None);
        if (streak < pe_runnext_streak && pe_set_int(s, s_streak, streak + 1) < 0) {
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
    uint64_t *iofront = pe_word(SLOT(s, s_iofront));     /* _park.queue_io's segment */
    if (iofront == NULL)
        return NULL;
    if (*iofront)
        --*iofront;
    return pe_popleft(runq);
}

/* Scheduler.bind(g), in C when a worker greenlet is free (pop it, g.glet = it), else the Python
 * method (which makes one). New reference or NULL. GIL held. */
static PyObject *pe_bind(PyObject *s, PyObject *g)
{
    PyObject *free = SLOT(s, s_free);
    if (!PyList_CheckExact(free) || PyList_GET_SIZE(free) == 0)
        return pe_call1(s, str_bind, g);
    Py_ssize_t n = PyList_GET_SIZE(free);
    PyObject *glet = Py_NewRef(PyList_GET_ITEM(free, n - 1));
    if (PyList_SetSlice(free, n - 1, n, NULL) < 0) {
        Py_DECREF(glet);
        return NULL;
    }
    SET(g, g_glet, glet);
    return glet;
}

/* s.ticks[0] += 1 (the switch count); returns the new count, or 0 with an exception (the count
 * starts at 0 and only grows, so 0 is never a count). GIL held. */
static inline unsigned long long pe_bump_tick(PyObject *s)
{
    uint64_t *w = pe_word(SLOT(s, s_ticks));
    return w == NULL ? 0 : ++*w;
}

/* _park.next_or_hub(s, None, tick): the greenlet a G that gives up the CPU switches to — the
 * next G's (it becomes s.cur, running, and sysmon sees the switch), or the hub's (s.cur None).
 * New reference, or NULL with an exception. GIL held. */
static inline __attribute__((always_inline)) PyObject *pe_next_or_hub(PyObject *s,
                                                                       unsigned long long tick)
{
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
        if (!due && !(npoll && tick % (unsigned long long)pe_poll_every == 0))
            direct = 1;
    }
    if (direct) {
        PyObject *nxt = pe_take_direct(s);
        if (nxt == NULL)
            return NULL;
        if (nxt != Py_None) {
            uint64_t *mtick = pe_word(SLOT(s, s_mtick));
            if (mtick == NULL) {
                Py_DECREF(nxt);
                return NULL;
            }
            SET(s, s_cur, nxt);               /* s.cur holds the G from here on */
            SET(nxt, g_state, st_running);
            *mtick = (uint64_t)tick;
            PyObject *gl = SLOT(nxt, g_glet);
            /* a G that starts now gets a worker (s.bind): it reads its G from s.cur, so nothing
             * the greenlet keeps while it runs, its start arguments included, names the G */
            PyObject *target = gl == Py_None ? pe_bind(s, nxt) : Py_NewRef(gl);
            Py_DECREF(nxt);
            return target;
        }
        Py_DECREF(nxt);
    }
    SET(s, s_cur, Py_None);
    return Py_NewRef(SLOT(s, s_hub));
}

/* target.switch() with nothing passed (a parked G ignores it, a worker reads s.cur); steals
 * the reference to target. The switch's result (new reference) or NULL when an exception was
 * thrown into this greenlet. Keeps the caller's errno: whatever the goroutines that ran
 * meanwhile did to the M's errno, the caller finds its own (_runtime/_errno.py, rule 1). GIL
 * held. */
static inline __attribute__((always_inline)) PyObject *pe_switch_to(PyObject *target)
{
    PyObject *r;
    int saved_errno = errno;    /* a register or a plain slot: its address is never taken */
    if (pe_green_switch != NULL && PyObject_TypeCheck(target, PyDescr_TYPE(py_switch))) {
        r = pe_green_switch(target, pe_empty_tuple, NULL);
    } else {
        /* through a static argument array (GIL held): no array sits in this frame */
        pe_switch_args[0] = target;
        r = PyObject_Vectorcall(py_switch, pe_switch_args, 1, NULL);
    }
    Py_DECREF(target);          /* may run a finaliser: errno is written back after it */
    errno = saved_errno;
    return r;
}
