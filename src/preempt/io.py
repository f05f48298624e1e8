"""Waiting for file descriptors: ``wait_readable`` / ``wait_writable``.

The goroutine parks; the hub's epoll (``_runtime/_netpoll.py``) readies it when the fd is ready
or the timeout passes. Explicit functions instead of gevent-style monkey-patching: make the fd
non-blocking, wait, then read or write it yourself.

Example::

    sock.setblocking(False)
    while True:
        try:
            data = sock.recv(65536)
            break
        except BlockingIOError:
            preempt.wait_readable(sock)
"""

from __future__ import annotations

from time import monotonic
from typing import Any, Optional

from ._runtime import _park
from ._runtime._netpoll import READ, WRITE
from ._runtime._timeouts import TIMEOUT_MAX, check_timeout
from ._runtime._timers import add_timer

__all__ = ["wait_readable", "wait_writable", "notify_closing"]


def _fileno(fd: Any) -> int:
    return fd if isinstance(fd, int) else fd.fileno()


def _wait(fd: Any, event: int, timeout: Optional[float], what: str, owner: Any = None) -> bool:
    """Parks the running G until fd is ready for event (True) or the timeout passes (False).
    ``owner``: the socket that owns fd (its fd stays registered, ``_netpoll.py`` invariant 2;
    True may then also mean "ready a moment ago": the caller retries its operation)."""
    if timeout is not None and not (type(timeout) is float and 0.0 <= timeout <= TIMEOUT_MAX):
        timeout = check_timeout(timeout, what)        # rules in _runtime/_timeouts.py
    s = _park.check_sched(what)
    return _park_fd(s, _fileno(fd), event, timeout, owner)


def _park_fd(s: Any, fd: int, event: int, timeout: Optional[float], owner: Any = None) -> bool:
    """:func:`_wait` for callers that checked that the running G is ``s.cur`` on its M and
    that ``timeout`` is None or a float in [0, TIMEOUT_MAX] (``preempt.socket``'s waits)."""
    if timeout is not None and timeout <= 0:
        import select as _select

        r, w, _ = _select.select([fd] if event == READ else [], [fd] if event == WRITE else [],
                                 [], 0)
        return bool(r or w)
    w = s.poller.watch(fd, event, s.cur, owner)
    if w is None:
        return True                 # an edge came since its last wait: try again
    if timeout is not None:
        w.timer = add_timer(s, monotonic() + timeout, type(w).fire_timeout, w)
    try:
        _park.park_checked(s, s.cur, "wait_readable" if event == READ else "wait_writable", w)
    finally:
        if not w.fired:             # woken by the poll, a timeout or an interrupt: forgotten
            w.cancel()
    return not w.timed_out


def wait_readable(fd: Any, timeout: Optional[float] = None) -> bool:
    """Waits until ``fd`` (an int or an object with ``fileno()``) is readable.

    Args:
        fd: The file descriptor.
        timeout: Seconds to wait at most: an int or float (or another real number) >= 0; 0
            only polls. None, ``math.inf`` or any value above 2**31 s (about 68 years) waits
            for ever.

    Returns:
        True when it is readable, False on timeout.

    Raises:
        TypeError: ``timeout`` is not None or a number, or is a bool.
        ValueError: ``timeout`` is NaN or negative.
        PreemptError: Another goroutine already waits for this fd to be readable.
        OSError: ``fd`` was closed while it waited (EBADF; see :func:`notify_closing`).
    """
    return _wait(fd, READ, timeout, "preempt.wait_readable()")


def wait_writable(fd: Any, timeout: Optional[float] = None) -> bool:
    """Waits until ``fd`` is writable. Same arguments, results and errors as
    :func:`wait_readable` (PreemptError: another goroutine already waits for it to be writable).
    """
    return _wait(fd, WRITE, timeout, "preempt.wait_writable()")


def notify_closing(fd: Any) -> int:
    """Wakes every goroutine waiting for ``fd`` with ``OSError(EBADF)``; call it before closing
    an fd that another goroutine may be waiting on (Go's netpoll does this when a file is
    closed; trio calls it ``notify_closing``).

    An fd closed without it is noticed too, within 50 ms (the hub looks for closed watched fds
    while any is watched), unless its number was reused by a new open in between: that is the
    case this call is for.

    Args:
        fd: The file descriptor (an int or an object with ``fileno()``).

    Returns:
        How many goroutines were woken (0 when nobody waited).

    Raises:
        PreemptError: Called outside ``preempt.run()`` or from another OS thread.
    """
    s = _park.check_sched("preempt.notify_closing()")
    return s.poller.notify_closing(_fileno(fd))
