"""CPU-bound sync functions on an asyncio loop's own thread: ``await preempt.aio.run(fn)``.

``asyncio.to_thread`` moves a computation to a thread, where it fights the loop for the GIL
(the loop waits out 5 ms switch intervals) and a process pool pickles everything. Here the
function runs on the loop's thread, in a greenlet, and is *preempted*: sysmon (shared through
``_bridge.py``) trips preempt's SLOT once it has computed for a slice, the handler switches back
to the loop, and the loop serves its callbacks, timers and sockets before the function's next
slice. No thread, no GIL convoy, no pickling.

Rules:

1. Each loop iteration resumes one function for at most one slice (``SLICE``, 2 ms, or
   ``slice=``): the runner is one loop callback that re-schedules itself as a timer due at
   once, so the loop's ready callbacks, I/O and the timers that fell due during a slice run
   before the next slice. Functions take turns in the order they became ready.
2. The function is switched out only where preempt's goroutines would be (not in an import, a
   ``logging``/``threading``/``queue``/``concurrent.futures`` frame or a module given to
   ``preempt.deny_preemption_in``, not inside ``with preempt.no_preempt():``); a request held
   back is taken at the next safe-point after it.
3. Its result and exceptions come out of the ``await``. ``task.cancel()`` of the awaiting task
   raises ``preempt.Cancelled`` in the function at its next safe-point, also in a pure-Python
   loop; the task's ``CancelledError`` is raised once the function has unwound (its ``finally``
   blocks ran). A function that swallows ``Cancelled`` and returns still ends the task with
   ``CancelledError``: it was cancelled.
4. ``preempt.aio.wait(awaitable)`` — from inside such a function — runs an awaitable on the
   loop and parks the function until it is done, returning its result or raising its
   exception: the way back to async code (an ``aiohttp`` call, an ``asyncio.Queue``).
5. The loop must run on the main thread (CPython runs signal handlers only there), and the
   monitor is shared with ``preempt.run()`` and ``preempt.gevent``: one at a time per process.
   It runs while functions are running and stops when the last one finishes.
6. A function switched out (preempted, or parked in ``wait()``) gets its errno back when it
   goes on (``_runtime/_errno.py``): C code that called it back reads errno after it returns.
7. A function is also switched out before its slice ends, as goroutines are inside
   ``preempt.run()``: the moment the loop's earliest timer is due, and an I/O slice (0.5 ms)
   after one of the loop's fds became ready (``_aio_loop.py``: asyncio's loops and uvloop).
   The loop then runs that timer or that I/O before the next function's turn. A 1 ms ticker
   beside 4 computing functions thus wakes within about 0.1 ms of its deadline, not a slice
   late.

What it cannot do: preempt C code that holds the GIL (a long C-extension call runs to its end
before the loop gets the thread back), or run two functions at the same instant (it is one
thread: use processes for parallel speed-up).

Where these run: ``run``/``wait`` in a coroutine on the loop or in a function run by ``run``;
the runner as a loop callback on the main thread; the hook as a SLOT handler in the function's
greenlet.
"""

from __future__ import annotations

import asyncio
import collections
from types import FrameType
from typing import Any, Awaitable, Callable, Deque, Optional

from greenlet import greenlet, getcurrent

from . import _aio_loop
from ._bridge import SlotMonitor, held
from ._runtime._timeouts import check_interval
from ._errors import PreemptError

SLICE = 0.002           # seconds a function computes before the loop gets the thread back
REPORT_AFTER = 0.1      # a switch-back this late is reported with the function's stack

_PREEMPTED = object()   # what a function's greenlet hands the runner when it is switched out
_PARKED = object()      # ... when it waits in wait()


class _Job:
    __slots__ = ("fn", "args", "kwargs", "glet", "fut", "finished", "cancelling", "resume_exc")

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, loop: Any) -> None:
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.glet: Optional[greenlet] = None
        self.fut = loop.create_future()          # the function's outcome
        self.finished = loop.create_future()     # set once it has unwound, whatever the outcome
        self.cancelling = False
        self.resume_exc: Optional[BaseException] = None   # thrown in at the next resume

    def __repr__(self) -> str:
        return f"<preempt.aio job {getattr(self.fn, '__qualname__', self.fn)!r}>"


class _Runner:
    """The loop's one runner (rule 1) and the monitor while functions run."""

    def __init__(self, loop: Any, slice_: float) -> None:
        self.loop = loop
        self.ready: Deque[_Job] = collections.deque()
        self.scheduled = False
        self.cur: Optional[_Job] = None
        self.loop_glet: Any = None
        self.njobs = 0
        self.npreempt = 0
        self.ndeferred = 0
        self.mon = SlotMonitor("preempt.aio", slice_, _hook, REPORT_AFTER)
        self.mon.start()
        _aio_loop.watch(loop)                        # timer and I/O triggers (rule 7)
        self.mon.watch_epoll(_aio_loop.epoll_fd(loop))

    def make_ready(self, job: _Job) -> None:
        self.ready.append(job)
        self.reschedule()

    def step(self) -> None:
        """Resumes one function for one slice. A loop callback."""
        self.scheduled = False
        if not self.ready:
            return
        job = self.ready.popleft()
        exc, job.resume_exc = job.resume_exc, None
        if job.finished.done():          # a stale wake-up of a finished function
            self.reschedule()
            return
        if job.glet is None and exc is not None:     # cancelled before it started
            self.finish(job, (False, exc))
            return
        self.loop_glet = getcurrent()
        self.cur = job
        self.mon.set_next_deadline(_aio_loop.next_deadline(self.loop))   # rule 7
        self.mon.switched(True, kick=True)
        try:
            if job.glet is None:
                job.glet = greenlet(_body)                # its parent: the loop's greenlet
                out = job.glet.switch(job)
            elif exc is not None:
                out = job.glet.throw(exc)
            else:
                out = job.glet.switch()
        finally:
            self.mon.switched(False)
            self.cur = None
        if out is not _PREEMPTED and out is not _PARKED:
            self.finish(job, out)
        self.reschedule()

    def reschedule(self) -> None:
        """The next slice (after a slice, or a function made ready) is a timer due now, not a
        ready callback, so the loop's timers that fell due meanwhile (and its I/O) run before
        it (rule 1); and that timer only queues the step as a callback (``_hop``), so the
        callbacks already ready (a sleeping task's wake-up) run first: run from the timer, or
        queued at once, the next function computed while the woken ticker waited a whole slice,
        its next timer not yet made (rule 7)."""
        if self.ready and not self.scheduled:
            self.scheduled = True
            self.loop.call_at(self.loop.time(), self._hop)

    def _hop(self) -> None:
        self.loop.call_soon(self.step)

    def finish(self, job: _Job, out: tuple) -> None:
        ok, value = out
        job.glet = None
        if not job.fut.done():
            if job.cancelling:
                job.fut.cancel()
            elif ok:
                job.fut.set_result(value)
            else:
                job.fut.set_exception(value)
        job.finished.set_result(None)
        self.njobs -= 1
        self.reschedule()
        if self.njobs == 0:
            self.mon.stop()
            global _runner
            if _runner is self:
                _runner = None


_runner: Optional[_Runner] = None


def _body(job: _Job) -> tuple:
    """The bottom of a function's greenlet: runs it, returns (ok, value). Never raises."""
    try:
        return True, job.fn(*job.args, **job.kwargs)
    except BaseException as e:     # handed to the awaiting task (rule 3)
        return False, e


def _register_bottom() -> None:
    from ._runtime import _preempt

    _preempt.register_bottom_code(_body.__code__)


_register_bottom()


async def run(fn: Callable[..., Any], *args: Any, slice: Optional[float] = None,
              **kwargs: Any) -> Any:
    """Runs ``fn(*args, **kwargs)`` on this loop's thread, preempted every ``slice`` seconds
    so the loop keeps running (rules 1-3).

    Args:
        fn: A plain (sync) callable; it may compute for as long as it likes.
        slice: Seconds per turn, a finite number > 0 (default :data:`SLICE`). It applies from
            the first function until the last one running has finished.

    Returns:
        What ``fn`` returned.

    Raises:
        Whatever ``fn`` raised; ``asyncio.CancelledError`` when the awaiting task was
        cancelled (``fn`` got ``preempt.Cancelled`` and has unwound).
        TypeError: ``fn`` is a coroutine function (await it instead) or not callable.
        PreemptError: the loop is not on the main thread, or the monitor is in use by
            ``preempt.run()`` or ``preempt.gevent``.
        Unavailable: preempt's C core cannot be loaded here (``preempt.available()``).
    """
    global _runner
    if asyncio.iscoroutinefunction(fn) or not callable(fn):
        raise TypeError(f"preempt.aio.run() needs a plain callable, got {fn!r}"
                        + (": await the coroutine instead" if callable(fn) else ""))
    slice_ = SLICE if slice is None else check_interval(slice, "preempt.aio.run()", "slice")
    loop = asyncio.get_running_loop()
    r = _runner
    if r is not None and r.loop is not loop:
        raise PreemptError("preempt.aio.run(): another event loop is running functions on this "
                           "thread; one loop at a time")
    if r is None:
        r = _runner = _Runner(loop, slice_)
    job = _Job(fn, args, kwargs, loop)
    r.njobs += 1
    r.make_ready(job)
    try:
        return await job.fut
    except asyncio.CancelledError:
        if not job.finished.done():
            _cancel(r, job)
            await asyncio.shield(job.finished)   # its finally blocks run before we raise
        raise


def _cancel(r: _Runner, job: _Job) -> None:
    from ._errors import Cancelled

    if job.cancelling:
        return
    job.cancelling = True
    job.resume_exc = Cancelled("cancelled: the task awaiting preempt.aio.run() was cancelled")
    if job not in r.ready and r.cur is not job:
        r.make_ready(job)            # parked in wait(), or not started: wake it


def wait(aw: Awaitable[Any]) -> Any:
    """Runs ``aw`` on the loop and parks the calling function until it is done (rule 4).

    Raises:
        PreemptError: not called from a function that ``preempt.aio.run()`` runs.
        Whatever ``aw`` raised; ``preempt.Cancelled`` when the function is cancelled
        meanwhile (``aw`` is cancelled too).
    """
    r = _runner
    job = r.cur if r is not None else None
    if job is None or job.glet is not getcurrent():
        raise PreemptError("preempt.aio.wait() must be called from a function run by "
                           "preempt.aio.run() (in a coroutine, await the awaitable instead)")
    fut = asyncio.ensure_future(aw, loop=r.loop)
    parked = [True]

    def done(_f: Any) -> None:
        if parked[0]:
            r.make_ready(job)

    fut.add_done_callback(done)
    e_p = r.mon.errno_p
    saved = e_p[0]
    try:
        r.loop_glet.switch(_PARKED)
        e_p[0] = saved              # the function's errno, whatever the loop did (rule 6)
    except BaseException:
        parked[0] = False
        fut.cancel()
        raise
    parked[0] = False
    return fut.result()


def _hook(seq: int, frame: Optional[FrameType]) -> None:
    """A fresh request from sysmon (rule 2). SLOT handler in a function's greenlet."""
    r = _runner
    job = r.cur if r is not None else None
    g = getcurrent()
    if job is None or job.glet is not g:
        if r is not None:
            r.mon.ack(seq, g, frame)    # the loop's own code: never switched by us
        return
    from ._runtime import _preempt

    if not _preempt.may_switch(frame, held=held(g)):     # the runtime's one predicate
        r.ndeferred += 1                 # not acked: sysmon sends it again
        return
    r.mon.ack(seq, job, frame)
    r.npreempt += 1
    r.ready.append(job)
    r.reschedule()
    e_p = r.mon.errno_p
    saved = e_p[0]
    try:
        r.loop_glet.switch(_PREEMPTED)
        e_p[0] = saved                   # the function's errno, whatever the loop did (rule 6)
    except BaseException as e:           # Cancelled (rule 3)
        g = job = None
        if _preempt.raise_later(frame, e):
            return
        raise
