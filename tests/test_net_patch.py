"""preempt.patch(): unmodified stdlib clients park goroutines; unpatch() undoes it all
(``src/preempt/_patch.py``). A ticker goroutine shows the M was free while they waited."""

from __future__ import annotations

import http.client
import select
import selectors
import smtplib
import socket
import socketserver
import ssl
import time
import urllib.request

import pytest

import preempt
from preempt import socket as psocket

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def patched():
    preempt.patch()
    try:
        yield
    finally:
        preempt.unpatch()


def _ticker():
    box = {"n": 0, "stop": False}

    def tick():
        while not box["stop"]:
            box["n"] += 1
            preempt.sleep(0.001)

    preempt.go(tick)
    return box


def _http_server(n, delay=0.05, body=b"hello"):
    """A tiny HTTP/1.0 server on preempt.socket: answers n requests, each after ``delay``."""
    srv = psocket.create_server(("127.0.0.1", 0))

    def handle(conn):
        with conn:
            f = conn.makefile("rb")
            while f.readline() not in (b"\r\n", b"\n", b""):
                pass
            preempt.sleep(delay)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            f.close()

    def acceptor():
        for _ in range(n):
            c, _ = srv.accept()
            preempt.go(handle, c)
        srv.close()

    preempt.go(acceptor)
    return srv.getsockname()[1]


def test_patch_and_unpatch_swap_exactly_the_documented_names():
    before = (socket.socket, socket.getaddrinfo, time.sleep, select.select, select.poll,
              selectors.EpollSelector.__dict__["select"], selectors.PollSelector._selector_cls,
              ssl.SSLContext.sslsocket_class)
    preempt.patch()
    preempt.patch()                          # twice: harmless (rule 3)
    try:
        assert socket.socket is psocket.socket and socket.getaddrinfo is psocket.getaddrinfo
        assert time.sleep is not before[2] and select.select is not before[3]
        assert ssl.SSLContext.sslsocket_class is preempt.ssl.SSLSocket
        assert isinstance(socket.create_connection, type(len)) is False
    finally:
        preempt.unpatch()
    after = (socket.socket, socket.getaddrinfo, time.sleep, select.select, select.poll,
             selectors.EpollSelector.__dict__["select"], selectors.PollSelector._selector_cls,
             ssl.SSLContext.sslsocket_class)
    assert after == before


def test_http_client_requests_run_concurrently(in_run, patched):
    def main():
        port = _http_server(10, delay=0.2)
        box = _ticker()
        out = preempt.Chan(10)

        def get():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/")
            green = type(c.sock) is psocket.socket
            r = c.getresponse()
            out.send((r.status, r.read(), green))
            c.close()

        t0 = time.monotonic()
        for _ in range(10):
            preempt.go(get)
        res = [out.recv() for _ in range(10)]
        took = time.monotonic() - t0
        box["stop"] = True
        return res, took, box["n"]

    res, took, ticks = in_run(main)
    assert res == [(200, b"hello", True)] * 10
    assert took < 1.5, f"10 requests of 0.2 s took {took:.2f} s: they did not overlap"
    assert ticks >= 50


def test_urllib_request(in_run, patched):
    def main():
        port = _http_server(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/x", timeout=10) as r:
            return r.status, r.read()

    assert in_run(main) == (200, b"hello")


def test_smtplib_sends_a_message(in_run, patched):
    def main():
        srv = psocket.create_server(("127.0.0.1", 0))
        got = preempt.Chan(1)

        def smtp_server():
            conn, _ = srv.accept()
            f = conn.makefile("rb")
            conn.sendall(b"220 test ESMTP\r\n")
            data, lines = False, []
            while True:
                line = f.readline()
                if not line:
                    break
                if data:
                    if line == b".\r\n":
                        data = False
                        conn.sendall(b"250 OK\r\n")
                    else:
                        lines.append(line)
                    continue
                cmd = line[:4].upper()
                if cmd in (b"EHLO", b"HELO"):
                    conn.sendall(b"250 test\r\n")
                elif cmd == b"DATA":
                    data = True
                    conn.sendall(b"354 go on\r\n")
                elif cmd == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    break
                else:
                    conn.sendall(b"250 OK\r\n")
            f.close()
            conn.close()
            srv.close()
            got.send(b"".join(lines))

        preempt.go(smtp_server)
        with smtplib.SMTP("127.0.0.1", srv.getsockname()[1], timeout=10) as s:
            s.sendmail("a@example.org", ["b@example.org"], "Subject: hi\r\n\r\nbody text\r\n")
        return got.recv()

    assert b"body text" in in_run(main)


def test_socketserver_serves_goroutines(in_run, patched):
    class Echo(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline().upper())

    def main():
        server = socketserver.TCPServer(("127.0.0.1", 0), Echo)
        assert type(server.socket) is psocket.socket
        g = preempt.go(server.serve_forever, 0.05)
        port = server.server_address[1]
        out = []
        for word in (b"one\n", b"two\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(word)
                out.append(c.makefile("rb").readline())
        preempt.blocking(server.shutdown)    # it waits on a threading.Event (module docstring)
        g.join()
        server.server_close()
        return out

    assert in_run(main) == [b"ONE\n", b"TWO\n"]


def test_time_sleep_select_poll_and_selectors_park(in_run, patched):
    def main():
        box = _ticker()
        t0 = time.monotonic()
        time.sleep(0.1)
        a, b = psocket.socketpair()
        assert select.select([a], [], [], 0.1) == ([], [], [])
        p = select.poll()
        p.register(a, select.POLLIN)
        assert p.poll(100) == []
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ)
        assert sel.select(0.1) == []
        took = time.monotonic() - t0
        n = box["n"]

        def later():
            preempt.sleep(0.05)
            b.sendall(b"!")

        preempt.go(later)
        r, _, _ = select.select([a], [], [], 5)
        assert r == [a]
        assert p.poll(5000) == [(a.fileno(), select.POLLIN)]
        assert [k.fileobj for k, _ in sel.select(5)] == [a]
        box["stop"] = True
        sel.close()
        a.close()
        b.close()
        return took, n

    took, n = in_run(main)
    assert took >= 0.39
    # a blocked M would let the ticker run at most once per wait (4); a parked one lets it run
    # every ms (~400 on a quiet machine, 83 seen on a loaded one)
    assert n >= 20, f"the ticker ran {n} times in {took:.2f} s of waits: the M was blocked"


def test_patched_calls_outside_goroutines_are_the_originals(patched):
    t0 = time.monotonic()
    time.sleep(0.05)                          # no run(): the real sleep
    assert time.monotonic() - t0 >= 0.05
    a, b = socket.socketpair()
    assert type(a) is psocket.socket
    assert select.select([a], [], [], 0.01) == ([], [], [])
    b.sendall(b"x")
    assert a.recv(1) == b"x"
    a.close()
    b.close()


def test_patched_select_rejects_bad_timeouts_as_the_stdlib_does(in_run, patched):
    def main():
        a, b = psocket.socketpair()
        for bad in (-1, float("nan")):
            with pytest.raises(ValueError):
                select.select([a], [], [], bad)
        with pytest.raises((OverflowError, ValueError)):
            select.select([a], [], [], float("inf"))
        with pytest.raises((OverflowError, ValueError)):
            select.select([a], [], [], 1e300)
        with pytest.raises(ValueError):
            a.settimeout(float("nan"))
        with pytest.raises(ValueError):
            time.sleep(-1)
        a.close()
        b.close()

    in_run(main)
