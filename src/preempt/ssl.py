"""Green TLS: the stdlib ``ssl`` API over ``preempt.socket``, parking on SSLWantRead/Write.

``preempt.ssl.SSLContext`` is the stdlib's ``SSLContext`` whose ``wrap_socket`` makes a
:class:`SSLSocket`: a stdlib ``ssl.SSLSocket`` built on ``preempt.socket.socket`` (the method
resolution order puts the green socket between the two). The fd stays non-blocking, so
OpenSSL answers "want read" or "want write" instead of blocking; the goroutine parks on the fd
and retries. To the goroutine the socket is a blocking one with the stdlib's timeouts (its
``socket.timeout`` messages too). Example::

    from preempt import socket, ssl

    ctx = ssl.create_default_context()
    with socket.create_connection((host, 443)) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(request)
            reply = tls.recv(65536)

Rules:

1. ``do_handshake``, ``read`` (so ``recv``/``recv_into``), ``write`` (so ``send``/
   ``sendall``) and ``unwrap`` retry after waiting for the direction OpenSSL asks for; a TLS
   read may want to write (renegotiation, key updates) and the reverse. The timeout bounds the
   whole call, as in ``_ssl``; timeout 0 lets the ``SSLWantReadError``/``SSLWantWriteError``
   through, as a stdlib non-blocking socket does.
2. Outside a goroutine the waits block the thread (``preempt.socket`` rule 2).
3. ``create_default_context`` and ``_create_unverified_context`` are the stdlib's, run with
   this module's ``SSLContext``. A stdlib context can be made green with
   ``ctx.sslsocket_class = preempt.ssl.SSLSocket`` — what ``preempt.patch(ssl=True)`` does
   for every context, by setting it on the stdlib class.

Everything else (constants, exceptions, ``Purpose``, ``CERT_*``, ``SSLObject`` ...) is
re-exported from the stdlib.

Where these run: any thread (rule 2).
"""

from __future__ import annotations

import ssl as _std
import types as _types
from ssl import *  # noqa: F401,F403  (the stdlib's API)
from time import monotonic as _monotonic
from typing import Any

from . import socket as _psocket
from ._runtime._netpoll import READ as _READ, WRITE as _WRITE

__all__ = [n for n in dir(_std) if not n.startswith("_")]

_WantRead, _WantWrite = _std.SSLWantReadError, _std.SSLWantWriteError


class SSLSocket(_std.SSLSocket, _psocket.socket):
    """A stdlib ``ssl.SSLSocket`` that parks the goroutine instead of blocking the M.

    Made by :meth:`SSLContext.wrap_socket`, like the stdlib's (it has no public constructor).
    """

    def _tls(self, what: str, fn: Any, *args: Any) -> Any:
        """Rule 1: ``fn(*args)`` retried until OpenSSL stops wanting I/O."""
        t = self._ptimeout
        deadline = None
        while True:
            try:
                return fn(*args)
            except _WantRead:
                if t == 0.0:
                    raise
                event = _READ
            except _WantWrite:
                if t == 0.0:
                    raise
                event = _WRITE
            if deadline is None and t is not None:
                deadline = _monotonic() + t
            try:
                _psocket._wait(self.fileno(), event, deadline, self)   # retried: may be early
            except _psocket.timeout:
                raise _psocket.timeout(f"The {what} operation timed out") from None

    def do_handshake(self, block: bool = False) -> None:
        self._check_connected()
        self._tls("handshake", self._sslobj.do_handshake)

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        return self._tls("read", super().read, len, buffer)

    def write(self, data: Any) -> int:
        return self._tls("write", super().write, data)

    def send(self, data: Any, flags: int = 0) -> int:
        if self._sslobj is None:
            return super().send(data, flags)
        if flags != 0:
            raise ValueError(f"non-zero flags not allowed in calls to send() on {type(self)}")
        return self._tls("write", self._sslobj.write, data)

    def unwrap(self) -> Any:
        if not self._sslobj:
            raise ValueError(f"No SSL wrapper around {self}")
        s = self._tls("shutdown", self._sslobj.shutdown)
        self._sslobj = None
        return s


class SSLContext(_std.SSLContext):
    """The stdlib's ``SSLContext``; ``wrap_socket`` returns a green :class:`SSLSocket`."""

    sslsocket_class = SSLSocket


def _stdlib_function(name: str) -> Any:
    """The stdlib's ``ssl`` function ``name`` with this module's ``SSLContext`` (rule 3)."""
    f = getattr(_std, name)
    g = dict(vars(_std))
    g.update(SSLContext=SSLContext, SSLSocket=SSLSocket)
    nf = _types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, f.__closure__)
    nf.__kwdefaults__ = f.__kwdefaults__
    nf.__doc__ = f.__doc__
    nf.__qualname__ = f.__qualname__
    nf.__module__ = __name__
    return nf


create_default_context = _stdlib_function("create_default_context")
_create_unverified_context = _stdlib_function("_create_unverified_context")
_create_default_https_context = create_default_context
