"""The hub's poller: fd readiness, offload completions and wake-ups, in one epoll.

When nothing is runnable the hub blocks here, with the next timer's deadline as the timeout.
Three things end the wait:

- an fd a G waits on (a socket operation, ``wait_readable``/``wait_writable``) becomes
  ready: the G is queued (invariant 6);
- an offload thread finished a ``blocking()`` call: it appended to ``completions`` (a deque:
  thread-safe appends) and wrote the eventfd;
- a signal handler on the M (SIGINT) wants the hub: it writes the eventfd too (CPython restarts
  ``epoll_wait`` after EINTR, so a handler that only set a flag would not end the wait).

While Gs are runnable the hub polls with timeout 0 every 61 switches if anything is watched
(``s.npoll``, see ``_park.py``), the way Go's scheduler polls the network between Gs.

Invariants:

1. An fd has at most one reading and one writing waiter; a second is a PreemptError (two Gs
   reading one fd would race for its data).
2. Two kinds of registration (Go's netpoll and libev are the models):

   - A socket's fd (``owner``: the ``preempt.socket`` object) is registered once, edge-
     triggered for both directions, and stays registered for the socket's life: a wait costs
     no system call, where registering and removing it around every wait cost two per request.
     An edge that comes while no G waits is kept (``FdState.ready``, Go's ``pdReady``); the
     next wait in that direction returns at once and its caller retries its operation, so no
     edge is lost between an ``EAGAIN`` and the wait. Such a wait may return early: every
     owned wait is in a retry loop (``socket._io``, ``sendall``, the TLS loop), and connect's
     single wait is not owned. ``socket.close()`` removes the registration while its fd is
     still open (``notify_closing``). A socket that dies unclosed (the garbage collector
     closes its fd, unseen) leaves a record whose owner is gone: the next wait on that fd
     number replaces it — a dead or closed owner, or another object whose fd this is not,
     never vouches for a registration.
   - A bare fd (``preempt.wait_readable(fd)``: whoever closes it does not tell us) is
     registered level-triggered while waited on, and removed (or its mask reduced) when its
     waiter wakes, times out or is interrupted, so a closed fd never stays in the epoll set
     by our doing. A bare wait on a socket's kept fd is answered from the kept registration,
     checked with a ``poll()`` when only an old edge says "ready": its contract is "ready".

   sysmon looks at this epoll with ``poll()`` on its fd, never ``epoll_wait()``, which would
   take edge-triggered events away from the hub (pe_sysmon.c).
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
   while any fd is watched (one ``fcntl`` per watched bare fd; a socket's owner is asked
   instead: ``close()`` from another thread, where nobody tells the poller, leaves its
   ``fileno()`` at -1) and wakes their waiters the same way.
   An fd number reused by a new open before the sweep looks cannot be told apart: that is
   what ``notify_closing`` is for.
6. Gs woken by ready fds run in the order their fds were reported ready, ahead of the Gs that
   were preempted: they waited for I/O and usually run briefly (a light request), while the
   preempted ones have used whole slices. The run queue's head is a FIFO segment of the Gs that
   I/O brought and that have not run yet (``s.iofront`` counts it; ``_park.queue_io`` appends
   to it, every pick from the head shrinks it): a poll appends the Gs it woke *behind* those
   woken earlier, never ahead of them. So a ready fd's G is served within one round of the Gs
   runnable when it was found ready — under any load, whatever polls come meanwhile. (It used
   to go to the very front: with every G I/O-woken, each poll put the newest ahead of the
   older ones, and some connections waited 0.1–1 s while others were served.) A connection's
   new goroutine joins the same segment (``net.py``, ``_run.go_first``).
   While a G runs, sysmon looks every 0.5 ms (``_rules.IO_SLICE``) at this epoll and at the
   segment: once the G has run for 0.5 ms and an fd is ready or a woken G waits, it asks for a
   preemption (reason I/O); the preempted G passes through the hub, which polls
   (``_park.yield_preempted``). And when a poll queues woken Gs while Gs that I/O did not
   bring are runnable too (computing ones), it arms a timer one I/O slice ahead: the woken
   get that long, then the running G is preempted and the hub polls again. sysmon only sees a
   switch when it wakes, so its own look can come up to a slice late; the timer keeps the
   poll's rhythm at 0.5 ms beside computing Gs (a light request's p50 0.53 ms, not 0.61).
   With only I/O-woken Gs runnable no timer is armed: they give up the CPU by themselves,
   and a timer would preempt them for nothing (1,500 times a second under wrk, each a hook
   run and often a signal). So a request that arrives while CPU-bound goroutines run waits
   about 0.5 ms, not whole slices, and a heavy request woken with light ones ahead of them in
   the segment holds them up 0.5 ms, not a slice. An I/O-woken G preempted so
   (not at the end of a slice) goes back ahead of the preempted Gs, to the tail of the woken
   ones' segment, which Gs woken later join behind it (``_park.yield_preempted(front=True)``;
   just ahead of the segment's end, it was overtaken by every poll under sustained load:
   1,000 switches and more). Once per wake (``_rules.IO_TURNS``, ``g.io_turn`` counts down): a
   heavy request gets one I/O slice ahead of the preempted Gs, then queues behind them. A cut
   it did not have the whole slice for does not count: the I/O slice timer fires at whatever
   runs, and only the first G switched in after the poll that armed it had the slice
   (``poller.io_tick``; counting every cut, a light G the timer happened to hit twice waited
   behind every computing G's slice).
7. A read that comes back short has emptied the receive queue: the next read of that socket
   waits for an edge first, instead of asking the kernel for the ``EAGAIN`` it would get
   (one system call and one exception per request: half of a keep-alive server's
   ``recvfrom`` calls). ``preempt.socket`` marks the kept record ``dry`` after a ``recv`` or
   ``recv_into`` without flags on a TCP socket returned fewer bytes than asked for, and the
   next such read parks before it calls the kernel; every ``EPOLLIN`` edge a poll sees clears
   ``dry``. Sound because a byte that arrives after the short read raises an edge, which is
   either not yet polled (the wait ends at the next poll) or polled already (it cleared the
   mark). The socket's code is the runtime's, never preempted between its read and its mark,
   so no poll comes between them; marking also drops a ``READ`` edge kept from before the
   read (that edge's bytes were in the queue the read emptied). A short read may still leave
   something to read in three cases, and each has an edge of its own, after which the record
   is ``nodry`` for its life: end of stream (``EPOLLRDHUP``/``EPOLLHUP``: the read after the
   last bytes returns ``b""``), a pending error (``EPOLLERR``), and TCP urgent data
   (``EPOLLPRI``, registered for this: a read stops at the urgent mark). A record nobody
   polls any more — dropped, closed, or left when ``run()`` ended — is ``nodry`` too, so a
   socket that outlives its poller never waits for an edge no poll will see.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
from collections import deque
from typing import TYPE_CHECKING, Any, Dict, Optional
from weakref import ref

from .._errors import PreemptError
from . import _park
from ._rules import IO_SLICE, IO_TURNS, RUNNABLE
from ._timers import add_timer

if TYPE_CHECKING:
    from ._g import Goroutine
    from ._sched import Scheduler

READ = 1                # selectors.EVENT_READ / EVENT_WRITE: what callers pass
WRITE = 2
SWEEP_EVERY = 0.05      # seconds between looks for watched fds closed under their waiters

_EPOLLIN, _EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
_EPOLLET, _EPOLLRDHUP = select.EPOLLET, select.EPOLLRDHUP
_EPOLLPRI = select.EPOLLPRI
_ERRS = select.EPOLLERR | select.EPOLLHUP            # always reported: wake both directions
_WAKES_READ = _EPOLLIN | _EPOLLRDHUP | _EPOLLPRI | _ERRS
_WAKES_WRITE = _EPOLLOUT | _ERRS
_NODRY = _EPOLLRDHUP | _EPOLLPRI | _ERRS           # a short read may not have emptied it (inv. 7)
_KEPT_MASK = _EPOLLIN | _EPOLLOUT | _EPOLLRDHUP | _EPOLLPRI | _EPOLLET   # an owned fd's, for life
_LT = {READ: _EPOLLIN, WRITE: _EPOLLOUT, READ | WRITE: _EPOLLIN | _EPOLLOUT}


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


class FdState:
    """One fd in the epoll set: its waiters (one per direction, invariant 1) and, for an fd
    kept registered for its owner's life (invariant 2), the owner and the readiness that came
    while nobody waited."""

    __slots__ = ("fd", "owner", "r", "w", "ready", "dry", "nodry")

    def __init__(self, fd: int, owner: Any) -> None:
        self.fd = fd
        self.owner = owner      # weakref to the owning socket (kept registration), or None
        self.r: Optional[FdWaiter] = None
        self.w: Optional[FdWaiter] = None
        self.ready = 0          # READ/WRITE edges seen with no waiter (kept registrations)
        self.dry = False        # invariant 7: emptied by a short read, no EPOLLIN edge since
        self.nodry = False      # invariant 7: a short read may leave something: never dry

    def unpolled(self) -> None:
        """No poll will update this record any more (dropped, closed, or its poller is
        closed): it may never be ``dry`` again (invariant 7). M thread."""
        self.dry = False
        self.nodry = True


class Poller:
    """One epoll, owned by one scheduler. M thread only, except :meth:`complete`/:meth:`wakeup`."""

    def __init__(self, s: Scheduler) -> None:
        self.s = s
        self.ep = select.epoll()                 # close-on-exec
        self.efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.ep.register(self.efd, _EPOLLIN)
        self.fds: Dict[int, FdState] = {}
        self.nwatched = 0                   # fds with a waiter (the sweep's, invariant 5)
        self.completions: deque = deque()   # (callback, arg) from offload threads
        self.next_sweep = 0.0               # when to look for closed watched fds (invariant 5)
        self.io_slice_end = 0.0             # when the armed I/O slice timer fires (invariant 6)
        self.io_tick = -2                   # the switch count when it was armed

    def fileno(self) -> int:
        """The epoll fd (sysmon looks at it, pe_sysmon.c)."""
        return self.ep.fileno()

    def close(self) -> None:
        for st in self.fds.values():
            st.unpolled()                    # invariant 7: sockets may outlive this poller
        self.ep.close()
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

        ``m_survived``: the M forked and the runtime goes on: a new epoll and eventfd, every
        fd registered again with its mask. A waiter whose fd cannot be registered (it was
        closed while waited on) is readied, as an fd error would (its next read or write fails
        with the reason); a kept fd without a waiter that cannot be is forgotten. Else the M
        does not exist here: just close this process's copies.
        Child after fork, on the forking thread, before any goroutine runs (``_fork.py``).
        """
        if not m_survived:
            self.close()
            return
        old_ep, old_efd = self.ep, self.efd
        ep = select.epoll()
        efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        ep.register(efd, _EPOLLIN)
        lost = []
        for fd, st in list(self.fds.items()):
            try:
                ep.register(fd, self._mask(st))
            except (OSError, ValueError):
                del self.fds[fd]
                st.unpolled()
                lost.extend(w for w in (st.r, st.w) if w is not None)
                st.r = st.w = None
        self.ep, self.efd = ep, efd
        old_ep.close()            # our copy of the fd only: no EPOLL_CTL_DEL reaches the parent
        os.close(old_efd)
        self.nwatched = sum(1 for st in self.fds.values() if st.r is not None or st.w is not None)
        for w in lost:
            self._unwait(w)
            _park.ready(w.g, True)
        self.wakeup()             # completions queued before the fork are run at the hub's next poll

    def complete(self, fn: Any, arg: Any) -> None:
        """Queues ``fn(arg)`` to run on the hub and wakes it. Any thread."""
        self.completions.append((fn, arg))
        self.wakeup()

    @staticmethod
    def _mask(st: FdState) -> int:
        """The epoll mask st's fd is (to be) registered with: a kept fd's, for its life; else
        level-triggered for the directions waited on."""
        if st.owner is not None:
            return _KEPT_MASK
        return _LT[(READ if st.r is not None else 0) | (WRITE if st.w is not None else 0)]

    def watch(self, fd: int, event: int, g: Goroutine, owner: Any = None) -> Optional[FdWaiter]:
        """Registers g's interest in ``event`` on ``fd`` (invariants 1, 2): the waiter, or None
        when ``owner``'s fd had an edge for ``event`` since its last wait (invariant 2: the
        caller tries its operation again instead of parking).

        ``owner``: the object that owns the fd and closes it through :meth:`notify_closing`
        (a ``preempt.socket``): its fd stays registered while it lives. None: a bare fd,
        registered while waited on."""
        fds = self.fds
        st = fds.get(fd)
        if st is not None and st.owner is not None:
            was = st.owner()
            if was is not owner and (was is None or _fileno(was) != fd):
                self._drop_kept(st)          # closed unseen: this fd number is another file's
                st = None
        if st is None:
            st = FdState(fd, ref(owner) if owner is not None else None)
            slot = FdWaiter(self, fd, event, g)
            if event == READ:
                st.r = slot
            else:
                st.w = slot
            self._register(st)
            fds[fd] = st
            self.nwatched += 1
            self.s.npoll += 1
            return slot
        cur = st.r if event == READ else st.w
        if cur is not None:
            other = cur.g
            raise PreemptError(
                f"goroutine {other.id} {other.name!r} already waits for fd {fd} to become "
                f"{'readable' if event == READ else 'writable'}; only one goroutine may wait "
                "per fd and direction — funnel the fd through one goroutine")
        if st.ready & event:
            st.ready &= ~event
            if owner is not None:
                return None                  # invariant 2: it may be ready: try again
            if _ready_now(fd, event):        # a bare wait on an owned fd: its contract is
                return None                  # "ready", not "maybe"
        w = FdWaiter(self, fd, event, g)
        idle = st.r is None and st.w is None
        if event == READ:
            st.r = w
        else:
            st.w = w
        if st.owner is None:
            try:
                self.ep.modify(fd, self._mask(st))
            except BaseException:
                if event == READ:
                    st.r = None
                else:
                    st.w = None
                raise
        if idle:
            self.nwatched += 1
        self.s.npoll += 1
        return w

    def _register(self, st: FdState) -> None:
        """Adds st's fd to the epoll set (st is not in ``fds`` yet). A kept fd whose number
        the kernel still knows — registered by an object that died without closing it
        through us, its file still open elsewhere — is modified instead."""
        try:
            self.ep.register(st.fd, self._mask(st))
        except FileExistsError:
            self.ep.modify(st.fd, self._mask(st))

    def _drop_kept(self, st: FdState) -> None:
        """Forgets a kept registration whose owner is gone or replaced (no waiter is left:
        an fd has one owner while it is open). Its number may name another file now: no
        EPOLL_CTL_DEL (it would remove that file's registration); a stale kernel entry goes
        away when its file is closed."""
        if self.fds.get(st.fd) is st:
            del self.fds[st.fd]
        st.unpolled()
        if st.r is not None or st.w is not None:
            self.nwatched -= 1
        for w in (st.r, st.w):
            if w is not None:
                self._unwait(w)
                w.g.wake_exc = OSError(errno.EBADF, f"fd {st.fd} was closed while waited on")
                _park.ready(w.g, True)

    def _unwait(self, w: FdWaiter) -> None:
        """Bookkeeping of a waiter that leaves: counts, its timer."""
        self.s.npoll -= 1
        w.fired = True
        t = w.timer
        if t is not None:
            w.timer = None
            t.cancel()

    def _forget(self, w: FdWaiter) -> None:
        st = self.fds.get(w.fd)
        if st is None:
            return
        if w.event == READ:
            if st.r is not w:
                return
            st.r = None
        else:
            if st.w is not w:
                return
            st.w = None
        self._unwait(w)
        if st.r is None and st.w is None:
            self.nwatched -= 1
            if st.owner is None:
                del self.fds[w.fd]
                try:
                    self.ep.unregister(w.fd)
                except (ValueError, OSError):   # the fd was closed while we waited
                    pass
                return
        if st.owner is None:
            try:
                self.ep.modify(w.fd, self._mask(st))
            except (ValueError, OSError):
                pass

    def notify_closing(self, fd: int, exc: Optional[BaseException] = None) -> int:
        """Wakes every G waiting for ``fd`` with ``exc`` (default: OSError EBADF) and forgets
        the fd, removing a kept registration (invariants 2, 5). Call before closing it.
        Returns how many woke. M thread."""
        st = self.fds.get(fd)
        if st is None:
            return 0
        n = 0
        for w in (st.r, st.w):
            if w is None:
                continue
            e = exc if exc is not None else OSError(
                errno.EBADF, f"fd {fd} was closed while goroutine {w.g.id} {w.g.name!r} waited "
                             f"for it to become {'readable' if w.event == READ else 'writable'}")
            self._forget(w)
            w.g.wake_exc = e
            _park.ready(w.g, True)
            n += 1
        if st.owner is not None and self.fds.get(fd) is st:
            del self.fds[fd]
            st.unpolled()
            try:
                self.ep.unregister(fd)       # while the fd is still open: its file may outlive it
            except (ValueError, OSError):
                pass
        return n

    def sweep_closed(self, now: float) -> None:
        """Invariant 5: wakes the waiters of watched fds that were closed under them. A
        socket's fd is checked through its owner (closed or detached: its fileno() is -1),
        with no system call: 10,000 waiting connections cost no 200,000 fcntl() a second.
        Hub."""
        self.next_sweep = now + SWEEP_EVERY
        for fd, st in list(self.fds.items()):
            if st.r is None and st.w is None:
                continue
            if st.owner is not None:
                o = st.owner()
                if o is None or _fileno(o) != fd:
                    self.notify_closing(fd)
                continue
            try:
                fcntl.fcntl(fd, fcntl.F_GETFD)
            except OSError as e:
                if e.errno == errno.EBADF:
                    self.notify_closing(fd)

    def poll(self, timeout: Optional[float]) -> int:
        """Waits up to ``timeout`` seconds (None: for ever) and readies whoever is due. Hub only."""
        if self.nwatched:
            now = _park.monotonic()
            if now >= self.next_sweep:
                self.sweep_closed(now)
            if timeout is None or timeout > SWEEP_EVERY:
                timeout = SWEEP_EVERY
        events = self.ep.poll(-1 if timeout is None else timeout)
        n = 0
        woke = []
        fds = self.fds
        for fd, mask in events:
            st = fds.get(fd)
            if st is None:
                if fd == self.efd:
                    try:
                        os.eventfd_read(fd)
                    except OSError:
                        pass
                continue
            if st.owner is not None:             # invariant 7
                if mask & _NODRY:
                    st.nodry = True
                    st.dry = False
                elif mask & _EPOLLIN:
                    st.dry = False
            if mask & _WAKES_READ:
                w = st.r
                if w is not None:
                    if st.owner is not None:     # _forget(w), inlined for a kept fd
                        st.r = None
                        self._unwait(w)
                        if st.w is None:
                            self.nwatched -= 1
                    else:
                        self._forget(w)
                    woke.append(w.g)
                elif st.owner is not None:
                    st.ready |= READ
            if mask & _WAKES_WRITE:
                w = st.w
                if w is not None:
                    if st.owner is not None:
                        st.w = None
                        self._unwait(w)
                        if st.r is None:
                            self.nwatched -= 1
                    else:
                        self._forget(w)
                    woke.append(w.g)
                elif st.owner is not None:
                    st.ready |= WRITE
        if woke:
            for g in woke:
                g.state = RUNNABLE
                g.blocker = None
                g.io_turn = IO_TURNS
            n = len(woke)
            s = self.s
            _park.queue_io(s, woke)              # invariant 6
            if len(s.runq) > s.iofront[0]:
                # Gs that I/O did not bring are runnable too (computing ones): the woken get
                # an I/O slice each, then the poll comes round again (invariant 6)
                now = _park.monotonic()
                if now >= self.io_slice_end:
                    self.io_slice_end = now + IO_SLICE
                    self.io_tick = s.ticks[0]    # the next G switched in has the slice
                    add_timer(s, self.io_slice_end, _io_slice_over, None)
        comp = self.completions
        while comp:
            fn, arg = comp.popleft()
            fn(arg)
            n += 1
        return n


def _fileno(owner: Any) -> int:
    """owner's fd now (-1 once it was closed or detached, as a socket says). M."""
    try:
        return owner.fileno()
    except (OSError, ValueError):
        return -1


def _ready_now(fd: int, event: int) -> bool:
    """Whether fd is ready for event this instant (a poll() with timeout 0). M."""
    p = select.poll()
    p.register(fd, select.POLLIN if event == READ else select.POLLOUT)
    return bool(p.poll(0))
