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

Interrupts (KeyboardInterrupt for main, GreenletExit when ``run()`` ends, an error escaping the
hub) never undo a completed operation (trio's rule). A waiting G's wait is cancelled and the
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

from .._errors import PreemptError
from . import _park
from ._waitq import WaitQ

RUNNABLE = "runnable"
RUNNING = "running"
WAITING = "waiting"
DEAD = "dead"

_ids = itertools.count(1)


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
        "wake_exc", "pending_exc", "locals", "waiter", "__weakref__",
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

    def __repr__(self) -> str:
        return f"<Goroutine {self.id} {self.name!r} {self.state}>"

    def done(self) -> bool:
        """Whether the goroutine has finished (returned, raised or been killed)."""
        return self.state is DEAD

    def describe_wait(self) -> str:
        """What the G waits on, in words (for deadlock messages and ``dump()``)."""
        b = self.blocker
        if b is not None and hasattr(b, "describe"):
            return b.describe(self.wait_reason)
        return self.wait_reason or ""

    def join(self, timeout: Optional[float] = None) -> Any:
        """Waits until the goroutine finishes and returns its result.

        Args:
            timeout: Seconds to wait at most; None waits for ever.

        Returns:
            What the goroutine's function returned.

        Raises:
            BaseException: The goroutine's own exception, re-raised with its traceback.
            JoinTimeout: The timeout passed first (also a ``TimeoutError``).
            PreemptError: A goroutine joined itself, or join() had to wait outside ``run()``.
        """
        if self.state is not DEAD:
            s = _park.running_sched("Goroutine.join")
            if s.cur is self:
                raise PreemptError(f"goroutine {self.id} {self.name!r} tried to join itself, "
                                   "which would wait for ever; join it from another goroutine")
            if self.joiners is None:
                self.joiners = WaitQ(self)
            if not self.joiners.wait("join", timeout):
                raise JoinTimeout(f"goroutine {self.id} {self.name!r} did not finish within "
                                  f"{timeout} s; join again or give it more time")
        if self.exc is not None:
            raise self.exc
        return self.result

    def _finish(self) -> None:
        """Marks the G dead and wakes its joiners. M thread, runtime code."""
        self.state = DEAD
        self.fn = self.args = self.kwargs = None
        self.locals = None
        self.waiter = None
        q = self.joiners
        if q is not None:
            q.wake_all()


G = Goroutine
