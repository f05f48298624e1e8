"""``threading`` locks that park goroutines: what ``preempt.patch()`` puts in ``threading``.

What is safe to share between goroutines, and why. Every goroutine runs on one OS thread, the
M. A real ``threading.Lock`` knows threads, not goroutines: when goroutine A holds one and is
switched out (preempted, or parked on a socket), goroutine B's blocking ``acquire()`` stops the
M itself, so A can never run again to release it — the whole process hangs. An ``RLock`` is
worse the other way round: it sees A and B as the same owner (the same thread) and lets B in.
Issue 24 met the first case in ``queue.Queue`` (urllib3's connection pool): a ``requests.Session``
shared by 50 goroutines hung the process in 4 runs out of 8.

Two mechanisms answer it, one for each way a goroutine can leave the CPU with a lock held:

1. Preemption. The hook never preempts a goroutine while a frame of a stdlib module that holds
   a real lock across its own bytecodes is on its stack: ``threading``, ``logging``, ``queue``
   and ``concurrent.futures`` (``_runtime/_preempt.py`` rule 6, ``LOCK_MODULES``). Go does the
   same for its runtime locks (``m.locks`` keeps a G holding one from being preempted). This
   holds under plain ``run()`` and in both bridges (``preempt.gevent.enable()``,
   ``preempt.aio.run``), with or without ``patch()``: a ``Queue``, a ``ThreadPoolExecutor``
   and the ``logging`` handlers are safe to share there.
2. Parking. Under ``patch()`` (``threading=True``, the default) the lock classes below replace
   ``threading.Lock``, ``threading.RLock`` and ``threading._allocate_lock``, and
   ``queue.SimpleQueue`` is the pure-Python one built on them. So every ``Condition``,
   ``Semaphore``, ``BoundedSemaphore``, ``Event``, ``Barrier``, ``Queue`` and
   ``concurrent.futures.Future`` made after the patch parks a goroutine that waits on it, while
   the others run: a goroutine may hold such a lock across a green socket call or a
   ``time.sleep`` and the others wait for it without stopping the M.

The rules of these locks:

1. A goroutine running on its M that cannot take the lock parks (``_park.park``): in a FIFO
   of waiters, with a timer when ``timeout`` is given. Everything else — another OS thread
   (the offload pool, executor workers), the M outside a goroutine (the hub, before
   ``run()``) — blocks on the real lock inside, exactly as ``threading`` does. So the same lock
   works between goroutines, between threads, and between the two.
2. ``release()`` releases the real lock, then wakes the first parked waiter: with
   ``_park.ready`` when it runs on the M, through the hub's completion queue (``Poller.complete``,
   which any thread may call) from another thread. The woken goroutine tries the lock again; a
   goroutine or thread that came in between may have taken it (no hand-off: like the real
   lock, it is not fair), and then the waiter parks again.
3. A waiter enqueues itself *before* its last try (enqueue, try, park), so a release between
   its first try and its park always sees it: no wake-up is lost.
4. A wake-up is claimed by popping the waiter from the FIFO (one atomic operation under the
   GIL). A waiter that gives up (timeout, cancellation) after its wake-up was claimed passes
   it on to the next waiter, so a free lock never has only sleeping waiters. A spurious wake-up
   is harmless: the goroutine tries again.
5. While a goroutine waits on such a lock, the hub counts it as outstanding I/O (``npoll``):
   another thread may release it, so nothing being runnable is not a deadlock. (A goroutine
   waiting for a lock only it holds hangs, as a thread would.)
6. ``RLock``'s owner is the goroutine when a goroutine takes it, the thread otherwise: a second
   goroutine on the same M is kept out.

Still not safe to share:

- without ``patch()``, a ``threading.Lock`` of your own that a goroutine holds while it parks or
  is preempted (use ``preempt.Mutex``, or patch before making it): nothing can switch the
  waiter out of the real ``acquire()`` (``_runtime/_preempt.py`` rule 6 says why), so it stops
  the M;
- locks made *before* ``patch()`` (module-level locks of libraries imported earlier,
  ``logging``'s own module lock): mechanism 1 keeps the stdlib from being preempted while it
  holds one, but a goroutine that parks on I/O while holding one (a ``logging.Handler`` made
  before the patch, writing to a green socket) lets another goroutine into an ``RLock`` or
  blocks the M on a ``Lock``. Patch first, then import;
- ``queue.SimpleQueue`` objects made before the patch and C-level locks of extension modules;
- ``threading.local``, which is per thread (use ``preempt.local``).

(An alternative was making ``Lock.acquire`` spin: try, ``gosched()``, try again. Rejected:
``Condition.wait`` blocks on a lock for as long as nobody notifies, so a spinning waiter burns
the M and hides a real deadlock from the hub's detector; a parked waiter costs nothing. Another
was the deny list alone, without patching: enough for code that never parks while holding a
lock, but under ``patch()`` stdlib code does — ``logging.StreamHandler`` over a green socket,
``Condition.wait`` in a goroutine — and those block the M on a real lock. A third was Go's own
``m.locks``: count the real locks each goroutine holds and never preempt it while the count is
non-zero. It needs a hook in every ``acquire``/``release``; ``_thread.lock`` has none, and a
lock that has one can park its waiters instead, which also covers a holder that parks.)

Where these run: any thread; the parking path only in a goroutine on its M.
"""

from __future__ import annotations

import _thread
from collections import deque
from time import monotonic
from typing import Any, Optional, Tuple

from greenlet import getcurrent

from ._runtime import _park
from ._runtime._timeouts import TIMEOUT_MAX
from ._runtime._timers import add_timer

__all__ = ["Lock", "RLock"]

_real_lock = _thread.allocate_lock
_get_ident = _thread.get_ident
_TIMEOUT_MAX = _thread.TIMEOUT_MAX


def _running_g() -> Any:
    """The running goroutine when the caller is it, on its M; else None (rule 1)."""
    s = _park.sched
    if s is not None and s.ident == _get_ident():
        g = s.cur
        if g is not None and g.glet is getcurrent():
            return g
    return None


class _Waiter:
    """One goroutine parked on a :class:`Lock` (the park blocker)."""

    __slots__ = ("s", "g", "lock", "timer", "timed_out")

    def __init__(self, s: Any, g: Any, lock: "Lock") -> None:
        self.s = s
        self.g = g
        self.lock = lock
        self.timer: Any = None
        self.timed_out = False

    def wake(self, _: Any = None) -> None:
        """Readies the goroutine if it still waits here (a late wake-up is dropped: rule 4).
        M thread: the hub, or the goroutine that released."""
        g = self.g
        if g.blocker is self:
            _park.ready(g)

    def fire_timeout(self, _: Any = None) -> None:
        """The timer (hub)."""
        self.timer = None
        self.timed_out = True
        self.wake()

    def cancel(self) -> None:
        """The goroutine is interrupted (Cancelled, KeyboardInterrupt, end of run()): leaves the
        FIFO, passing on a wake-up it had claimed (rule 4). M thread."""
        t = self.timer
        if t is not None:
            self.timer = None
            t.cancel()
        if not self.lock._leave(self):
            self.lock._wake_one()

    def describe(self, reason: Any) -> str:
        return f"{reason} on {self.lock!r}"


class Lock:
    """``threading.Lock`` that parks a waiting goroutine (module docstring)."""

    __slots__ = ("_l", "_waiters", "__weakref__")

    def __init__(self) -> None:
        self._l = _real_lock()
        self._waiters: "deque[_Waiter]" = deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._l.acquire(False):
            return True
        if not blocking or timeout == 0:
            return self._l.acquire(blocking, timeout)      # the real checks and errors
        g = _running_g()
        if g is None:
            return self._l.acquire(blocking, timeout)      # rule 1: a thread blocks for real
        if timeout != -1:
            if timeout < 0:
                raise ValueError("timeout value must be a non-negative number")
            if timeout > _TIMEOUT_MAX:
                raise OverflowError("timeout value is too large")
        forever = timeout == -1 or timeout > TIMEOUT_MAX    # ~68 years: the timers' range
        return self._park_acquire(g, None if forever else monotonic() + timeout)

    def _park_acquire(self, g: Any, deadline: Optional[float]) -> bool:
        s = _park.sched
        while True:
            w = _Waiter(s, g, self)
            self._waiters.append(w)                        # rule 3: enqueue, try, park
            if self._l.acquire(False):
                self._leave(w)
                return True
            if deadline is not None:
                left = deadline - monotonic()
                if left <= 0:
                    if not self._leave(w):
                        self._wake_one()                   # rule 4
                    return False
                w.timer = add_timer(s, deadline, w.fire_timeout, None)
            s.npoll += 1                                   # rule 5
            try:
                _park.park("threading lock", w)
            finally:
                s.npoll -= 1
            t = w.timer
            if t is not None:
                w.timer = None
                t.cancel()
            claimed = not self._leave(w)
            if self._l.acquire(False):
                return True
            if claimed:
                self._wake_one()                           # rule 4: not ours after all
            if w.timed_out:
                return False

    def _leave(self, w: _Waiter) -> bool:
        """Takes ``w`` out of the FIFO; False when a release had already claimed it."""
        try:
            self._waiters.remove(w)
            return True
        except ValueError:
            return False

    def _wake_one(self) -> None:
        """Claims the first waiter and wakes it (rule 2). Any thread."""
        try:
            w = self._waiters.popleft()
        except IndexError:
            return
        if _park.sched is w.s and w.s.ident == _get_ident():
            w.wake()
        else:
            w.s.poller.complete(w.wake, None)

    def release(self) -> None:
        self._l.release()
        if self._waiters:
            self._wake_one()

    def locked(self) -> bool:
        return self._l.locked()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def _at_fork_reinit(self) -> None:
        self._l = _real_lock()
        self._waiters.clear()

    acquire_lock = acquire
    release_lock = release
    locked_lock = locked

    def __repr__(self) -> str:
        return (f"<preempt green {'locked' if self._l.locked() else 'unlocked'} lock "
                f"at {id(self):#x}>")


def _owner() -> Any:
    """Who takes an RLock: the running goroutine, else the thread's id (rule 6)."""
    g = _running_g()
    return g if g is not None else _get_ident()


class RLock:
    """``threading.RLock`` whose owner is the goroutine, on a parking :class:`Lock`."""

    __slots__ = ("_block", "_owner", "_count", "__weakref__")

    def __init__(self) -> None:
        self._block = Lock()
        self._owner: Any = None
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = _owner()
        if self._owner == me:           # a thread's id is an int: ==, not is
            self._count += 1
            return True
        rc = self._block.acquire(blocking, timeout)
        if rc:
            self._owner = me
            self._count = 1
        return rc

    __enter__ = acquire

    def release(self) -> None:
        if self._owner != _owner():
            raise RuntimeError("cannot release un-acquired lock")
        self._count = count = self._count - 1
        if not count:
            self._owner = None
            self._block.release()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def locked(self) -> bool:
        return self._block.locked()

    # the Condition protocol (threading.Condition uses these when the lock has them)
    def _is_owned(self) -> bool:
        return self._owner == _owner()

    def _release_save(self) -> Tuple[int, Any]:
        if not self._count:
            raise RuntimeError("cannot release un-acquired lock")
        state = (self._count, self._owner)
        self._count = 0
        self._owner = None
        self._block.release()
        return state

    def _acquire_restore(self, state: Tuple[int, Any]) -> None:
        self._block.acquire()
        self._count, self._owner = state

    def _recursion_count(self) -> int:
        return self._count if self._owner == _owner() else 0

    def _at_fork_reinit(self) -> None:
        self._block._at_fork_reinit()
        self._owner = None
        self._count = 0

    def __repr__(self) -> str:
        owner = self._owner
        who = getattr(owner, "name", owner)
        return (f"<preempt green {'locked' if self._block.locked() else 'unlocked'} RLock "
                f"owner={who!r} count={self._count} at {id(self):#x}>")
