"""TCP servers: one goroutine per connection, a clean shutdown (``serve_tcp``).

Example::

    def echo(conn, addr):
        while data := conn.recv(65536):
            conn.sendall(data)

    def main():
        with preempt.net.serve_tcp(echo, "127.0.0.1", 8000) as srv:
            preempt.sleep(60)           # serve for a minute, then shut down cleanly

Rules (tests refer to them by number):

1. The accept loop is a goroutine of its own; each accepted connection gets a new goroutine
   running ``handler(conn, addr)``. ``conn`` is a ``preempt.socket.socket`` (a
   ``preempt.ssl.SSLSocket`` with ``tls=``); the server closes it when the handler returns.
2. With ``tls=`` (an ``ssl.SSLContext``), the TLS handshake runs in the connection's goroutine,
   never in the accept loop: a slow or broken client cannot hold up the others. A failed
   handshake closes that connection and is counted in ``stats()["tls_failures"]``.
3. An exception escaping a handler is printed to stderr with the peer's address (as
   ``threading`` prints a thread's) and counted in ``stats()["handler_errors"]``; the server
   goes on. ``Cancelled`` from the server's own shutdown is not an error.
4. ``close()`` stops accepting at once (the listening socket is closed; the accept loop wakes
   with EBADF and ends). ``shutdown(grace)`` closes, waits up to ``grace`` seconds for the
   running handlers, then cancels those still running and waits for them to end; it returns
   how many were cancelled. Leaving the ``with`` block is ``shutdown(grace=5.0)``.
5. Errors of ``accept()`` that concern one connection (ECONNABORTED, EMFILE/ENFILE: out of
   fds) do not end the loop; after EMFILE/ENFILE it backs off 10 ms, as Go's net/http does.
6. The accept loop is never starved by CPU-bound handlers, nor is a new or light request:
   a goroutine woken by a ready fd, and a connection's new goroutine, join the segment of
   I/O-woken goroutines at the head of the run queue, behind those woken earlier and ahead of
   every preempted one, and a handler that computes is preempted about 0.5 ms after I/O becomes ready
   (``_runtime/_netpoll.py`` invariant 6).
7. With ``max_conns=N``, at most N handlers run at once: the accept loop waits for one to end
   before it accepts the next connection, which waits meanwhile in the listen backlog (the
   limit of gevent's ``Pool`` and gunicorn's ``worker_connections``). ``close()`` ends that
   wait too.

Where these run: in goroutines of one ``preempt.run()``.
"""

from __future__ import annotations

import errno
import sys
import traceback
from typing import Any, Callable, Dict, Optional, Set

from . import socket as _psocket
from . import ssl as _pssl
from ._errors import Cancelled, Timeout
from ._runtime import _park, _preempt
from ._runtime._cancel import timeout
from ._runtime._run import current, go, go_first
from ._runtime._g import Goroutine
from .chan import Chan
from .time import sleep

__all__ = ["serve_tcp", "TCPServer"]

_RETRY = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENOBUFS, errno.ENOMEM}
_BACKOFF = {errno.EMFILE, errno.ENFILE}


class TCPServer:
    """A listening socket and its accept loop, made by :func:`serve_tcp`.

    Attributes:
        address: The bound address, ``(host, port)``: the port chosen when 0 was asked.
    """

    def __init__(self, listener: Any, handler: Callable[..., Any], tls: Any,
                 max_conns: Optional[int] = None) -> None:
        self._sock = listener
        self._handler = handler
        self._tls = tls
        self.address = listener.getsockname()[:2]
        self._conns: Set[Goroutine] = set()
        self._closed = False
        self._n: Dict[str, int] = {"accepted": 0, "handler_errors": 0, "tls_failures": 0,
                                    "accept_errors": 0}
        # rule 7: a token per running handler, sent before accept, taken back at its end
        self._slots = Chan(max_conns) if max_conns else None
        self._in_slot_wait = False
        self._loop = go(self._accept_loop, name=f"serve_tcp {self.address[0]}:{self.address[1]}")

    def __repr__(self) -> str:
        state = "closed" if self._closed else "serving"
        return (f"<preempt.net.TCPServer {self.address[0]}:{self.address[1]} {state}, "
                f"{len(self._conns)} connection(s)>")

    def __enter__(self) -> "TCPServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown(5.0)

    def stats(self) -> dict:
        """Counters: accepted, active, handler_errors, tls_failures, accept_errors."""
        return dict(self._n, active=len(self._conns))

    def _accept_loop(self) -> None:
        sock = self._sock
        while not self._closed:
            if self._slots is not None:
                self._in_slot_wait = True
                try:
                    self._slots.send(None)                  # rule 7
                except Cancelled:
                    if self._closed:
                        return                              # close() (rule 7)
                    raise
                finally:
                    self._in_slot_wait = False
            try:
                conn, addr = sock.accept()
            except OSError as e:
                if self._closed or e.errno == errno.EBADF:
                    return                                  # close() (rule 4)
                self._n["accept_errors"] += 1
                self._free_slot()
                if e.errno in _BACKOFF:
                    sleep(0.01)                             # rule 5
                elif e.errno not in _RETRY:
                    raise
                continue
            self._n["accepted"] += 1
            go_first(self._serve_one, conn, addr, name=f"conn {addr!r}")     # rule 6

    def _serve_one(self, conn: Any, addr: Any) -> None:
        me = current()
        try:
            self._conns.add(me)             # inside the try: the finally always discards it
            if self._closed:                # started after shutdown() looked: just close
                return
            if self._tls is not None:
                try:
                    conn = self._tls.wrap_socket(conn, server_side=True)   # rule 2
                except (OSError, ValueError):
                    self._n["tls_failures"] += 1
                    return
            self._handler(conn, addr)
        except Cancelled:
            if not self._closed:
                raise
        except Exception:
            self._n["handler_errors"] += 1
            print(f"preempt.net: the handler for {addr!r} raised:", file=sys.stderr)
            traceback.print_exc()
        finally:
            try:
                conn.close()
            finally:
                self._conns.discard(me)
                self._free_slot()

    def _free_slot(self) -> None:
        if self._slots is not None:
            self._slots.recv()              # never blocks: the loop sent this token

    def close(self) -> None:
        """Stops accepting new connections (rule 4); running handlers go on."""
        if self._closed:
            return
        self._closed = True
        self._sock.close()                  # wakes the accept loop with EBADF
        if self._in_slot_wait:
            self._loop.cancel("preempt.net: the server was closed")   # its wait for a slot

    def shutdown(self, grace: Optional[float] = 5.0) -> int:
        """Closes, waits ``grace`` seconds for running handlers, cancels the rest (rule 4).

        Returns:
            How many handlers were cancelled.
        """
        self.close()
        self._loop.join()
        if grace:
            try:
                with timeout(grace):
                    for g in list(self._conns):
                        _join_quietly(g)
            except Timeout:
                pass
        cancelled = 0
        for g in list(self._conns):
            if g.cancel("preempt.net: the server shut down"):
                cancelled += 1
        for g in list(self._conns):
            _join_quietly(g)
        return cancelled

    def serve_forever(self) -> None:
        """Waits until the server is closed (from another goroutine)."""
        self._loop.join()


def _join_quietly(g: Goroutine) -> None:
    """Waits for a connection's goroutine; its end was reported already (rule 3)."""
    try:
        g.join()
    except BaseException as e:
        if e is not g.exc:
            raise               # the caller's own interrupt (its timeout, its cancellation)


# A handler is user code: the frame that calls it must not make it unpreemptible (a frame of the
# preempt package on the stack defers preemption, _preempt.py rule 6).
_preempt.register_transparent_code(TCPServer._serve_one.__code__)


def serve_tcp(handler: Callable[..., Any], host: Optional[str] = "127.0.0.1", port: int = 0, *,
              backlog: int = 128, tls: Any = None, reuse_port: bool = False,
              max_conns: Optional[int] = None) -> TCPServer:
    """Listens on ``(host, port)`` and runs ``handler(conn, addr)`` in a goroutine per
    connection (module docstring). Returns at once, with the server accepting.

    Args:
        handler: Called as ``handler(conn, addr)`` in the connection's goroutine.
        host: The address to bind; ``""`` or None for every interface.
        port: The port; 0 picks a free one (see ``TCPServer.address``).
        backlog: The listen queue's length.
        tls: An ``ssl.SSLContext`` for TLS connections. A stdlib context is made to wrap
            into ``preempt.ssl.SSLSocket`` (its ``sslsocket_class`` is set: those sockets
            also work outside goroutines, blocking their thread).
        reuse_port: Set ``SO_REUSEPORT`` (several processes on one port).
        max_conns: At most this many handlers at once (rule 7); None: no limit.

    Raises:
        OSError: The address cannot be bound.
        TypeError: ``handler`` is not callable, or ``tls`` is not an SSLContext.
        ValueError: ``max_conns`` is not None or an int >= 1.
        PreemptError: Called outside a goroutine.
    """
    if not callable(handler):
        raise TypeError(f"serve_tcp(): handler must be callable, not {type(handler).__name__!r}")
    if max_conns is not None and (type(max_conns) is not int or max_conns < 1):
        raise ValueError(f"serve_tcp(): max_conns must be None (no limit) or an int >= 1, "
                         f"got {max_conns!r}")
    if tls is not None:
        import ssl

        if not isinstance(tls, ssl.SSLContext):
            raise TypeError(f"serve_tcp(): tls must be an ssl.SSLContext, not "
                            f"{type(tls).__name__!r}")
        if tls.sslsocket_class is not _pssl.SSLSocket:
            tls.sslsocket_class = _pssl.SSLSocket
    _park.check_sched("preempt.net.serve_tcp()")
    family = _psocket.AF_INET6 if host and ":" in host else _psocket.AF_INET
    sock = _psocket.create_server((host or "", port), family=family, backlog=backlog,
                                  reuse_port=reuse_port)
    try:
        return TCPServer(sock, handler, tls, max_conns)
    except BaseException:
        sock.close()
        raise

