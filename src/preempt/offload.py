"""Running blocking calls off the M: ``preempt.blocking(fn, *args)``.

A call that blocks in C (a DNS lookup, a file read on a slow disk, a library without a
non-blocking API) would stop every goroutine, since they share the M. :func:`blocking` runs it
in a small pool of OS threads instead; the calling goroutine parks, and the others run. When the
call ends, the pool thread queues a completion and writes the hub's eventfd
(``_runtime/_netpoll.py``); the hub readies the goroutine, which returns the result or raises
the exception.

Rules:

1. The pool is created lazily, per ``run()``, with ``PREEMPT_OFFLOAD_THREADS`` threads (default
   4), and shut down when ``run()`` ends.
2. An outstanding call counts as pending I/O: the hub does not report a deadlock while one runs.
3. If the waiting goroutine is interrupted (KeyboardInterrupt, end of run()), the call is
   abandoned: it finishes in its thread and its result is dropped.

.. warning:: ``fn`` runs on another OS thread: it must not touch goroutine primitives (Chan,
   Mutex, ...), which raise PreemptError there.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from ._runtime import _park

__all__ = ["blocking"]


class _Call:
    """One outstanding blocking() call: the park blocker and the completion record."""

    __slots__ = ("s", "g", "fut", "done", "abandoned")

    def __init__(self, s: Any, g: Any) -> None:
        self.s = s
        self.g = g
        self.fut: Any = None
        self.done = False
        self.abandoned = False

    def cancel(self) -> None:                  # rule 3 (hub / runtime code)
        if not self.abandoned and not self.done:
            self.abandoned = True
            self.s.npoll -= 1

    def describe(self, reason: Any) -> str:
        return f"{reason} in the offload pool"

    def finish(self, _: Any = None) -> None:   # on the hub, via Poller.complete
        if self.abandoned:
            return
        self.done = True
        self.s.npoll -= 1
        _park.ready(self.g, True)


def _pool(s: Any) -> ThreadPoolExecutor:
    if s.offload is None:
        n = int(os.environ.get("PREEMPT_OFFLOAD_THREADS", "4") or 4)
        s.offload = ThreadPoolExecutor(max_workers=max(1, n), thread_name_prefix="preempt-offload")
    return s.offload


def blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Runs ``fn(*args, **kwargs)`` on an offload thread; the goroutine waits, the others run.

    Args:
        fn: A blocking function (it must not use goroutine primitives).
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Returns:
        What ``fn`` returned.

    Raises:
        BaseException: What ``fn`` raised.

    Example::

        addr = preempt.blocking(socket.getaddrinfo, "example.org", 443)
    """
    s = _park.check_sched("preempt.blocking()")
    call = _Call(s, s.cur)
    poller = s.poller
    fut: Future = _pool(s).submit(fn, *args, **kwargs)
    call.fut = fut
    s.npoll += 1
    fut.add_done_callback(lambda f: poller.complete(call.finish, None))
    _park.park("blocking", call)
    return fut.result()
