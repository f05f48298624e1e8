"""``preempt.patch()`` / ``preempt.unpatch()``: stdlib blocking calls that park goroutines.

For code you do not own: after ``preempt.patch()``, unmodified stdlib clients — ``http.client``,
``urllib.request``, ``smtplib``, ``socketserver``, ``ftplib`` — park the calling goroutine where
they would block the M. Code you write should import ``preempt.socket`` and ``preempt.ssl``
instead; the patch changes process-wide state and is meant for the start of a program.

What each switch does (every change is recorded and undone by :func:`unpatch`):

- ``socket``: ``socket.socket`` is ``preempt.socket.socket``, and the resolver functions
  (``getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``, ``gethostbyaddr``,
  ``getnameinfo``) are preempt's. The stdlib's own ``create_connection``, ``create_server``,
  ``socketpair`` and ``fromfd`` look those names up when called, so they make green sockets.
- ``ssl``: ``ssl.SSLContext.sslsocket_class`` is ``preempt.ssl.SSLSocket``, so every context,
  also one made before the patch, wraps into green TLS sockets.
- ``time``: ``time.sleep`` parks a goroutine (``preempt.sleep``).
- ``select``: ``select.select`` and ``select.poll`` park a goroutine.
- ``selectors``: ``EpollSelector``, ``PollSelector`` and ``SelectSelector`` (so
  ``DefaultSelector``) park a goroutine in ``select()``. The classes are changed in place, so
  a module that kept a reference to one at import (``socketserver._ServerSelector``) is
  covered too.
- ``threading``: ``threading.Lock``, ``threading.RLock`` and ``threading._allocate_lock``
  make ``preempt._locks`` locks, and ``queue.SimpleQueue`` is the stdlib's pure-Python one, so
  every ``Condition``, ``Semaphore``, ``Event``, ``Barrier``, ``Queue`` and
  ``concurrent.futures.Future`` made after the patch parks a goroutine that waits on it (a
  thread still blocks on it for real): ``_locks.py`` says what is safe to share between
  goroutines and why.

Rules:

1. Outside a goroutine every patched function is the original: another OS thread (the offload
   pool), outside ``run()``, the hub. So patching never changes what threads see.
2. Names bound before the patch are not changed: ``from socket import socket`` at import time
   keeps the stdlib class. Patch before importing the code you want green.
3. ``patch()`` twice is harmless; ``unpatch()`` restores exactly what the first patch found.
4. ``epoll`` objects are not patched (event loops own them: see the asyncio bridge);
   ``os.read``/``os.write`` on pipes and files are not either.

Not patched: ``threading.Thread`` and ``threading.local``. Turning threads into goroutines, as
gevent does, would break what needs real threads: the offload pool that runs ``blocking()`` and
DNS, the C monitor's thread registry, ``threading.local`` data of C libraries, and thread-pool
executors that exist to run CPU or blocking work in parallel. Only the locks become
goroutine-aware, and they stay real locks between threads. Locks made before the patch stay
real (rule 2): the runtime never preempts inside ``threading``, ``queue``, ``logging`` or
``concurrent.futures`` (``deny_preemption_in``), but a goroutine parked on I/O while it holds
one still shuts the others out of it, and a goroutine that waits on one blocks the M. Wait on
those through ``preempt.blocking(fn)`` (``socketserver``'s ``shutdown()`` waits on a
``threading.Event`` the server made: for a server made before the patch, call
``preempt.blocking(server.shutdown)``).

Where these run: ``patch``/``unpatch`` on any thread, before goroutines use what they change.
"""

from __future__ import annotations

import select as _select
import selectors as _selectors
import socket as _socket_mod
import ssl as _ssl_mod
import queue as _queue_mod
import threading as _threading_mod
import time as _time_mod
from time import monotonic as _monotonic
from typing import Any, Dict, List, Optional, Tuple

from . import _locks
from . import socket as _psocket
from .socket import _here

__all__ = ["patch", "unpatch"]

_saved: List[Tuple[Any, str, Any]] = []          # (owner, attribute, original value)
_done: Dict[str, bool] = {}
_MISSING = object()

_orig_sleep = _time_mod.sleep
_orig_select = _select.select
_orig_poll = _select.poll
# gevent's monkey.patch_all() removes EpollSelector (and PollSelector) from selectors: preempt
# must still import after it
_Epoll = getattr(_selectors, "EpollSelector", None)
_orig_epoll_select = _Epoll.select if _Epoll is not None else None


def _set(owner: Any, name: str, value: Any) -> None:
    _saved.append((owner, name, owner.__dict__.get(name, _MISSING)
                   if isinstance(owner, type) else getattr(owner, name, _MISSING)))
    setattr(owner, name, value)


# -- time ---------------------------------------------------------------------------------------

def _green_sleep(secs: float) -> None:
    """``time.sleep`` that parks a goroutine (rule 1: the original elsewhere)."""
    if _here() is None:
        return _orig_sleep(secs)
    from .time import sleep as _psleep

    _psleep(secs)


# -- select -------------------------------------------------------------------------------------

def _fd(x: Any) -> int:
    return x if isinstance(x, int) else x.fileno()


def _park_until_any(fds: List[Tuple[int, int]], timeout: Optional[float]) -> bool:
    """Parks until one of ``(fd, epoll mask)`` is ready or ``timeout`` passes: a private epoll
    holds them all, and the goroutine waits for that epoll's own fd. False on timeout."""
    from .io import wait_readable

    ep = _select.epoll()
    try:
        for fd, mask in fds:           # one entry per fd: the callers merge the masks
            try:
                ep.register(fd, mask)
            except PermissionError:    # a regular file: always ready
                return True
        return wait_readable(ep.fileno(), timeout)
    finally:
        ep.close()


def _green_select(rlist: Any, wlist: Any, xlist: Any, timeout: Optional[float] = None) -> tuple:
    """``select.select`` that parks a goroutine (rule 1: the original elsewhere)."""
    if _here() is None or (timeout is not None and not 0 <= timeout <= 9e9):
        # elsewhere, or a negative, NaN or out-of-range timeout: the stdlib's call, which
        # raises its own ValueError or OverflowError for those (9e9 s: its int64 ns limit)
        return _orig_select(rlist, wlist, xlist, timeout)
    got = _orig_select(rlist, wlist, xlist, 0)   # the stdlib's checks, errors and format
    if got[0] or got[1] or got[2] or timeout == 0:
        return got
    masks: Dict[int, int] = {}
    for objs, m in ((rlist, _select.EPOLLIN), (wlist, _select.EPOLLOUT),
                    (xlist, _select.EPOLLPRI)):
        for o in objs:
            fd = _fd(o)
            masks[fd] = masks.get(fd, 0) | m
    deadline = None if timeout is None else _monotonic() + timeout
    while True:
        left = None if deadline is None else max(0.0, deadline - _monotonic())
        if not _park_until_any(list(masks.items()), left):
            return [], [], []
        got = _orig_select(rlist, wlist, xlist, 0)
        if got[0] or got[1] or got[2]:
            return got


class _GreenPoll:
    """``select.poll`` whose ``poll()`` parks a goroutine (rule 1: the original elsewhere)."""

    __slots__ = ("_p", "_masks")

    def __init__(self) -> None:
        self._p = _orig_poll()
        self._masks: Dict[int, int] = {}

    def register(self, fd: Any, eventmask: int = _select.POLLIN | _select.POLLPRI
                 | _select.POLLOUT) -> None:
        self._p.register(fd, eventmask)
        self._masks[_fd(fd)] = eventmask

    def modify(self, fd: Any, eventmask: int) -> None:
        self._p.modify(fd, eventmask)
        self._masks[_fd(fd)] = eventmask

    def unregister(self, fd: Any) -> None:
        self._p.unregister(fd)
        del self._masks[_fd(fd)]

    def poll(self, timeout: Optional[float] = None) -> list:
        if _here() is None:
            return self._p.poll(timeout)
        got = self._p.poll(0)
        if got or (timeout is not None and timeout == 0):
            return got
        if timeout is not None and timeout < 0:
            timeout = None
        deadline = None if timeout is None else _monotonic() + timeout / 1000.0
        while True:
            left = None if deadline is None else max(0.0, deadline - _monotonic())
            # POLL* and EPOLL* bits are the same numbers on Linux
            if not _park_until_any(list(self._masks.items()), left):
                return []
            got = self._p.poll(0)
            if got:
                return got


# -- selectors ----------------------------------------------------------------------------------

def _epoll_select(self: Any, timeout: Optional[float] = None) -> list:
    """``EpollSelector.select`` that parks a goroutine on the selector's epoll fd."""
    if _here() is None or (timeout is not None and timeout <= 0):
        return _orig_epoll_select(self, timeout)
    from .io import wait_readable

    deadline = None if timeout is None else _monotonic() + timeout
    while True:
        left = None if deadline is None else max(0.0, deadline - _monotonic())
        if not wait_readable(self._selector.fileno(), left):
            return []
        got = _orig_epoll_select(self, 0)
        if got:
            return got


# -- patch / unpatch ----------------------------------------------------------------------------

def patch(socket: bool = True, ssl: bool = True, time: bool = True, select: bool = True,
          selectors: bool = True, threading: bool = True) -> None:
    """Makes stdlib blocking calls park goroutines (module docstring). Reversible.

    Args:
        socket: Green ``socket.socket`` and resolver.
        ssl: Green TLS sockets from every ``ssl.SSLContext``.
        time: ``time.sleep`` parks.
        select: ``select.select`` and ``select.poll`` park.
        selectors: The selector classes park.
        threading: Locks made by ``threading`` (so its conditions, semaphores and events, and
            ``queue``) park a goroutine.

    Example::

        import preempt
        preempt.patch()
        import urllib.request          # imported after the patch: green

        def fetch(url):
            return urllib.request.urlopen(url, timeout=10).read()
    """
    if socket and not _done.get("socket"):
        _done["socket"] = True
        _set(_socket_mod, "socket", _psocket.socket)
        for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr",
                     "getnameinfo"):
            _set(_socket_mod, name, getattr(_psocket, name))
    if ssl and not _done.get("ssl"):
        _done["ssl"] = True
        from . import ssl as _pssl

        _set(_ssl_mod.SSLContext, "sslsocket_class", _pssl.SSLSocket)
    if time and not _done.get("time"):
        _done["time"] = True
        _set(_time_mod, "sleep", _green_sleep)
    if select and not _done.get("select"):
        _done["select"] = True
        _set(_select, "select", _green_select)
        _set(_select, "poll", _GreenPoll)
    if selectors and not _done.get("selectors"):
        _done["selectors"] = True
        if _Epoll is not None and _selectors.__dict__.get("EpollSelector") is _Epoll:
            _set(_Epoll, "select", _epoll_select)
        if hasattr(_selectors, "PollSelector"):
            _set(_selectors.PollSelector, "_selector_cls", _GreenPoll)
        if hasattr(_selectors, "SelectSelector"):
            _set(_selectors.SelectSelector, "_select", staticmethod(_green_select))
    if threading and not _done.get("threading"):
        _done["threading"] = True
        _set(_threading_mod, "Lock", _locks.Lock)
        _set(_threading_mod, "_allocate_lock", _locks.Lock)
        _set(_threading_mod, "RLock", _locks.RLock)
        if hasattr(_queue_mod, "_PySimpleQueue"):
            _set(_queue_mod, "SimpleQueue", _queue_mod._PySimpleQueue)


def unpatch() -> None:
    """Undoes :func:`patch`: every attribute it changed gets its original back (rule 3)."""
    while _saved:
        owner, name, old = _saved.pop()
        if old is _MISSING:
            try:
                delattr(owner, name)
            except AttributeError:
                pass
        else:
            setattr(owner, name, old)
    _done.clear()
