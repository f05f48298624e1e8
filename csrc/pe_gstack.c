/*
 * preempt._gstack: small frame stacks for goroutines (CPython 3.11+).
 *
 * Since 3.11 CPython keeps Python frames on a per-thread "data stack" of chunks
 * (tstate->datastack_chunk/top/limit, Include/cpython/pystate.h). greenlet saves and restores
 * those three pointers per greenlet and starts every new greenlet with none, so the first Python
 * call in it makes CPython allocate a fresh 16 KiB root chunk with its own mmap. A parked
 * goroutine uses a few hundred bytes of it, but the page it touched is 4 KiB of RSS: with
 * 100,000 parked goroutines that page alone is 400 MB.
 *
 * runner(fn) is a worker greenlet's run (call(fn, *args) the same for tests). Before any Python
 * frame exists in the new greenlet it installs a small root chunk (pe_gs_block bytes, default
 * 1536) carved from one reserved region, calls fn on it, and takes the chunk back when fn
 * returns or raises. CPython's own rules then do the rest:
 *
 *   - A frame that does not fit makes CPython push an ordinary chunk whose `previous` is ours;
 *     popping back restores top and limit from our header (size = pe_gs_block), as for any chunk.
 *   - Our chunk is a root chunk (previous == NULL, first slot skipped, as push_chunk does for a
 *     root), so _PyThreadState_PopFrame never frees it.
 *   - The arena allocator (PyObject_SetArenaAllocator), which CPython uses for chunks through
 *     _PyObject_VirtualAlloc/Free, is wrapped: a free of one of our blocks (greenlet frees the
 *     chunks of a greenlet that dies without finishing) returns it to our free list, and a few
 *     ordinary 16 KiB chunks are cached so that a goroutine whose calls keep crossing the end of
 *     its small chunk does not pay an mmap/munmap pair per call.
 *
 * A root chunk's first slot is never a frame's (CPython skips it), so ours holds the greenlet
 * that installed it: while a greenlet runs, tstate->datastack_chunk is its own chain (greenlet
 * swaps the three pointers at every switch), so the root of that chain names the running
 * greenlet. pe_gs_running_owner() reads it for the C hand-off path (csrc/pe_hot.c, through the
 * "_owner_api" capsule): "is the caller the running goroutine's greenlet?" in a few loads, where
 * greenlet.getcurrent() costs ~100 instructions and is asked twice per channel hand-off.
 *
 * Everything here runs with the GIL held, on whichever thread runs the greenlet; the GIL
 * serialises the free list. Free-threaded builds and CPython < 3.11 get a plain call, and so
 * does a CPython newer than the newest one tested (3.14): the chunk header and the three
 * thread-state fields are CPython's own layout. 3.14 added tstate->datastack_cached_chunk, a
 * one-chunk cache of popped chunks; it only ever holds a chunk that was pushed on top of
 * another, never a root chunk like ours, so it changes who frees a spill chunk, not what
 * happens to ours.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030F0000 && !defined(Py_GIL_DISABLED)
#define PE_GS_ENABLED 1
#else
#define PE_GS_ENABLED 0
#endif

#define PE_GS_BLOCK_DEFAULT 1536              /* bytes per small root chunk */
#define PE_GS_BLOCK_MIN 512
#define PE_GS_BLOCK_MAX 65536
#define PE_GS_REGION ((size_t)1 << 30)        /* reserved address space: 699,050 blocks */
#define PE_GS_CHUNK_CACHE 16                  /* ordinary chunks kept for reuse */

#if PE_GS_ENABLED

static size_t pe_gs_block = PE_GS_BLOCK_DEFAULT; /* PREEMPT_GSTACK_BYTES overrides it */
static char *pe_gs_region;                    /* reserved with MAP_NORESERVE, touched lazily */
static size_t pe_gs_used;                     /* bytes of the region handed out so far */
static void *pe_gs_free;                      /* free blocks, linked through their first word */
static Py_ssize_t pe_gs_live;                 /* blocks in use (statistics, tests) */
static Py_ssize_t pe_gs_spills;               /* ordinary chunks allocated while installed */
static PyObjectArenaAllocator pe_gs_orig;     /* the allocator we wrap */
static int pe_gs_wrapped;
static void *pe_gs_cache[PE_GS_CHUNK_CACHE];
static size_t pe_gs_cache_size[PE_GS_CHUNK_CACHE];
static int pe_gs_ncache;
static PyObject *pe_gs_getcurrent;            /* greenlet.getcurrent, for the owner slot */

/* Whether p is one of our blocks. GIL held. */
static int pe_gs_owns(const void *p)
{
    return pe_gs_region != NULL && (const char *)p >= pe_gs_region &&
           (const char *)p < pe_gs_region + PE_GS_REGION;
}

/* A block for a new root chunk, or NULL when the region is used up. GIL held. */
static _PyStackChunk *pe_gs_take(void)
{
    void *b = pe_gs_free;
    if (b != NULL) {
        memcpy(&pe_gs_free, b, sizeof(void *));
    } else {
        if (pe_gs_region == NULL || pe_gs_used + pe_gs_block > PE_GS_REGION)
            return NULL;
        b = pe_gs_region + pe_gs_used;
        pe_gs_used += pe_gs_block;
    }
    pe_gs_live++;
    return (_PyStackChunk *)b;
}

/* Puts a block back on the free list (its owner slot cleared). GIL held. */
static void pe_gs_give(void *b)
{
    ((_PyStackChunk *)b)->data[0] = NULL;
    memcpy(b, &pe_gs_free, sizeof(void *));
    pe_gs_free = b;
    pe_gs_live--;
}

/* The greenlet whose small root chunk the calling thread's frames are on (borrowed), or NULL
 * when they are not on one of ours (the thread's main greenlet, the hub, a greenlet started
 * without call()/runner(), frame stacks off). Only the running greenlet's frames are in
 * tstate's chain, so the answer is the running greenlet. GIL held; no exception set. */
static PyObject *pe_gs_running_owner(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyThreadState *ts = PyThreadState_GetUnchecked();
#else
    PyThreadState *ts = _PyThreadState_UncheckedGet();
#endif
    _PyStackChunk *c = ts != NULL ? ts->datastack_chunk : NULL;
    if (c == NULL)
        return NULL;
    while (c->previous != NULL)
        c = c->previous;
    return pe_gs_owns(c) ? c->data[0] : NULL;
}

/* Arena allocator wrapper: ordinary allocations pass through, 16 KiB-class chunk requests may
 * come from the cache. Called by CPython with the GIL held (pymalloc arenas, frame chunks). */
static void *pe_gs_arena_alloc(void *ctx, size_t size)
{
    (void)ctx;
    for (int i = pe_gs_ncache - 1; i >= 0; i--) {
        if (pe_gs_cache_size[i] == size) {
            void *p = pe_gs_cache[i];
            pe_gs_ncache--;
            pe_gs_cache[i] = pe_gs_cache[pe_gs_ncache];
            pe_gs_cache_size[i] = pe_gs_cache_size[pe_gs_ncache];
            pe_gs_spills++;
            return p;
        }
    }
    void *p = pe_gs_orig.alloc(pe_gs_orig.ctx, size);
    if (p != NULL && size <= 4 * 16384)
        pe_gs_spills++;
    return p;
}

/* Arena free wrapper: our blocks go to the free list; small chunks to the cache. GIL held. */
static void pe_gs_arena_free(void *ctx, void *p, size_t size)
{
    (void)ctx;
    if (pe_gs_owns(p)) {
        pe_gs_give(p);
        return;
    }
    /* pymalloc arenas are 256 KiB or 1 MiB; frame chunks are 16 KiB and up. Only the latter
     * are worth keeping: they are what a goroutine crossing its chunk's end allocates. */
    if (size <= 4 * 16384 && pe_gs_ncache < PE_GS_CHUNK_CACHE) {
        pe_gs_cache[pe_gs_ncache] = p;
        pe_gs_cache_size[pe_gs_ncache] = size;
        pe_gs_ncache++;
        return;
    }
    pe_gs_orig.free(pe_gs_orig.ctx, p, size);
}

/* Reserves the region and wraps the arena allocator, once. Module init, GIL held.
 * PREEMPT_GSTACK_BYTES: the small chunk's size (512..65536, rounded up to 64); 0 disables. */
static int pe_gs_init(void)
{
    const char *env = getenv("PREEMPT_GSTACK_BYTES");
    if (env != NULL && *env != '\0') {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end != '\0' || v < 0 || (v > 0 && v < PE_GS_BLOCK_MIN) || v > PE_GS_BLOCK_MAX) {
            PyErr_Format(PyExc_ValueError,
                         "PREEMPT_GSTACK_BYTES=%s: want 0 (off) or %d..%d bytes", env,
                         PE_GS_BLOCK_MIN, PE_GS_BLOCK_MAX);
            return -1;
        }
        if (v == 0)
            return 0;
        pe_gs_block = ((size_t)v + 63) & ~(size_t)63;
    }
    void *r = mmap(NULL, PE_GS_REGION, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED)
        return 0;                              /* no small chunks: call() stays a plain call */
    pe_gs_region = r;
    PyObject_GetArenaAllocator(&pe_gs_orig);
    PyObjectArenaAllocator mine = {NULL, pe_gs_arena_alloc, pe_gs_arena_free};
    PyObject_SetArenaAllocator(&mine);
    pe_gs_wrapped = 1;
    return 1;
}

#endif /* PE_GS_ENABLED */

/* fn(*args), on a small root chunk when this is the first call in a new greenlet (no frame
 * chunk yet). call() and runner()'s functions share it. GIL held. */
static PyObject *pe_gs_on_chunk(PyObject *fn, PyObject *const *args, size_t nargs)
{
#if PE_GS_ENABLED
    PyThreadState *ts = PyThreadState_Get();
    _PyStackChunk *c = NULL;
    PyObject *owner = NULL;
    if (ts->datastack_chunk == NULL && pe_gs_getcurrent != NULL) {
        owner = PyObject_CallNoArgs(pe_gs_getcurrent);    /* this greenlet, alive while fn runs */
        if (owner == NULL)
            return NULL;
        if (ts->datastack_chunk == NULL)   /* no finaliser ran Python code inside getcurrent() */
            c = pe_gs_take();
    }
    if (c != NULL) {
        c->previous = NULL;
        c->size = pe_gs_block;
        c->top = 0;
        c->data[0] = owner;                    /* borrowed: the greenlet outlives its frames */
        ts->datastack_chunk = c;
        ts->datastack_top = &c->data[1];       /* a root chunk skips its first slot */
        ts->datastack_limit = (PyObject **)((char *)c + pe_gs_block);
    }
    Py_XDECREF(owner);
    PyObject *r = PyObject_Vectorcall(fn, args, nargs, NULL);
    if (c != NULL) {
        if (ts->datastack_chunk == c && ts->datastack_top == &c->data[1]) {
            ts->datastack_chunk = NULL;
            ts->datastack_top = NULL;
            ts->datastack_limit = NULL;
            pe_gs_give(c);
        }
        /* else: frames are still pushed (cannot happen once fn returned); leave the chunk in
         * place: whoever frees the chain later hands it to pe_gs_arena_free. */
    }
    return r;
#else
    return PyObject_Vectorcall(fn, args, nargs, NULL);
#endif
}

/* call(fn, *args): fn(*args), on a small root chunk when called first thing in a new greenlet.
 * Python-callable; GIL held. */
static PyObject *pe_gs_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "call() needs the function to call");
        return NULL;
    }
    return pe_gs_on_chunk(args[0], args + 1, (size_t)(nargs - 1));
}

/* The function runner(fn) returns: fn(), on a small root chunk; self is fn. GIL held.
 *
 * A worker greenlet's run is this, not functools.partial(call, fn): everything between
 * greenlet's bootstrap and the first Python frame stays on the C stack of every parked
 * goroutine, and greenlet copies that stack out and back in at each switch. A bound builtin
 * is one METH_NOARGS frame; partial plus call() were three, 150 bytes more per parked G. */
static PyObject *pe_gs_run(PyObject *fn, PyObject *unused)
{
    (void)unused;
    return pe_gs_on_chunk(fn, NULL, 0);
}

static PyMethodDef pe_gs_run_def = {
    "gstack_run", pe_gs_run, METH_NOARGS,
    "fn() on a small frame stack when it is a new greenlet's first call (see runner())"};

/* runner(fn) -> callable: a no-argument callable running fn() as call(fn) would, with fewer
 * C frames under it (a worker greenlet's run). Python-callable; GIL held. */
static PyObject *pe_gs_runner(PyObject *self, PyObject *fn)
{
    (void)self;
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "runner() needs a callable, not %.100s",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    return PyCFunction_NewEx(&pe_gs_run_def, fn, NULL);
}

/* stats() -> dict: the small-chunk allocator's counters (tests, benchmarks). GIL held. */
static PyObject *pe_gs_stats(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
#if PE_GS_ENABLED
    return Py_BuildValue("{s:i,s:n,s:n,s:n,s:i}", "enabled", pe_gs_wrapped, "block",
                         (Py_ssize_t)pe_gs_block, "live", pe_gs_live, "spills", pe_gs_spills,
                         "cached", pe_gs_ncache);
#else
    return Py_BuildValue("{s:i}", "enabled", 0);
#endif
}

/* used() -> int: bytes of frames in the running greenlet's current chunk (tests). GIL held. */
static PyObject *pe_gs_used_now(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
#if PE_GS_ENABLED
    PyThreadState *ts = PyThreadState_Get();
    if (ts->datastack_chunk == NULL)
        return PyLong_FromLong(0);
    return PyLong_FromSsize_t((char *)ts->datastack_top - (char *)ts->datastack_chunk);
#else
    return PyLong_FromLong(-1);
#endif
}

/* small() -> bool: whether the running greenlet's root chunk is one of ours (tests). */
static PyObject *pe_gs_on_small(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
#if PE_GS_ENABLED
    PyThreadState *ts = PyThreadState_Get();
    _PyStackChunk *c = ts->datastack_chunk;
    while (c != NULL && c->previous != NULL)
        c = c->previous;
    return PyBool_FromLong(c != NULL && pe_gs_owns(c));
#else
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef pe_gs_methods[] = {
    {"call", (PyCFunction)(void (*)(void))pe_gs_call, METH_FASTCALL,
     "call(fn, *args): fn(*args) on a small frame stack when it is a new greenlet's first call"},
    {"runner", pe_gs_runner, METH_O, "runner(fn): a no-argument callable doing call(fn), cheaper"},
    {"stats", pe_gs_stats, METH_NOARGS, "the small frame-stack allocator's counters"},
    {"used", pe_gs_used_now, METH_NOARGS, "bytes used in the current frame-stack chunk"},
    {"small", pe_gs_on_small, METH_NOARGS, "whether this greenlet runs on a small frame stack"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef pe_gs_module = {
    PyModuleDef_HEAD_INIT, "preempt._gstack",
    "Small per-goroutine frame stacks (CPython 3.11+). See csrc/pe_gstack.c.", -1, pe_gs_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__gstack(void)
{
#if PE_GS_ENABLED
    if (!pe_gs_wrapped && pe_gs_init() < 0)
        return NULL;
#endif
    PyObject *m = PyModule_Create(&pe_gs_module);
    if (m == NULL)
        return NULL;
#if PE_GS_ENABLED
    if (pe_gs_wrapped && pe_gs_getcurrent == NULL) {
        PyObject *gr = PyImport_ImportModule("greenlet");
        pe_gs_getcurrent = gr != NULL ? PyObject_GetAttrString(gr, "getcurrent") : NULL;
        Py_XDECREF(gr);
        if (pe_gs_getcurrent == NULL) {
            Py_DECREF(m);
            return NULL;
        }
    }
    /* "_owner_api": a capsule holding pe_gs_running_owner, for csrc/pe_hot.c; absent when the
     * frame stacks are off (then no greenlet runs on one of ours and the answer is always NULL) */
    if (pe_gs_wrapped) {
        PyObject *cap = PyCapsule_New((void *)pe_gs_running_owner, "preempt._gstack._owner_api",
                                      NULL);
        if (cap == NULL || PyModule_AddObject(m, "_owner_api", cap) < 0) {
            Py_XDECREF(cap);
            Py_DECREF(m);
            return NULL;
        }
    }
#endif
    return m;
}
