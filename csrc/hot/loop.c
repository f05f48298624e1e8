/*
 * csrc/hot/loop.c: Each G's asyncio running loop, cleared when it gives up the CPU and set again when
 * it runs on (_park.loop_away/loop_back).
 *
 * Part of preempt._hot: included by csrc/pe_hot.c, which is the one translation unit
 * (greenlet's way), so every function stays static and inlinable. Not compiled alone.
 */

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
