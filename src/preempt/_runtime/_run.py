"""``run()``, ``go()`` and ``current()``: the runtime's entry points.

``run(main)`` makes a :class:`~._sched.Scheduler` for the calling thread (the M), its monitor
(:func:`new_monitor`), a hub greenlet and the main G, and switches to the hub; when main has
returned and the leftovers are dealt with (``_sched.py``), it returns main's result or raises
main's exception. ``go()`` queues a new G at the back of the run queue, ``go_first()`` as I/O
work (``_netpoll.py`` invariant 6).

Where these run: ``run()`` on any thread that has no runtime running (one per process,
``_sched.py`` invariant 3); ``go``/``go_first``/``current`` in a goroutine of it.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Optional

from greenlet import GreenletExit, getcurrent, greenlet

from .._errors import PreemptError
from . import _cancel, _g, _park, _signals, _trace
from ._g import Goroutine
from ._rules import DEAD, IO_TURNS
from ._sched import DEFAULT_SLICE, Scheduler


def _slice_from(slice_arg: Optional[float]) -> float:
    """The time slice for run(): ``slice=``, else PREEMPT_SLICE_MS, else the default (the rules
    are ``_timeouts.py`` rule 5: 0 to 3600 s, 0 = preemption off).

    Raises:
        TypeError: ``slice`` is not a number (or is a bool).
        ValueError: ``slice`` is NaN, negative, infinite or above 3600 s.
        PreemptError: PREEMPT_SLICE_MS is not a number of milliseconds in that range.
    """
    from ._timeouts import check_slice, slice_from_env

    if slice_arg is not None:
        return check_slice(slice_arg, "preempt.run()")
    env = os.environ.get("PREEMPT_SLICE_MS")
    if env:
        return slice_from_env(env)
    return DEFAULT_SLICE


def run(main: Callable[..., Any], *args: Any, slice: Optional[float] = None,
        **kwargs: Any) -> Any:
    """Runs ``main(*args, **kwargs)`` as the main goroutine, with a scheduler on this thread.

    Returns when main returns; goroutines still alive then are killed (their ``finally`` blocks
    run). On the main thread, Python code is preempted every ``slice`` seconds.

    Args:
        main: The main goroutine's function.
        *args: Its positional arguments.
        slice: The time slice in seconds (default 10 ms, or ``PREEMPT_SLICE_MS``); 0 turns
            preemption off (cooperative scheduling only).
        **kwargs: Its keyword arguments.

    Returns:
        What ``main`` returned.

    Raises:
        BaseException: main's exception, including KeyboardInterrupt.
        preempt.Deadlock: Every goroutine blocked for good and main did not catch it.
        PreemptError: ``run()`` is already running (nested, or on another thread).

    Example::

        def main():
            ch = preempt.Chan()
            preempt.go(ch.send, 42)
            return ch.recv()

        assert preempt.run(main) == 42
    """
    cur = _park.sched
    if cur is not None:
        where = "inside it" if cur.ident == threading.get_ident() else \
            f"on thread {cur.thread_name!r}"
        raise PreemptError(f"preempt.run() is already running {where}; there is one runtime per "
                           "process: start more work with preempt.go() instead")
    s = Scheduler(_slice_from(slice))
    _park.set_sched(s)
    try:
        s.hub = greenlet(s.hub_main, getcurrent())
        s.main = s.spawn(main, args, kwargs, "main", True)
        _signals.install(s)
        _trace.install()
        _cancel.install()
        s.routing = True
        if s.slice > 0:
            s.monitor.start(s.slice)
        outer = _park.loop_away()   # an asyncio loop around run() is not the goroutines' (_park.py)
        try:
            s.hub.switch()
        finally:
            if outer is not None:
                _park.loop_back(outer)
            s.routing = False
            s.monitor.stop()
            _signals.uninstall(s)
            _trace.uninstall()
            _cancel.uninstall()
            s.abandon_leftovers()
    finally:
        _park.set_sched(None)
        _teardown(s)
    m = s.main
    if s.exit_exc is not None:      # a signal's exception cut the shutdown short
        e = s.exit_exc
        if e.__context__ is None and m.exc is not None and m.exc is not e:
            e.__context__ = m.exc
        raise e
    if m.state is not DEAD:
        raise PreemptError("preempt.run(): the scheduler stopped before main finished (internal "
                           "error); please report it with preempt.dump() output")
    if m.exc is not None:
        raise m.exc
    return m.result


def _teardown(s: Scheduler) -> None:
    free, s.free = s.free, []
    for glet in free:           # idle workers: let them end (GreenletExit in exit_g)
        try:
            glet.throw(GreenletExit)
        except BaseException:
            pass
    s.poller.close()
    if s.offload is not None:
        s.offload.shutdown(wait=False)


def go(fn: Callable[..., Any], *args: Any, name: Optional[str] = None, preemptible: bool = True,
       **kwargs: Any) -> Goroutine:
    """Starts ``fn(*args, **kwargs)`` in a new goroutine; returns at once.

    Args:
        fn: The function to run.
        *args: Its positional arguments.
        name: A name for dump(), deadlock messages and error reports (default: fn's name).
        preemptible: False runs it cooperatively: it is never preempted, only switched out when
            it blocks or calls gosched().
        **kwargs: Its keyword arguments.

    Returns:
        The :class:`Goroutine`; ``join()`` it for the result.

    Raises:
        PreemptError: Called outside ``preempt.run()`` or from another OS thread.
    """
    s = _park.sched
    if s is None or s.cur is None or s.cur.glet is not getcurrent():
        s = _park.check_sched("preempt.go()")
    g = _g.new_g(fn, args, kwargs, name, preemptible)
    s.gs[g.id] = g
    s.spawned += 1
    s.runq.append(g)
    return g


def go_first(fn: Callable[..., Any], *args: Any, name: Optional[str] = None) -> Goroutine:
    """go(), with the new G queued as I/O work instead of at the back: for work that I/O just
    brought, such as a connection the accept loop took (``_netpoll.py`` invariant 6: it runs
    ahead of the goroutines that were preempted, behind the I/O-woken ones queued before it).
    Runtime code in a G."""
    g = go(fn, *args, name=name)
    g.io_turn = IO_TURNS
    s = _park.sched
    q = s.runq
    if q and q[-1] is g:
        q.pop()
        _park.queue_io(s, (g,))
    return g


def current() -> Goroutine:
    """The running goroutine.

    Raises:
        PreemptError: Called outside ``preempt.run()`` or from another OS thread.
    """
    s = _park.sched
    if s is None or s.cur is None or s.cur.glet is not getcurrent():
        s = _park.check_sched("preempt.current()")
    return s.cur
