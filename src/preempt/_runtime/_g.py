"""The G: one goroutine.

A G is a record, not a thread: the function to run, its state, why it waits, and — once it
has started — the greenlet whose stack holds its frames. The greenlet is bound lazily, the first
time the scheduler picks the G, so a spawned-but-not-started G costs one small object (Go's
``newproc`` only fills a ``g`` struct too). When the G's function returns, its greenlet goes back
to a free list and the next new G reuses it: creating a greenlet costs an mmap/munmap pair, and
reusing one is what brings spawn+join under 5 µs (Go keeps a free list of dead Gs the same way).

State machine (the only transitions; ``_park.py`` and ``_sched.py`` make them)::

    runnable --(scheduler picks it)--> running --(park)--> waiting --(ready)--> runnable
                                       running --(gosched / preempted)--> runnable
                                       running --(function returns or raises)--> dead

Invariants:

1. Exactly one G is ``running`` while the hub is not; ``sched.cur`` names it.
2. A G is in the run queue (or ``runnext``) iff its state is ``runnable``.
3. ``blocker`` is set iff the state is ``waiting``; ``blocker.cancel()`` removes the G from
   whatever it waits on, so the runtime can interrupt any wait (deadlock, KeyboardInterrupt,
   the end of ``run()``).
4. A dead G has ``result`` or ``exc`` set and drops its function and arguments.
5. ``wait_reason`` is set by ``park()`` and cleared by the yields (gosched, preemption), so a
   runnable G with a ``wait_reason`` is one whose wait was *completed* by someone else.
6. A G that died of an exception (main aside) holds an :class:`ExcReporter` until ``join()``
   retrieves the exception; a reporter still armed when the G is freed prints the exception
   (asyncio's "Task exception was never retrieved"). Gs that return normally get none.

Interrupts (KeyboardInterrupt for main, GreenletExit when ``run()`` ends, ``Cancelled`` from
``cancel()`` or a cancel scope, an error escaping the hub) never undo a completed operation (trio's rule). A waiting G's wait is cancelled and the
exception raised where it waited (``wake_exc``). A G made runnable by a completed wait — a value
handed to its ``recv``, its ``send`` taken, a lock granted — finishes that operation first: the
exception is kept in ``pending_exc`` and raised at its next checkpoint (a blocking call,
``gosched``, a preemption outside runtime code, or the end of its function), so no value is lost.

(An alternative would be one greenlet subclass per G, with the state on the greenlet. Rejected:
binding the greenlet late and reusing it needs the G and its stack to be separate objects.)
"""

from __future__ import annotations

import itertools
from typing import Any, Optional

from .._errors import Cancelled, PreemptError
from . import _cancel, _park
from ._rules import DEAD, RUNNABLE
from ._timeouts import TIMEOUT_MAX, check_timeout
from ._waitq import WaitQ


_ids = itertools.count(1)


def reset_ids() -> Any:
    """Starts the ids again from the last one given out (chan.py, once, after making a sample G
    whose id is not kept); returns the counter. Import time."""
    global _ids
    last = next(_ids) - 1
    _ids = itertools.count(max(1, last))
    return _ids


class JoinTimeout(PreemptError, TimeoutError):
    """``Goroutine.join(timeout=...)`` gave up before the goroutine finished."""


class Goroutine:
    """A goroutine started by :func:`preempt.go` (or the main one run by :func:`preempt.run`).

    Attributes:
        id: A small positive integer, unique in the process (main is usually 1).
        name: The ``name=`` given to ``go()``, or the function's name.

    Example::

        g = preempt.go(sum, [1, 2, 3], name="adder")
        assert g.join() == 6 and g.done()
    """

    __slots__ = (
        "id", "name", "fn", "args", "kwargs", "glet", "state", "wait_reason", "blocker",
        "result", "exc", "joiners", "preemptible", "nopreempt", "preempt_pending",
        "wake_exc", "pending_exc", "locals", "waiter", "reporter", "scopes", "io_turn",
        "__weakref__",
    )

    def __init__(self, fn: Any, args: tuple, kwargs: dict, name: Optional[str],
                 preemptible: bool = True) -> None:
        self.id = next(_ids)
        self.name = name if name is not None else getattr(fn, "__name__", None) or repr(fn)
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.glet: Any = None            # the greenlet, bound when first scheduled
        self.state = RUNNABLE
        self.wait_reason: Optional[str] = None
        self.blocker: Any = None         # what it waits on; has cancel() and describe()
        self.result: Any = None
        self.exc: Optional[BaseException] = None
        self.joiners: Any = None         # a WaitQ, made by the first join() that must wait
        self.preemptible = preemptible
        self.nopreempt = 0               # depth of `with preempt.no_preempt():`
        self.preempt_pending = False     # a deferred preemption request, honoured on exit
        self.wake_exc: Optional[BaseException] = None  # raised by park() when the G resumes
        self.pending_exc: Optional[BaseException] = None  # raised at the next checkpoint (below)
        self.locals: Optional[dict] = None
        self.waiter: Any = None          # cached Waiter for plain Chan send/recv (chan.py)
        self.reporter: Optional[ExcReporter] = None   # invariant 6: an unretrieved exception
        self.scopes: Optional[list] = None   # the cancel scopes it is in, outermost first
        self.io_turn = 0                 # front re-queues left in this I/O wake (_netpoll.py 6)

    def __repr__(self) -> str:
        return f"<Goroutine {self.id} {self.name!r} {self.state}>"

    def done(self) -> bool:
        """Whether the goroutine has finished (returned, raised or been killed)."""
        return self.state is DEAD

    def cancel(self, msg: Optional[str] = None) -> bool:
        """Asks the goroutine to stop: :class:`preempt.Cancelled` is raised in it at its next
        checkpoint — at once where it waits (any blocking call), at its next preemption
        safe-point where it computes in Python (sysmon is asked at once), when the call returns
        where it is inside a registered native call. A wait that was already completed (a value
        handed over, a mutex granted) finishes first; nothing is lost. ``_runtime/_cancel.py``
        has the rules.

        Args:
            msg: The exception's message (default: "goroutine N 'name' was cancelled").

        Returns:
            True if a cancellation was requested; False if the goroutine had finished (then
            nothing happens).

        Raises:
            TypeError: ``msg`` is not None or a str.
            PreemptError: Called from another OS thread than run()'s, or outside run().
        """
        return _cancel.cancel(self, msg)

    def cancelled(self) -> bool:
        """Whether the goroutine has finished because of a :class:`preempt.Cancelled` (it let
        the exception out; ``join()`` raises it)."""
        return self.state is DEAD and isinstance(self.exc, Cancelled)

    def describe_wait(self) -> str:
        """What the G waits on, in words (for deadlock messages and ``dump()``)."""
        b = self.blocker
        if b is not None and hasattr(b, "describe"):
            return b.describe(self.wait_reason)
        return self.wait_reason or ""

    def join(self, timeout: Optional[float] = None) -> Any:
        """Waits until the goroutine finishes and returns its result.

        Args:
            timeout: Seconds to wait at most: an int or float (or another real number) >= 0;
                0 only checks. None, ``math.inf`` or any value above 2**31 s (about 68 years)
                waits for ever.

        Returns:
            What the goroutine's function returned.

        Raises:
            BaseException: The goroutine's own exception, re-raised with its traceback.
            JoinTimeout: The timeout passed first (also a ``TimeoutError``).
            TypeError: ``timeout`` is not None or a number, or is a bool.
            ValueError: ``timeout`` is NaN or negative.
            PreemptError: A goroutine joined itself, or join() had to wait outside ``run()``.
        """
        if timeout is not None and not (type(timeout) is float and 0.0 <= timeout <= TIMEOUT_MAX):
            timeout = check_timeout(timeout, "Goroutine.join()")   # rules in _timeouts.py
        if self.state is not DEAD:
            s = _park.running_sched("Goroutine.join")
            if s.cur is self:
                raise PreemptError(f"goroutine {self.id} {self.name!r} tried to join itself, "
                                   "which would wait for ever; join it from another goroutine")
            q = self.joiners
            if q is None:
                q = self.joiners = WaitQ(self)
            if timeout is None:
                q.park_cached(s, s.cur, "join")      # WaitQ.wait(), minus what is checked above
            elif not q.wait("join", timeout):
                raise JoinTimeout(f"goroutine {self.id} {self.name!r} did not finish within "
                                  f"{timeout:g} s; join again or give it more time")
        exc = self.exc
        if exc is not None:
            r = self.reporter
            if r is not None:              # retrieved: nothing to report (invariant 6)
                self.reporter = None
                r.exc = None
            # The traceback keeps this frame: with self in it, G -> exc -> traceback -> frame
            # -> G would be a cycle for the collector, one per failed or cancelled join
            # (concurrent.futures.Future.result drops self the same way).
            del self, r
            try:
                raise exc
            finally:
                exc = None          # no frame -> exception -> traceback -> frame cycle
        return self.result

    def _finish(self) -> None:
        """Marks the G dead and wakes its joiners. M thread, runtime code."""
        self.state = DEAD
        self.fn = self.args = self.kwargs = None
        self.locals = None
        self.waiter = None
        q = self.joiners
        if q is not None:
            self.joiners = None            # the queue names the G: no cycle keeps it alive
            q.wake_all()


class ExcReporter:
    """Prints a dead G's exception that no ``join()`` retrieved, when the G is freed (invariant 6).

    Made only for a G that raised. It keeps the G's id, name and exception, never the G, so it
    dies with the G; ``join()`` disarms it by clearing ``exc``. Nothing is formatted unless the
    report is due. The G is freed when nothing refers to it any more — the runtime keeps no
    reference to a dead G (its worker greenlet drops it before parking in the free list, and
    takes its Gs from ``sched.cur``, never as arguments, which a greenlet would keep) — so a
    dropped G is reported at once. A G in a reference cycle is freed by the garbage collector;
    at the latest, at interpreter exit.
    """

    __slots__ = ("id", "name", "exc", "report")

    def __init__(self, g: Goroutine, report: Any) -> None:
        self.id = g.id
        self.name = g.name
        self.exc: Optional[BaseException] = g.exc
        self.report = report           # report(self) writes it (_worker._report_unjoined)

    def __del__(self) -> None:
        if self.exc is not None:
            try:
                self.report(self)
            except BaseException:      # never raise from a finalizer
                pass
            self.exc = None


G = Goroutine

# What go() calls to make a G: the class itself, or its C twin (pe_hot.c new_g, which chan.py
# puts here): the same fields, without running __init__.
new_g: Any = Goroutine
