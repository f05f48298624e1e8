"""``preempt.gunicorn.Worker``: one ``preempt.run()`` per worker process (the package's essay).

Rules (tests refer to them by number):

1. ``run()`` runs ``preempt.run(self._main)``. Each of gunicorn's listening sockets becomes a
   ``preempt.socket`` served by a ``preempt.net.TCPServer``: one goroutine per connection
   (``net.py`` rule 1), TLS from ``certfile``/``keyfile`` with the handshake in the
   connection's goroutine (rule 2), at most ``worker_connections`` connections served at once
   (rule 7). A connection runs gunicorn's own ``AsyncWorker.handle``: its HTTP parser, WSGI
   environ, keep-alive loop, ``max_requests`` count and access log.
2. The heartbeat is a goroutine: ``notify()`` once a second. It is a timer wait, and sysmon
   preempts a computing goroutine the moment a timer is due, so a CPU-bound request never
   stops it and the arbiter never sees a silent worker. It also ends the worker when its
   parent changed (the arbiter died), as gunicorn's gevent worker does.
3. Idle keep-alive connections wait ``keepalive`` seconds for their next request, then close.
4. ``PREEMPT_REQUEST_TIMEOUT``: ``_limit.py``.
5. Signals (gunicorn's handlers are routed to main by the runtime, ``_signals.py``; they only
   set flags here, main acts): SIGTERM and SIGINT — stop accepting, let running requests end
   within ``graceful_timeout`` less SHUTDOWN_MARGIN_S (the arbiter kills the worker at
   ``graceful_timeout``), cancel the rest (each answered as ``_limit.py`` rule 1 or 2),
   exit. SIGQUIT — the same with no grace. ``max_requests`` reached: as SIGTERM (the arbiter
   starts a new worker). SIGHUP goes to the arbiter, which starts new workers and sends the
   old ones SIGTERM. SIGUSR1 reopens the log files.
6. The worker calls ``preempt.patch()`` before gunicorn loads the application (as the gevent
   worker monkey-patches): an unmodified application's stdlib sockets, ``time.sleep``,
   ``select`` and locks park its goroutine instead of blocking the worker, and a request
   limit reaches a request that waits there.
7. An exception escaping the application is gunicorn's to answer (a 500 and a log line);
   Flask answers its own. A client that disconnects ends its own connection's goroutine only.

8. Each request of a connection starts with the turn an I/O wake gives
   (``_park.renew_io_turn``): a light request keeps its place ahead of computing ones.

Where these run: ``run()`` on the worker process's main thread; the rest in goroutines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from functools import partial
from typing import Any, Iterator, List, Optional

from gunicorn.sock import ssl_context
from gunicorn.workers.base_async import AsyncWorker

from .._errors import Cancelled, Timeout
from .._patch import patch
from .._runtime._cancel import timeout
from .._runtime._park import renew_io_turn
from .._runtime._preempt import register_transparent_code
from .._runtime._run import go, run
from .. import socket as _psocket
from ..net import TCPServer
from ..time import sleep
from ._limit import SentCounter, answer_stopped, request_timeout_from_env

HEARTBEAT_S = 1.0
POLL_S = 0.1          # how often main looks at the flags the signal handlers set (rule 5)
# The arbiter SIGKILLs a worker graceful_timeout after its SIGTERM: cancel the requests still
# running this much earlier, so that their 503s and the worker's exit come before the kill.
SHUTDOWN_MARGIN_S = 0.5


class Worker(AsyncWorker):
    """gunicorn's worker class for ``gunicorn -k preempt.gunicorn.Worker app:app``."""

    request_timeout: Optional[float] = None
    _quick = False

    def init_process(self) -> None:
        # Before gunicorn's boot: a bad value stops the arbiter with "Worker failed to boot"
        # and this message, instead of a worker that serves without the limit it was given.
        self.request_timeout = request_timeout_from_env(os.environ)
        patch()                 # rule 6: before gunicorn loads the application
        super().init_process()

    # -- signals (rule 5): flags only; main acts on them ------------------------------------
    def handle_exit(self, sig: int, frame: Any) -> None:
        self.alive = False

    def handle_quit(self, sig: int, frame: Any) -> None:
        if sig == signal.SIGINT:
            self.alive = False                      # SIGINT: graceful, as SIGTERM
            return
        self._quick = True
        self.alive = False

    # -- the process ------------------------------------------------------------------------
    def run(self) -> None:
        run(self._main)

    def _main(self) -> None:
        tls = ssl_context(self.cfg) if self.cfg.is_ssl else None
        servers: List[TCPServer] = []
        for s in self.sockets:
            listener = _psocket.socket(s.FAMILY, _psocket.SOCK_STREAM, fileno=s.sock.detach())
            servers.append(TCPServer(listener, partial(self._handle, listener), tls,
                                     self.worker_connections))
        go(self._heartbeat, name="gunicorn heartbeat")
        while self.alive:
            sleep(POLL_S)
        for srv in servers:
            srv.close()
        grace = 0.0 if self._quick else self.cfg.graceful_timeout - SHUTDOWN_MARGIN_S
        grace = max(0.0, grace)
        end = time.monotonic() + grace
        cancelled = sum(srv.shutdown(max(0.0, end - time.monotonic())) for srv in servers)
        if cancelled:
            self.log.warning("preempt.gunicorn: %d connection(s) cancelled at shutdown "
                             "(pid:%s)", cancelled, self.pid)

    def _heartbeat(self) -> None:
        while True:                                 # rule 2
            self.notify()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                self.alive = False
                return
            sleep(HEARTBEAT_S)

    # -- a connection -----------------------------------------------------------------------
    def _handle(self, listener: Any, client: Any, addr: Any) -> None:
        self.handle(listener, client, addr)

    @contextlib.contextmanager
    def timeout_ctx(self) -> Iterator[None]:
        try:                                        # rule 3: an idle connection closes quietly
            with timeout(self.cfg.keepalive):
                yield
        except Timeout:
            pass

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> bool:
        renew_io_turn()                             # rule 8
        conn = SentCounter(sock)
        limit = self.request_timeout
        try:
            with timeout(limit):
                return super().handle_request(listener_name, req, conn, addr)
        except Timeout as e:
            answer_stopped(self.log, req, conn, e.__cause__ or e,
                           f"PREEMPT_REQUEST_TIMEOUT={limit:g} s passed")
        except Cancelled as e:
            answer_stopped(self.log, req, conn, e, "the worker is shutting down")
        raise StopIteration()                       # AsyncWorker.handle closes the connection

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):              # cancelled between requests: just close
            self.log.debug("preempt.gunicorn: idle connection from %s closed at shutdown", addr)
            return
        super().handle_error(req, client, addr, exc)


# These frames sit under the application's: they must not make it unpreemptible (a frame of
# the preempt package on the stack defers preemption, _runtime/_preempt.py rule 6).
for _code in (Worker._handle.__code__, Worker.handle_request.__code__,
              Worker.timeout_ctx.__wrapped__.__code__):
    register_transparent_code(_code)
