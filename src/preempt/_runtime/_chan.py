"""Channels and select, Go's way.

A :class:`Chan` has a buffer of ``cap`` values and two wait queues (``_runtime/_waitq.py``):
receivers waiting for a value, senders waiting for room. A send to a waiting receiver hands the
value straight to it and puts it in ``runnext`` (the receiver runs next, without the hub).

:func:`select` waits on several channel operations at once: it tries the cases in a random
order (so a ready case is chosen uniformly, and none is starved), and if none is ready it parks
one waiter per case, all sharing one ``Sel``; the first peer to claim one wins.

``send``, ``recv``, ``recv_ok`` and ``__iter__`` have C twins (``csrc/hot/chan.c``) for the
hand-off path, put in their place by ``_cpath.py``; they call these Python methods for
everything else, so the rules below are stated once, here. ``preempt.chan`` is the public face
of this module.

Semantics (Go's, except where noted):

1. ``send`` on a closed channel raises ChanClosed (Go panics); so does a ``Send`` case chosen by
   select because its channel was closed.
2. ``recv`` on a closed channel returns the buffered values, then raises ChanClosed
   (``recv_ok`` returns ``(None, False)``; iteration stops).
3. ``close`` wakes every waiting receiver (``ok`` False) and sender (ChanClosed); closing twice
   raises ChanClosed.
4. A ``Recv`` case taken on a closed channel yields the value None; its ``ok`` attribute tells
   a real None from a closed channel.
"""

from __future__ import annotations

import random
from collections import deque
from itertools import count
from time import monotonic
from typing import Any, Iterator, Optional, Tuple

from greenlet import getcurrent

from .._errors import ChanClosed, PreemptError
from . import _park
from ._timeouts import TIMEOUT_MAX, check_timeout
from ._timers import add_timer
from ._waitq import TIMEOUT, Sel, Waiter, WaitQ

_chan_ids = count(1)


_running_sched = _park.running_sched


class Chan:
    """A Go channel.

    Args:
        cap: Buffer size; 0 (default) makes an unbuffered channel, where a send waits for a
            receiver.

    Example::

        ch = preempt.Chan(cap=2)
        ch.send(1); ch.send(2); ch.close()
        assert list(ch) == [1, 2]
    """

    __slots__ = ("_buf", "_cap", "_recvq", "_sendq", "_closed", "_id", "__weakref__")

    def __init__(self, cap: int = 0) -> None:
        if not isinstance(cap, int) or cap < 0:
            raise PreemptError(f"Chan(cap={cap!r}): cap must be an int >= 0")
        self._buf: deque = deque()
        self._cap = cap
        self._recvq = WaitQ(self)
        self._sendq = WaitQ(self)
        self._closed = False
        self._id = next(_chan_ids)

    def __repr__(self) -> str:
        closed = ", closed" if self._closed else ""
        return f"Chan#{self._id}(cap={self._cap}, len={len(self._buf)}{closed})"

    @property
    def cap(self) -> int:
        """The buffer size."""
        return self._cap

    def __len__(self) -> int:
        return len(self._buf)

    def closed(self) -> bool:
        """Whether close() was called."""
        return self._closed

    # -- non-blocking halves, shared with select -----------------------------------------

    def _try_send(self, v: Any) -> bool:
        if self._closed:
            raise ChanClosed(f"send on closed {self!r}: no more sends; stop the senders before "
                             "closing (only the sending side should close a channel)")
        w = self._recvq.dequeue()
        if w is not None:
            w.elem = v
            w.ok = True
            _park.ready(w.g, True)
            return True
        if len(self._buf) < self._cap:
            self._buf.append(v)
            return True
        return False

    def _try_recv(self) -> Tuple[bool, Any, bool]:
        """Returns (done, value, ok)."""
        buf = self._buf
        if buf:
            v = buf.popleft()
            w = self._sendq.dequeue()
            if w is not None:          # a sender waited for room: its value takes the slot
                buf.append(w.elem)
                w.ok = True
                _park.ready(w.g, True)
            return True, v, True
        w = self._sendq.dequeue()
        if w is not None:
            w.ok = True
            _park.ready(w.g, True)
            return True, w.elem, True
        if self._closed:
            return True, None, False
        return False, None, False

    # -- public operations ---------------------------------------------------------------

    def _send_closed(self) -> None:
        raise ChanClosed(f"{self!r} was closed while a send waited on it")

    def _recv_closed(self) -> None:
        raise ChanClosed(f"receive from closed and drained {self!r}; use recv_ok() or "
                         "iterate to stop cleanly at close")

    def send(self, v: Any) -> None:
        """Sends ``v``, waiting for a receiver or buffer room.

        Raises:
            ChanClosed: The channel is (or gets) closed.
        """
        s = _park.sched
        if s is None or s.cur is None or s.cur.glet is not getcurrent():
            s = _park.check_sched("Chan.send()")
        if self._try_send(v):                  # handed to a receiver, or buffered; or ChanClosed
            return
        if self._sendq.park_cached(s, s.cur, "chan send", v).closed:
            self._send_closed()

    def recv(self) -> Any:
        """Receives a value, waiting for one.

        Raises:
            ChanClosed: The channel is closed and its buffer drained.

        An interrupt never drops a value: if KeyboardInterrupt (main) or the end of ``run()``
        reaches the goroutine after a sender handed it a value, ``recv`` still returns the
        value and the exception is raised at the goroutine's next checkpoint (its next
        blocking call, yield or preemption). An interrupt that comes while nothing was handed
        over yet cancels the wait and is raised here.
        """
        s = _park.sched
        if s is None or s.cur is None or s.cur.glet is not getcurrent():
            s = _park.check_sched("Chan.recv()")
        if self._buf or self._sendq._q or self._closed:
            done, v, ok = self._try_recv()
            if not done:
                pass
            elif ok:
                return v
            else:
                self._recv_closed()
        v, ok = self._wait_recv(s)
        if ok:
            return v
        self._recv_closed()

    def recv_ok(self) -> Tuple[Any, bool]:
        """Receives ``(value, True)``, or ``(None, False)`` once closed and drained."""
        s = _park.sched
        if s is None or s.cur is None or s.cur.glet is not getcurrent():
            s = _park.check_sched("Chan.recv_ok()")
        if self._buf or self._sendq._q or self._closed:
            done, v, ok = self._try_recv()
            if done:
                return v, ok
        return self._wait_recv(s)

    def _wait_recv(self, s: Any) -> Tuple[Any, bool]:
        """Parks the running G in the receive queue; returns what a sender or close() left."""
        w = self._recvq.park_cached(s, s.cur, "chan receive")
        return w.elem, w.ok

    def close(self) -> None:
        """Closes the channel: receivers drain the buffer, then see it closed.

        Raises:
            ChanClosed: It was already closed.
        """
        _running_sched("Chan.close()")
        if self._closed:
            raise ChanClosed(f"close of closed {self!r}: close a channel exactly once")
        self._closed = True
        while True:
            w = self._recvq.dequeue()
            if w is None:
                break
            w.elem, w.ok, w.closed = None, False, True
            _park.ready(w.g)
        while True:
            w = self._sendq.dequeue()
            if w is None:
                break
            w.closed = True
            _park.ready(w.g)

    def __iter__(self) -> Iterator[Any]:
        """Yields received values until the channel is closed and drained."""
        recv_ok = self.recv_ok
        while True:
            v, ok = recv_ok()
            if not ok:
                return
            yield v


class Recv:
    """A select case receiving from ``ch``. After select, ``ok`` is False if it was closed."""

    __slots__ = ("ch", "ok")

    def __init__(self, ch: Chan) -> None:
        if not isinstance(ch, Chan):
            raise PreemptError(f"Recv(ch): ch must be a preempt.Chan, got {type(ch).__name__}")
        self.ch = ch
        self.ok = False


class Send:
    """A select case sending ``value`` on ``ch``."""

    __slots__ = ("ch", "value")

    def __init__(self, ch: Chan, value: Any) -> None:
        if not isinstance(ch, Chan):
            raise PreemptError(f"Send(ch, v): ch must be a preempt.Chan, got {type(ch).__name__}")
        self.ch = ch
        self.value = value


def select(*cases: Any, timeout: Optional[float] = None,
           default: bool = False) -> Tuple[int, Any]:
    """Waits until one of several channel operations can proceed, and does it.

    Args:
        *cases: ``Recv(ch)`` and ``Send(ch, v)`` cases.
        timeout: Give up after this many seconds: an int or float (or another real number)
            >= 0; 0 only checks the cases once. None, ``math.inf`` or any value above 2**31 s
            (about 68 years) waits for ever.
        default: Do not wait at all when no case is ready (Go's ``default:``).

    Returns:
        ``(index, value)``: the index of the case taken and the value received (None for a
        Send); ``(-1, None)`` when the default or the timeout was taken.

    Raises:
        ChanClosed: The case taken is a Send on a closed channel.
        TypeError: ``timeout`` is not None or a number, or is a bool.
        ValueError: ``timeout`` is NaN or negative.

    Among ready cases the choice is uniformly random, so no ready case is starved.

    Example::

        i, v = preempt.select(preempt.Recv(data), preempt.Recv(quit), timeout=1.0)
        if i == -1: ...   # timed out
    """
    if timeout is not None and not (type(timeout) is float and 0.0 <= timeout <= TIMEOUT_MAX):
        timeout = check_timeout(timeout, "preempt.select()")   # rules in _runtime/_timeouts.py
    s = _running_sched("preempt.select()")
    n = len(cases)
    for c in cases:
        if not isinstance(c, (Recv, Send)):
            raise PreemptError(f"select() cases must be Recv(ch) or Send(ch, v), got {c!r}")
    order = list(range(n))
    if n > 1:
        random.shuffle(order)
    for i in order:
        c = cases[i]
        if type(c) is Recv:
            done, v, ok = c.ch._try_recv()
            if done:
                c.ok = ok
                return i, v
        elif c.ch._try_send(c.value):
            return i, None
    if default or (timeout is not None and timeout <= 0):
        return -1, None
    g = s.cur
    sel = Sel(g)
    for i, c in enumerate(cases):
        w = Waiter(g, c.value if type(c) is Send else None)
        w.sel = sel
        w.index = i
        sel.waiters.append(w)
        (c.ch._recvq if type(c) is Recv else c.ch._sendq).enqueue(w)
    if timeout is not None:
        sel.timer = add_timer(s, monotonic() + timeout, Sel.fire_timeout, sel)
    try:
        _park.park("select", sel)
    finally:
        sel.cancel()
    win = sel.winner
    if win is TIMEOUT or win is None:
        return -1, None
    c = cases[win.index]
    if type(c) is Recv:
        c.ok = win.ok
        return win.index, win.elem
    if win.closed:
        raise ChanClosed(f"select: {c.ch!r} was closed while a Send case waited on it")
    return win.index, None
