"""The hub's poller: fd readiness, offload completions and wake-ups, in one epoll.

When nothing is runnable the hub blocks here, with the next timer's deadline as the timeout.
Three things end the wait:

- an fd a G waits on (``wait_readable``/``wait_writable``) becomes ready: the G is readied;
- an offload thread finished a ``blocking()`` call: it appended to ``completions`` (a deque:
  thread-safe appends) and wrote the eventfd;
- a signal handler on the M (SIGINT) wants the hub: it writes the eventfd too (CPython restarts
  ``epoll_wait`` after EINTR, so a handler that only set a flag would not end the wait).

While Gs are runnable the hub polls with timeout 0 every 61 switches if anything is watched
(``s.npoll``, see ``_park.py``), the way Go's scheduler polls the network between Gs.

Invariants:

1. An fd has at most one reading and one writing waiter; a second is a PreemptError (two Gs
   reading one fd would race for its data).
2. Registration is one-shot: the fd is unregistered (or its mask reduced) when its waiter wakes,
   times out or is interrupted, so a closed fd never stays in the epoll set by our doing.
3. ``s.npoll`` counts fd waiters plus outstanding offload calls; the hub reports a deadlock only
   when it is 0.
4. After ``fork()`` the epoll instance and the eventfd are shared with the parent: each
   process's ``epoll_wait`` would see the other's fds (reported by fd *number*: a parent's fd 7
   would wake a child's waiter on its own, unrelated fd 7), each would steal the other's
   wake-ups, and an ``EPOLL_CTL_DEL`` by one would remove the other's registration. So the
   child makes its own epoll and eventfd, registers every watched fd there again, and closes
   its copies of the old ones — closing, unlike DEL, leaves the parent's registrations alone
   (:meth:`Poller.after_fork_child`, called by ``_fork.py``).
5. A waiter never outlives its fd. Closing an fd removes it from epoll silently, so a waiter
   would sleep out its whole timeout (or for ever). ``notify_closing(fd)`` (Go's
   ``poll.FD.Close`` → ``runtime_pollUnblock``, trio's ``notify_closing``) wakes its waiters at
   once with ``OSError(EBADF)``; call it before closing an fd others may wait on. As a safety
   net the hub looks for watched fds that were closed anyway every ``SWEEP_EVERY`` (50 ms)
   while any fd is watched (one ``fcntl`` per watched fd) and wakes their waiters the same way.
   An fd number reused by a new open before the sweep looks cannot be told apart: that is
   what ``notify_closing`` is for.
6. A G woken by a ready fd goes to the *front* of the run queue, ahead of the Gs that were
   preempted: it was waiting for I/O and usually runs briefly (a light request), while they
   have used whole slices. While a G runs, sysmon looks at this epoll every 0.5 ms and,
   when something is ready and the G has run for 0.5 ms (``_rules.IO_SLICE``), asks for a
   preemption; the preempted G passes through the hub, which polls (``_park.yield_preempted``).
   So a request that arrives while CPU-bound goroutines run waits about 0.5 ms, not
   whole slices. Several Gs woken in one poll keep the order epoll reported them in; when
   others wait behind the first, a timer as far ahead ends its turn if it
   computes (a heavy request), so the next woken G (a light one) is not held up for a slice.
   A timer or I/O request can also land on a woken G that has only just started (that timer
   may have been meant for the G before it): an I/O-woken G preempted by one in its first turn
   (``g.io_turn``; not at the end of a slice) goes back ahead of the preempted Gs, behind the
   woken ones that have not run yet (``_park.yield_preempted(front=True)``). Only once per
   wake: a heavy request gets two turns at most before it queues behind the others.
"""

from __future__ import annotations

import errno
import fcntl
import os
import selectors
from collections import deque
from typing import TYPE_CHECKING, Any, Dict, Optional

from .._errors import PreemptError
from . import _park
from ._rules import IO_SLICE, RUNNABLE
from ._timers import add_timer

if TYPE_CHECKING:
    from ._g import Goroutine
    from ._sched import Scheduler

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE
SWEEP_EVERY = 0.05      # seconds between looks for watched fds closed under their waiters


def _io_slice_over(_: Any) -> None:
    """The I/O slice timer: its being due is what makes sysmon preempt the running G. Hub."""


class FdWaiter:
    """A G waiting for one fd to become readable or writable."""

    __slots__ = ("poller", "fd", "event", "g", "fired", "timer", "timed_out")

    def __init__(self, poller: "Poller", fd: int, event: int, g: Goroutine) -> None:
        self.poller = poller
        self.fd = fd
        self.event = event
        self.g = g
        self.fired = False
        self.timer: Any = None
        self.timed_out = False

    def cancel(self) -> None:
        self.poller._forget(self)

    def fire_timeout(self) -> None:
        if not self.fired:
            self.timer = None
            self.timed_out = True
            self.poller._forget(self)
            _park.ready(self.g, True)

    def describe(self, reason: Optional[str]) -> str:
        return f"{reason} (fd {self.fd})"


class Poller:
    """One epoll, owned by one scheduler. M thread only, except :meth:`complete`/:meth:`wakeup`."""

    def __init__(self, s: Scheduler) -> None:
        self.s = s
        self.sel = selectors.DefaultSelector()
        self.efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.sel.register(self.efd, READ, None)
        self.waiters: Dict[int, Dict[int, FdWaiter]] = {}
        self.completions: deque = deque()   # (callback, arg) from offload threads
        self.next_sweep = 0.0               # when to look for closed watched fds (invariant 5)
        self.io_slice_end = 0.0             # when the armed I/O slice timer fires (invariant 6)

    def close(self) -> None:
        self.sel.close()
        efd, self.efd = self.efd, -1
        os.close(efd)

    def wakeup(self) -> None:
        """Ends a blocking poll. Any thread, and Python-level signal handlers on the M."""
        efd = self.efd
        if efd < 0:       # closed: run() has ended (a late offload completion)
            return
        try:
            os.eventfd_write(efd, 1)
        except OSError:   # counter full or closed at shutdown: a wake-up is pending anyway
            pass

    def after_fork_child(self, m_survived: bool) -> None:
        """fork() child: stops sharing the epoll and the eventfd with the parent (invariant 4).

        ``m_survived``: the M forked and the runtime goes on here: a new epoll and eventfd,
        every watched fd registered again with its mask. A waiter whose fd cannot be registered
        (it was closed while waited on) is readied, as an fd error would (its next read or write
        fails with the reason). Else the M does not exist here: just close this process's copies.
        Child after fork, on the forking thread, before any goroutine runs (``_fork.py``).
        """
        if not m_survived:
            self.close()
            return
        old_sel, old_efd = self.sel, self.efd
        sel = selectors.DefaultSelector()
        efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        sel.register(efd, READ, None)
        lost = []
        for fd, slots in self.waiters.items():
            mask = 0
            for ev in slots:
                mask |= ev
            try:
                sel.register(fd, mask)
            except (OSError, ValueError, KeyError):
                lost.extend(slots.values())
        self.sel, self.efd = sel, efd
        old_sel.close()           # our copy of the fd only: no EPOLL_CTL_DEL reaches the parent
        os.close(old_efd)
        for w in lost:
            self._forget(w)
            _park.ready(w.g, True)
        self.wakeup()             # completions queued before the fork are run at the hub's next poll

    def complete(self, fn: Any, arg: Any) -> None:
        """Queues ``fn(arg)`` to run on the hub and wakes it. Any thread."""
        self.completions.append((fn, arg))
        self.wakeup()

    def watch(self, fd: int, event: int, g: Goroutine) -> FdWaiter:
        """Registers g's interest in ``event`` on ``fd`` (invariant 1)."""
        slots = self.waiters.get(fd)
        if slots is None:
            slots = self.waiters[fd] = {}
        if event in slots:
            other = slots[event].g
            raise PreemptError(
                f"goroutine {other.id} {other.name!r} already waits for fd {fd} to become "
                f"{'readable' if event == READ else 'writable'}; only one goroutine may wait "
                "per fd and direction — funnel the fd through one goroutine")
        w = FdWaiter(self, fd, event, g)
        mask = READ | WRITE if slots else event
        slots[event] = w
        try:
            if len(slots) == 1:
                self.sel.register(fd, mask)
            else:
                self.sel.modify(fd, mask)
        except BaseException:
            del slots[event]
            if not slots:
                del self.waiters[fd]
            raise
        self.s.npoll += 1
        return w

    def _forget(self, w: FdWaiter) -> None:
        slots = self.waiters.get(w.fd)
        if slots is None or slots.get(w.event) is not w:
            return
        del slots[w.event]
        self.s.npoll -= 1
        w.fired = True
        t = w.timer
        if t is not None:
            w.timer = None
            t.cancel()
        try:
            if slots:
                self.sel.modify(w.fd, next(iter(slots)))
            else:
                del self.waiters[w.fd]
                self.sel.unregister(w.fd)
        except (KeyError, ValueError, OSError):   # the fd was closed while we waited
            pass

    def notify_closing(self, fd: int, exc: Optional[BaseException] = None) -> int:
        """Wakes every G waiting for ``fd`` with ``exc`` (default: OSError EBADF) and forgets
        the fd (invariant 5). Call before closing it. Returns how many woke. M thread."""
        slots = self.waiters.get(fd)
        if not slots:
            return 0
        n = 0
        for w in list(slots.values()):
            e = exc if exc is not None else OSError(
                errno.EBADF, f"fd {fd} was closed while goroutine {w.g.id} {w.g.name!r} waited "
                             f"for it to become {'readable' if w.event == READ else 'writable'}")
            self._forget(w)
            w.g.wake_exc = e
            _park.ready(w.g, True)
            n += 1
        return n

    def sweep_closed(self, now: float) -> None:
        """Invariant 5: wakes the waiters of watched fds that were closed under them. Hub."""
        self.next_sweep = now + SWEEP_EVERY
        for fd in list(self.waiters):
            try:
                fcntl.fcntl(fd, fcntl.F_GETFD)
            except OSError as e:
                if e.errno == errno.EBADF:
                    self.notify_closing(fd)

    def poll(self, timeout: Optional[float]) -> int:
        """Waits up to ``timeout`` seconds (None: for ever) and readies whoever is due. Hub only."""
        if self.waiters:
            now = _park.monotonic()
            if now >= self.next_sweep:
                self.sweep_closed(now)
            if timeout is None or timeout > SWEEP_EVERY:
                timeout = SWEEP_EVERY
        events = self.sel.select(timeout)
        n = 0
        woke = []
        for key, mask in events:
            fd = key.fd
            if fd == self.efd:
                try:
                    os.eventfd_read(self.efd)
                except OSError:
                    pass
                continue
            slots = self.waiters.get(fd)
            if not slots:
                continue
            for ev in (READ, WRITE):
                if mask & ev and ev in slots:
                    w = slots[ev]
                    self._forget(w)
                    g = w.g
                    g.state = RUNNABLE           # invariant 6: the front of the queue
                    g.blocker = None
                    g.io_turn = True
                    woke.append(g)
                    n += 1
        if woke:
            q = self.s.runq
            q.extendleft(reversed(woke))
            if len(q) > 1:
                # invariant 6: the woken G ahead gets an I/O slice, then the next one its turn
                now = _park.monotonic()
                if now >= self.io_slice_end:
                    self.io_slice_end = now + IO_SLICE
                    add_timer(self.s, self.io_slice_end, _io_slice_over, None)
        comp = self.completions
        while comp:
            fn, arg = comp.popleft()
            fn(arg)
            n += 1
        return n

