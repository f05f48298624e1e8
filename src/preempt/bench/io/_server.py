"""One hello-world HTTP/1.1 server of the plain-I/O benchmark, in its own process:

    python -m preempt.bench.io._server KIND [--port P] [--exit-after-conns C] [--cpu N]
                                            [--slice S]

KIND is one of KINDS: preempt (``preempt.net.serve_tcp`` in ``preempt.run()``), gevent
(``gevent.server.StreamServer``), asyncio (``asyncio.start_server`` streams), uvloop (the same
asyncio server on uvloop's loop) or threads (``socketserver.ThreadingTCPServer``, daemon
threads). Prints ``ready PORT`` once it listens (``--port 0``, the default, lets the kernel pick).

Every runtime runs the same minimal handler, so that what differs is the runtime alone:

1. read what the socket has (up to 64 KiB);
2. :func:`answer` cuts it at each blank line (``\\r\\n\\r\\n``): every complete request, several
   pipelined ones included, gets the fixed RESPONSE, and the bytes after the last blank line
   wait for the next read;
3. ``sendall`` the answers (asyncio: ``write`` + ``drain``); a request that says
   ``Connection: close`` gets CLOSE_RESPONSE and the connection is closed after it.

No HTTP parser, no headers read but ``Connection``, no bodies: a hello-world server measures what
the runtime costs per request (a wake-up, a read, a write), not what a framework does.
ConnectionResetError and BrokenPipeError end a connection quietly: wrk resets its connections
when it stops, and a traceback per connection would only hide a real error on stderr.

``--exit-after-conns C``: the server exits once C connections have ended, for the instruction
count (``_instructions.py``), whose callgrind run must end on its own. ``--cpu N``: the server
pins itself to CPU N first (``os.sched_setaffinity``). ``--slice S`` (preempt only):
``preempt.run(main, slice=S)``; the instruction count passes 0, since valgrind keeps the
real-time signals that preempt's monitor uses.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from typing import Any, Callable, Optional, Tuple

KINDS = ("preempt", "gevent", "asyncio", "uvloop", "threads")
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!"
CLOSE_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n"
                  b"Connection: close\r\n\r\nHello, world!")
READ_SIZE = 65536
QUIET = (ConnectionResetError, BrokenPipeError)     # the peer went away: not the server's error


def answer(buf: bytes) -> Tuple[bytes, bytes, bool]:
    """``buf`` (what was read, after what is left from the last read) -> (the answers to send,
    the bytes of an unfinished request to keep, whether to close after sending)."""
    out = b""
    start = 0
    while True:
        end = buf.find(b"\r\n\r\n", start)
        if end < 0:
            return out, buf[start:], False
        if b"connection: close" in buf[start:end].lower():
            return out + CLOSE_RESPONSE, b"", True
        out += RESPONSE
        start = end + 4


def serve_conn(recv: Callable[[int], bytes], sendall: Callable[[bytes], Any]) -> None:
    """The request loop of one connection (module docstring, steps 1-3), for the runtimes whose
    sockets block their goroutine, greenlet or thread."""
    rest = b""
    try:
        while True:
            data = recv(READ_SIZE)
            if not data:
                return
            out, rest, close = answer(rest + data)
            if out:
                sendall(out)
            if close:
                return
    except QUIET:
        return


class _Countdown:
    """Calls ``done()`` once ``n`` connections have ended (``--exit-after-conns``); n = 0: never.

    The count is ``next()`` of an ``itertools.count``: one C call, which neither a preempted
    goroutine nor a thread switch can cut in two, so every runtime shares this class unlocked.
    """

    def __init__(self, n: int, done: Callable[[], Any]) -> None:
        self.n, self.done, self._ended = n, done, itertools.count(1)

    def ended(self) -> None:
        if next(self._ended) == self.n:
            self.done()


def _ready(port: int) -> None:
    print(f"ready {port}", flush=True)


def run_preempt(port: int, conns: int, slice: Optional[float] = None) -> None:
    import preempt
    import preempt.net

    box: dict = {}

    def handler(conn: Any, addr: Any) -> None:
        try:
            serve_conn(conn.recv, conn.sendall)
        finally:
            box["countdown"].ended()

    def main() -> None:
        srv = preempt.net.serve_tcp(handler, "127.0.0.1", port, backlog=1024)
        box["countdown"] = _Countdown(conns, srv.close)
        _ready(srv.address[1])
        srv.serve_forever()

    preempt.run(main, slice=slice)


def run_gevent(port: int, conns: int) -> None:
    from gevent.event import Event
    from gevent.server import StreamServer

    stop = Event()
    countdown = _Countdown(conns, stop.set)

    def handler(conn: Any, addr: Any) -> None:
        try:
            serve_conn(conn.recv, conn.sendall)
        finally:
            conn.close()
            countdown.ended()

    srv = StreamServer(("127.0.0.1", port), handler, backlog=1024)
    srv.start()
    _ready(srv.address[1])
    stop.wait()
    srv.close()


def run_asyncio(port: int, conns: int, uvloop: bool = False) -> None:
    import asyncio

    async def main() -> None:
        stop = asyncio.Event()
        countdown = _Countdown(conns, stop.set)

        async def handler(reader: Any, writer: Any) -> None:
            rest = b""
            try:
                while True:
                    data = await reader.read(READ_SIZE)
                    if not data:
                        return
                    out, rest, close = answer(rest + data)
                    if out:
                        writer.write(out)
                        await writer.drain()
                    if close:
                        return
            except QUIET:
                return
            finally:
                writer.close()
                countdown.ended()

        srv = await asyncio.start_server(handler, "127.0.0.1", port, backlog=1024)
        _ready(srv.sockets[0].getsockname()[1])
        async with srv:
            await stop.wait()

    if uvloop:
        import uvloop as _uvloop

        _uvloop.install()
    asyncio.run(main())


def run_threads(port: int, conns: int) -> None:
    import socketserver
    import threading

    stop = threading.Event()
    countdown = _Countdown(conns, stop.set)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            try:
                serve_conn(self.request.recv, self.request.sendall)
            finally:
                countdown.ended()

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 1024

    srv = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    _ready(srv.server_address[1])
    stop.wait()


def main(argv: Any = None) -> None:
    p = argparse.ArgumentParser(prog="python -m preempt.bench.io._server",
                                description=__doc__.splitlines()[0])
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    p.add_argument("--exit-after-conns", type=int, default=0, metavar="C",
                   help="exit once C connections have ended (default: serve for ever)")
    p.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    p.add_argument("--slice", type=float, default=None,
                   help="preempt only: run(slice=...); 0 turns preemption off (under valgrind, "
                        "which keeps the real-time signals preempt's monitor uses)")
    args = p.parse_args(argv)
    if args.slice is not None and args.kind != "preempt":
        p.error("--slice is preempt's option only")
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.kind == "preempt":
        run_preempt(args.port, args.exit_after_conns, args.slice)
    elif args.kind == "uvloop":
        run_asyncio(args.port, args.exit_after_conns, uvloop=True)
    else:
        {"gevent": run_gevent, "asyncio": run_asyncio,
         "threads": run_threads}[args.kind](args.port, args.exit_after_conns)


if __name__ == "__main__":
    sys.exit(main())
