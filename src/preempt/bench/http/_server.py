"""One HTTP/1.1 server of the HTTP benchmark, in its own process:

    python -m preempt.bench.http._server KIND PORT ITERS

KIND is preempt, gevent, asyncio or threads. Two endpoints: ``/light`` answers at once;
``/heavy`` first runs ITERS iterations of a pure-Python loop (the parent calibrates ITERS to
about 20 ms). Keep-alive, Content-Length bodies, no other HTTP features: every server speaks
the same minimal protocol through the same parser (threads: the stdlib's
``ThreadingHTTPServer``, as a user would write it). Prints ``ready`` once it listens.
"""

from __future__ import annotations

import sys
from typing import Any, Callable


def work(iters: int) -> int:
    x = 0
    for i in range(iters):
        x += i
    return x


def respond(path: bytes, iters: int) -> bytes:
    body = b"heavy %d\n" % work(iters) if path == b"/heavy" else b"light\n"
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def serve_stream(readline: Callable[[], bytes], sendall: Callable[[bytes], Any],
                 iters: int) -> None:
    """The request loop of one keep-alive connection."""
    while True:
        line = readline()
        if not line:
            return
        parts = line.split()
        while True:
            h = readline()
            if h in (b"\r\n", b"\n", b""):
                break
        sendall(respond(parts[1] if len(parts) > 1 else b"/", iters))


def run_preempt(port: int, iters: int) -> None:
    import preempt
    import preempt.net

    def handler(conn: Any, addr: Any) -> None:
        f = conn.makefile("rb")
        serve_stream(f.readline, conn.sendall, iters)

    def main() -> None:
        srv = preempt.net.serve_tcp(handler, "127.0.0.1", port, backlog=1024)
        print("ready", flush=True)
        srv.serve_forever()

    preempt.run(main)


def run_gevent(port: int, iters: int) -> None:
    from gevent.server import StreamServer

    def handler(conn: Any, addr: Any) -> None:
        f = conn.makefile("rb")
        serve_stream(f.readline, conn.sendall, iters)

    srv = StreamServer(("127.0.0.1", port), handler, backlog=1024)
    srv.start()
    print("ready", flush=True)
    srv.serve_forever()


def run_asyncio(port: int, iters: int) -> None:
    import asyncio

    async def handler(reader: Any, writer: Any) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                parts = line.split()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                writer.write(respond(parts[1] if len(parts) > 1 else b"/", iters))
                await writer.drain()
        finally:
            writer.close()

    async def main() -> None:
        srv = await asyncio.start_server(handler, "127.0.0.1", port, backlog=1024)
        print("ready", flush=True)
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())


def run_threads(port: int, iters: int) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = b"heavy %d\n" % work(iters) if self.path == "/heavy" else b"light\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 1024
    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    print("ready", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    kind, port, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    {"preempt": run_preempt, "gevent": run_gevent, "asyncio": run_asyncio,
     "threads": run_threads}[kind](port, iters)
