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
 *
 * The parts, one concept each, are included below in dependency order and compiled as this one
 * translation unit (greenlet's way: every function stays static and inlinable):
 *   hot/base.h       the state init() fills in, slot access, direct calls, small helpers
 *   hot/sched.c      the run queue and the switch (take_direct, next_or_hub, switch_to)
 *   hot/loop.c       each G's asyncio running loop across switches
 *   hot/park.c       park, exit_g, ready
 *   hot/waitq.c      wait queues: dequeue, the cached-waiter park, wake_all
 *   hot/chan.c       channels: send, recv, recv_ok, iteration
 *   hot/goroutine.c  a G's end, join, and new_g
 *   hot/init.c       init(), set_sched and the method descriptors chan.py installs
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "hot/base.h"
#include "hot/sched.c"
#include "hot/loop.c"
#include "hot/park.c"
#include "hot/waitq.c"
#include "hot/chan.c"
#include "hot/goroutine.c"
#include "hot/init.c"

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
