"""Structured concurrency: ``with preempt.Group() as grp: grp.go(fn, *args)``.

A Group is trio's nursery, asyncio's TaskGroup, Go's errgroup:

1. Leaving the ``with`` block waits for every member, however the block is left.
2. The first member that fails (raises anything but ``Cancelled``) cancels the other members
   and the block's body, if the owner is still in it (the body gets a ``Cancelled`` at its next
   checkpoint, absorbed by the group's exit). Members started after that are cancelled at once.
3. The block then raises an ``ExceptionGroup`` (a ``BaseExceptionGroup`` if a member raised a
   ``BaseException`` such as SystemExit) of the real failures, in the order they happened: the
   members' exceptions and the body's own if it raised one. Members that ended with
   ``Cancelled`` are not failures. On CPython 3.10 the classes come from the ``exceptiongroup``
   backport; catch them with ``except*`` (3.11+) or ``exceptiongroup.catch``.
4. When the owner is cancelled (``owner.cancel()``, an enclosing ``preempt.timeout``,
   KeyboardInterrupt, the end of ``run()``) — in the body or while the exit waits — every member
   is cancelled, the exit still waits for all of them, and then the owner's exception goes on
   (unless members failed: then the group of failures, rule 3, with the cancellation as its
   context). KeyboardInterrupt, SystemExit and GreenletExit always go on as themselves.
5. Every member's exception is retrieved by the group: none is reported as "never retrieved".
   A member ``Goroutine`` is an ordinary one: ``join()`` it for its own result if you like.

Where these run: in a goroutine, on the M thread.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, List, Optional

from greenlet import GreenletExit

from ._errors import Cancelled, PreemptError
from ._runtime import _cancel, _park, _preempt
from ._runtime._run import go as _go
from ._runtime._waitq import WaitQ

if sys.version_info >= (3, 11):
    _BaseExceptionGroup = BaseExceptionGroup  # noqa: F821 (a builtin since 3.11)
else:  # pragma: no cover - 3.10
    from exceptiongroup import BaseExceptionGroup as _BaseExceptionGroup

__all__ = ["Group"]

_NEW, _OPEN, _CLOSING, _CLOSED = "new", "open", "closing", "closed"


class Group:
    """A set of goroutines that finishes — and fails — as one (module docstring).

    Example::

        with preempt.Group() as grp:
            for url in urls:
                grp.go(fetch, url)
        # here every fetch has finished; if one raised, the others were cancelled and this
        # block raised an ExceptionGroup of what they raised

    Attributes:
        members: The goroutines started with :meth:`go`, in order.
        cancelled: True once the group cancelled its members (a failure, or the owner's).
    """

    __slots__ = ("members", "cancelled", "depth", "_owner", "_state", "_errors")

    def __init__(self) -> None:
        self.members: List[Any] = []
        self.cancelled = False
        self.depth = 0
        self._owner: Any = None
        self._state = _NEW
        self._errors: List[BaseException] = []

    def __repr__(self) -> str:
        live = sum(1 for m in self.members if not m.done())
        return f"<preempt.Group {self._state}, {live}/{len(self.members)} running>"

    def __enter__(self) -> "Group":
        if self._state is not _NEW:
            raise PreemptError("a preempt.Group can be entered once; make a new one for each block")
        s = _park.running_sched("preempt.Group()")
        self._owner = s.cur
        self.depth = _cancel.enter_scope(s.cur, self)
        self._state = _OPEN
        return self

    def go(self, fn: Callable[..., Any], *args: Any, name: Optional[str] = None,
           preemptible: bool = True, **kwargs: Any) -> Any:
        """Starts ``fn(*args, **kwargs)`` as a member; arguments as for :func:`preempt.go`.

        Members may start more members while the group is open, also while its exit waits.

        Returns:
            The member's :class:`preempt.Goroutine`.

        Raises:
            PreemptError: The group's block has not been entered, or has ended.
            TypeError: ``fn`` is not callable.
        """
        if self._state is not _OPEN and self._state is not _CLOSING:
            raise PreemptError(
                "Group.go(): this group's with-block " +
                ("has not been entered: use `with preempt.Group() as grp:`"
                 if self._state is _NEW else "has ended and waits for nothing any more; start "
                 "the goroutine with preempt.go(), or inside the block"))
        if not callable(fn):
            raise TypeError(f"Group.go(): fn must be callable, not {type(fn).__name__!r}")
        if name is None:
            name = getattr(fn, "__name__", None) or repr(fn)
        g = _go(_member, self, fn, args, kwargs, name=name, preemptible=preemptible)
        self.members.append(g)
        if self.cancelled:
            _cancel.cancel(g, f"goroutine {g.id} {g.name!r} was started in a cancelled group")
        return g

    def cancel(self) -> None:
        """Cancels every member still running (each gets ``Cancelled``); the exit still waits
        for them. Not a failure: the block ends normally unless someone failed. A group cancels
        its members once: calling this again, or a failure after it, cancels no member twice."""
        self._cancel_members()

    def _cancel_members(self) -> None:
        """Cancels each running member once: a second cancellation would land in the cleanup
        the first one started (``finally`` may block; ``_cancel.py``). Members started after
        this are cancelled by :meth:`go`."""
        if self.cancelled:
            return
        self.cancelled = True
        cur = _park.sched.cur if _park.sched is not None else None
        for m in self.members:
            if not m.done() and m is not cur:
                _cancel.cancel(m, f"goroutine {m.id} {m.name!r} was cancelled by its group")

    def _failed(self, e: BaseException) -> None:
        """A member raised ``e`` (rule 2). That member's goroutine, runtime code."""
        self._errors.append(e)
        if self.cancelled:
            return
        self._cancel_members()
        o = self._owner
        if self._state is _OPEN and o is not None and not o.done():
            _park.sched.interrupt(o, _cancel.ScopeCancelled(
                self, "a member of its preempt.Group failed; the group cancelled this block"))

    def __exit__(self, et: Any, e: Any, tb: Any) -> bool:
        owner_exc: Optional[BaseException] = None
        own = isinstance(e, _cancel.ScopeCancelled) and e.scope is self
        if e is not None and not own:
            if isinstance(e, Exception):
                self._errors.append(e)     # the body failed: rule 3
            else:
                owner_exc = e              # rule 4
            self._cancel_members()
        self._state = _CLOSING
        while True:
            live = [m for m in self.members if not m.done()]
            if not live:
                break
            try:
                for m in live:
                    if not m.done():
                        if m.joiners is None:
                            m.joiners = WaitQ(m)
                        m.joiners.wait("Group exit: waiting for its members")
            except BaseException as e2:    # the owner was interrupted while it waited: rule 4
                if owner_exc is None or _cancel.outranks(e2, owner_exc):
                    owner_exc = e2
                self._cancel_members()
        self._state = _CLOSED
        _cancel.leave_scope(self._owner, self)
        for m in self.members:
            r = m.reporter
            if r is not None:              # rule 5: the group retrieved it
                m.reporter = None
                r.exc = None
        errors = self._errors
        if owner_exc is not None and not isinstance(owner_exc, (Cancelled, Exception)):
            if owner_exc is e:
                return False               # KeyboardInterrupt, SystemExit, GreenletExit
            raise owner_exc
        if errors:
            raise _BaseExceptionGroup(
                f"{len(errors)} failure(s) in a preempt.Group", list(errors))
        if owner_exc is not None:
            if owner_exc is e:
                return False
            raise owner_exc
        return own                         # absorbed our own cancellation of the body


def _member(grp: Group, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    """A member's body: reports a failure to its group at once (rule 2)."""
    try:
        return fn(*args, **kwargs)
    except (Cancelled, GreenletExit):
        raise
    except BaseException as e:
        grp._failed(e)
        raise


_preempt.register_transparent_code(_member.__code__)   # the member's own code is preemptible
