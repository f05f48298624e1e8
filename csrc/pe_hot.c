/*
 * preempt._hot: the goroutine hand-off path in C — channels, wait queues, park, and a G's
 * start and end.
 *
 * A channel ping-pong round trip in the pure-Python runtime spends ~60% of its time in the
 * bytecode of Chan.send/recv and _park.park_checked, and a spawn+join in that of go(), join()
 * and the worker's exit (perf and callgrind, CPython 3.11). This module runs exactly that logic
 * in C, on the same Python objects: Goroutine, Waiter, WaitQ, Chan and the Scheduler are
 * __slots__ classes, and init() reads each slot's offset from its member descriptor, so a field
 * access is one load or store, as in a C struct. The Python versions stay the reference and the
 * fallback (no compiler, other platforms, PREEMPT_PURE=1), and every path this file does not
 * handle (misuse, errors, a send on a closed channel, a pending interrupt, a timeout, making a
 * new worker greenlet) calls back into them.
 *
 * What runs here, and its rules, are those of
 *   _park.park_checked/next_or_hub/take_direct/ready/exit_g, _sched._g_done and
 *   Scheduler.bind, Goroutine.__init__ (new_g)/_finish/join, WaitQ.__init__/dequeue/
 *   park_cached/wake_all and Chan.send/recv/recv_ok/_try_recv/__iter__:
 * see their docstrings; each function below names its Python twin. The end of chan.py puts
 * these in place of their twins, and passes the states and constants of _runtime/_rules.py to
 * init(); tests/test_runtime_differential.py checks that both paths run the same goroutines in
 * the same order. Everything runs on the M thread with the GIL held, called from a goroutine
 * (checked as in Python: the scheduler's running G's greenlet is greenlet.getcurrent()) or, for
 * ready, from runtime code on the M.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

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

/* asyncio.events' _get_running_loop/_set_running_loop once asyncio is imported, else NULL
 * (looked up in sys.modules at each park until then). Strong references. */
static PyObject *str_asyncio_events, *pe_get_running_loop, *pe_set_running_loop;
#if PY_VERSION_HEX < 0x030C0000
static PyObject *pe_exc_type, *pe_exc_value, *pe_exc_tb;   /* GIL held: around one call */
#endif

/* Whether sys.modules may have changed since asyncio.events was last looked up and missing
 * (a miss costs ~120 instructions: sys.modules is large, the probe sequence long). 3.10/3.11:
 * the dict's version tag, which every mutation changes; 3.12+ (where that field is deprecated):
 * a dict watcher on sys.modules, set up by init(). Either way a change is never missed. */
#if PY_VERSION_HEX >= 0x030C0000
static int pe_modules_dirty = 1;
static int pe_modules_watcher = -1;

static int pe_on_modules_change(PyDict_WatchEvent event, PyObject *dict, PyObject *key,
                                PyObject *new_value)
{
    (void)event, (void)dict, (void)key, (void)new_value;
    pe_modules_dirty = 1;
    return 0;
}

/* Watches sys.modules (once). Where no watcher is free (CPython has 8), sys.modules stays
 * "changed" and is looked up at every park. Always 0. init(), GIL held. */
static int pe_watch_modules(void)
{
    if (pe_modules_watcher >= 0)
        return 0;
    int id = PyDict_AddWatcher(pe_on_modules_change);
    if (id < 0) {
        PyErr_Clear();
        return 0;
    }
    if (PyDict_Watch(id, PyImport_GetModuleDict()) < 0) {
        PyErr_Clear();
        if (PyDict_ClearWatcher(id) < 0)
            PyErr_Clear();
        return 0;
    }
    pe_modules_watcher = id;
    return 0;
}
#define PE_MODULES_UNCHANGED(mods) (!pe_modules_dirty)
#define PE_MODULES_SEEN(mods) (pe_modules_dirty = pe_modules_watcher < 0)
#else
static uint64_t pe_modules_tag;   /* sys.modules' version when asyncio.events was missing */
#define PE_MODULES_UNCHANGED(mods) (((PyDictObject *)(mods))->ma_version_tag == pe_modules_tag)
#define PE_MODULES_SEEN(mods) (pe_modules_tag = ((PyDictObject *)(mods))->ma_version_tag)
static int pe_watch_modules(void)
{
    return 0;
}
#endif

/* asyncio.events was found in sys.modules: keeps its two functions. When the running G has no
 * loop, sets None once: asyncio then caches this thread's running loop (None), and its
 * _get_running_loop answers without a thread-dict look-up (~100 instructions a switch until a
 * first loop ran). 0, or -1 with an exception. Its G, GIL held. */
static __attribute__((noinline)) int pe_found_asyncio(PyObject *ev)
{
    PyObject *get = PyObject_GetAttrString(ev, "_get_running_loop");
    PyObject *set = get ? PyObject_GetAttrString(ev, "_set_running_loop") : NULL;
    if (set == NULL) {
        Py_XDECREF(get);
        return -1;
    }
    PyObject *loop = PyObject_CallNoArgs(get);
    PyObject *r = loop == Py_None ? PyObject_CallFunctionObjArgs(set, Py_None, NULL)
                                  : Py_XNewRef(loop);
    Py_XDECREF(loop);
    if (r == NULL) {
        Py_DECREF(get);
        Py_DECREF(set);
        return -1;
    }
    Py_DECREF(r);
    pe_get_running_loop = get;
    pe_set_running_loop = set;
    return 0;
}

#if PY_VERSION_HEX >= 0x030E0000
/* CPython 3.14+ keeps the running task in the thread state too, and refuses to enter a task
 * while another is current (_park.py, _TASK_PER_THREAD): asyncio.tasks._swap_current_task,
 * looked up once a G has a running loop (asyncio.tasks is imported by then). Strong reference. */
static PyObject *pe_swap_current_task;

/* _swap_current_task(loop, task): the loop's previous current task (None when none), new
 * reference, or NULL with an exception. loop must be the running loop. Its G, GIL held. */
static __attribute__((noinline)) PyObject *pe_swap_task(PyObject *loop, PyObject *task)
{
    if (pe_swap_current_task == NULL) {
        PyObject *tasks = PyDict_GetItemString(PyImport_GetModuleDict(), "asyncio.tasks");
        if (tasks == NULL)
            return Py_NewRef(Py_None);           /* a loop without asyncio's tasks: none */
        pe_swap_current_task = PyObject_GetAttrString(tasks, "_swap_current_task");
        if (pe_swap_current_task == NULL)
            return NULL;
    }
    return PyObject_CallFunctionObjArgs(pe_swap_current_task, loop, task, NULL);
}
#endif

/* _park.loop_away(): the running G's asyncio running loop, cleared (new reference) — on 3.14+
 * a (loop, task) tuple, its current task cleared too — or NULL: with no exception when it has
 * none, with one on error. Its G, GIL held. */
static inline __attribute__((always_inline)) PyObject *pe_loop_away(void)
{
    if (pe_get_running_loop == NULL) {
        PyObject *mods = PyImport_GetModuleDict();
        if (PE_MODULES_UNCHANGED(mods))
            return NULL;                         /* still not imported */
        PyObject *ev = PyDict_GetItemWithError(mods, str_asyncio_events);
        if (ev == NULL) {
            if (!PyErr_Occurred())
                PE_MODULES_SEEN(mods);
            return NULL;                         /* never imported: no G has a loop */
        }
        if (pe_found_asyncio(ev) < 0)
            return NULL;
    }
    PyObject *loop = PyObject_CallNoArgs(pe_get_running_loop);
    if (loop == NULL)
        return NULL;
    if (loop == Py_None) {
        Py_DECREF(loop);
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030E0000
    PyObject *task = pe_swap_task(loop, Py_None);
    if (task == NULL) {
        Py_DECREF(loop);
        return NULL;
    }
#endif
    PyObject *r = PyObject_CallFunctionObjArgs(pe_set_running_loop, Py_None, NULL);
    if (r == NULL) {
        Py_DECREF(loop);
#if PY_VERSION_HEX >= 0x030E0000
        Py_DECREF(task);
#endif
        return NULL;
    }
    Py_DECREF(r);
#if PY_VERSION_HEX >= 0x030E0000
    PyObject *saved = PyTuple_Pack(2, loop, task);
    Py_DECREF(loop);
    Py_DECREF(task);
    return saved;
#else
    return loop;
#endif
}

/* _park.loop_back(loop): sets the loop pe_loop_away cleared again, keeping an exception thrown
 * into the G (ok == 0) for its caller; steals the reference. 0, or -1 with an exception. Its
 * G, GIL held. */
static int pe_loop_back(PyObject *loop, int ok)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = ok ? NULL : PyErr_GetRaisedException();
#else
    if (!ok)
        PyErr_Fetch(&pe_exc_type, &pe_exc_value, &pe_exc_tb);
#endif
#if PY_VERSION_HEX >= 0x030E0000
    PyObject *saved = loop;                      /* (loop, task): pe_loop_away */
    loop = PyTuple_GET_ITEM(saved, 0);
    PyObject *task = PyTuple_GET_ITEM(saved, 1);
    PyObject *r = PyObject_CallFunctionObjArgs(pe_set_running_loop, loop, NULL);
    if (r != NULL && task != Py_None) {
        Py_DECREF(r);
        r = pe_swap_task(loop, task);            /* returns None: ours was cleared */
    }
    Py_DECREF(saved);
#else
    PyObject *r = PyObject_CallFunctionObjArgs(pe_set_running_loop, loop, NULL);
    Py_DECREF(loop);
#endif
    if (!ok) {
        if (r == NULL)
            PyErr_Clear();                       /* the thrown exception goes on */
#if PY_VERSION_HEX >= 0x030C0000
        PyErr_SetRaisedException(exc);
#else
        PyErr_Restore(pe_exc_type, pe_exc_value, pe_exc_tb);
        pe_exc_type = pe_exc_value = pe_exc_tb = NULL;
#endif
    }
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

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

static PyMethodDef pe_hot_methods[] = {
    {"init", pe_init, METH_O, "init(cfg): slot offsets and callbacks"},
    {"set_sched", pe_set_sched, METH_O, "set_sched(s): the running scheduler or None"},
    {"park", (PyCFunction)(void (*)(void))pe_park_py, METH_FASTCALL,
     "park(s, g, reason, blocker): _park.park_checked in C"},
    {"chan_methods", pe_chan_methods, METH_O,
     "chan_methods(Chan) -> (send, recv, recv_ok, __iter__)"},
    {"waitq_methods", pe_waitq_methods, METH_O,
     "waitq_methods(WaitQ) -> (dequeue, park_cached, wake_all)"},
    {"g_methods", pe_g_methods, METH_O, "g_methods(Goroutine) -> (join,)"},
    {"new_waitq", pe_new_waitq_py, METH_O, "new_waitq(owner): WaitQ(owner) in C"},
    {"g_done", (PyCFunction)(void (*)(void))pe_g_done, METH_FASTCALL,
     "g_done(s, g): _sched._g_done in C"},
    {"new_g", (PyCFunction)(void (*)(void))pe_new_g, METH_FASTCALL,
     "new_g(fn, args, kwargs, name, preemptible): Goroutine(...) in C"},
    {"exit_g", (PyCFunction)(void (*)(void))pe_exit_g_py, METH_FASTCALL,
     "exit_g(s, glet, is_main): _park.exit_g in C"},
    {"ready", (PyCFunction)(void (*)(void))pe_ready_py, METH_FASTCALL | METH_KEYWORDS,
     "ready(g, next=False): _park.ready in C"},
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
    str_dunder_name = PyUnicode_InternFromString("__name__");
    str_join = PyUnicode_InternFromString("join");
    str_chan_send = PyUnicode_InternFromString("chan send");
    str_chan_receive = PyUnicode_InternFromString("chan receive");
    str_asyncio_events = PyUnicode_InternFromString("asyncio.events");
    if (!str_asyncio_events)
        return NULL;
    if (!str_popleft || !str_append || !str_bind || !str_winner || !str_dunder_name || !str_join ||
        !str_chan_send || !str_chan_receive)
        return NULL;
    if (PyType_Ready(&pe_chan_iter_type) < 0)
        return NULL;
    return PyModule_Create(&pe_hot_module);
}
