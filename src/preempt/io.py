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
from ._runtime._timers import add_timer

__all__ = ["wait_readable", "wait_writable"]


def _fileno(fd: Any) -> int:
    return fd if isinstance(fd, int) else fd.fileno()


def _wait(fd: Any, event: int, timeout: Optional[float], what: str) -> bool:
    s = _park.check_sched(what)
    fd = _fileno(fd)
    if timeout is not None and timeout <= 0:
        import select as _select

        r, w, _ = _select.select([fd] if event == READ else [], [fd] if event == WRITE else [],
                                 [], 0)
        return bool(r or w)
    w = s.poller.watch(fd, event, s.cur)
    if timeout is not None:
        w.timer = add_timer(s, monotonic() + timeout, type(w).fire_timeout, w)
    try:
        _park.park("wait_readable" if event == READ else "wait_writable", w)
    finally:
        w.cancel()
    return not w.timed_out


def wait_readable(fd: Any, timeout: Optional[float] = None) -> bool:
    """Waits until ``fd`` (an int or an object with ``fileno()``) is readable.

    Args:
        fd: The file descriptor.
        timeout: Seconds to wait at most (None: for ever).

    Returns:
        True when it is readable, False on timeout.

    Raises:
        PreemptError: Another goroutine already waits for this fd to be readable.
    """
    return _wait(fd, READ, timeout, "preempt.wait_readable()")


def wait_writable(fd: Any, timeout: Optional[float] = None) -> bool:
    """Waits until ``fd`` is writable. Same arguments and results as :func:`wait_readable`."""
    return _wait(fd, WRITE, timeout, "preempt.wait_writable()")
