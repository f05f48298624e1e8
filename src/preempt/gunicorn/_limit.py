"""The per-request time limit of the gunicorn worker: ``PREEMPT_REQUEST_TIMEOUT=<seconds>``.

A request still running when its limit passes is cancelled where it is (a ``preempt.timeout``
around the whole request, ``_runtime/_cancel.py``): computing in Python (the deadline is a
timer, and sysmon preempts the moment a timer is due), waiting on a socket, a lock or a sleep,
or — kept until the call returns — inside a registered native call. The ``Cancelled`` unwinds
the application, so its ``finally`` blocks and context managers run. Then:

1. if nothing of the response was sent yet, the client gets ``503 Service Unavailable`` and the
   connection is closed (the request's body may be half read: the stream cannot be reused);
2. if the status line and headers were sent, the connection is closed (shut down both ways),
   as gunicorn does for any error after the headers: the client sees a short response;
3. either way the worker logs, at error level, the request line, the limit, and the stack where
   the request was stopped (innermost frame last), and goes on serving.

The same answer is given to a request cancelled by the worker's own shutdown (the rest of the
graceful timeout, SIGQUIT), with its own log line.

What decides "sent": :class:`SentCounter` wraps the connection for the request and counts what
went through ``sendall`` (gunicorn's ``util.write``: the status line and headers go first).
(An alternative would be to read ``resp.headers_sent`` from gunicorn's ``handle_request`` frame
in the traceback. Rejected: it depends on a local variable's name in gunicorn's code.)

Where these run: in the connection's goroutine, on the M.
"""

from __future__ import annotations

import os
import socket
import traceback
from typing import Any, Mapping, Optional

from .._errors import PreemptError

ENV = "PREEMPT_REQUEST_TIMEOUT"


def request_timeout_from_env(env: Mapping[str, str]) -> Optional[float]:
    """The limit in seconds from ``PREEMPT_REQUEST_TIMEOUT``, or None when it is unset or empty.

    Raises:
        PreemptError: The value is not a number of seconds > 0 (read at worker start: the
            worker refuses to boot and gunicorn stops with this message).
    """
    raw = env.get(ENV, "").strip()
    if not raw:
        return None
    try:
        s = float(raw)
    except ValueError:
        s = float("nan")
    if not 0.0 < s < float("inf"):                 # NaN fails too
        raise PreemptError(f"{ENV}={raw!r} must be a number of seconds > 0 (the per-request "
                           f"time limit of preempt.gunicorn.Worker), e.g. {ENV}=30; or unset it "
                           "for no limit")
    return s


class SentCounter:
    """The connection as gunicorn's response sees it: counts the bytes of ``sendall``; every
    other attribute is the socket's own."""

    __slots__ = ("sock", "sent")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.sent = 0

    def sendall(self, data: Any, *args: Any) -> None:
        self.sock.sendall(data, *args)
        self.sent += len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def request_line(req: Any) -> str:
    """``GET /path?q HTTP/1.1`` of a gunicorn request."""
    try:
        major, minor = req.version
        return f"{req.method} {req.uri} HTTP/{major}.{minor}"
    except (AttributeError, TypeError, ValueError):
        return "<request line unavailable>"


_RUNTIME_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep + "_runtime"


def where_stopped(exc: BaseException) -> str:
    """The stack where a cancellation was raised, innermost frame last, without the runtime's
    own frames below the application's (the preemption hook that raised it)."""
    frames = traceback.extract_tb(exc.__traceback__)
    while frames and frames[-1].filename.startswith(_RUNTIME_DIR):
        frames.pop()
    return "".join(traceback.format_list(frames)).rstrip() if frames else "  (no stack)"


def _503(why: str) -> bytes:
    body = f"Service Unavailable: {why}\n".encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def answer_stopped(log: Any, req: Any, conn: SentCounter, cancelled: BaseException,
                   why: str) -> None:
    """Rules 1-3 for a request stopped by ``cancelled``; ``why`` says by what (logged and put
    in the 503's body). The caller closes the connection afterwards."""
    line = request_line(req)
    sent = conn.sent
    log.error("preempt.gunicorn: %s stopped: %s (%s); stopped at:\n%s", line, why,
              "503 sent" if not sent else f"{sent} bytes of the response already sent: "
              "connection closed", where_stopped(cancelled))
    try:
        if not sent:
            conn.sock.sendall(_503(why))
        conn.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass                                    # the client is gone: nothing to tell it
