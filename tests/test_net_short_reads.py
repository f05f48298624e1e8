"""A short read empties the receive queue (``_runtime/_netpoll.py`` invariant 7,
``preempt.socket`` rule 10): the next ``recv`` waits for an edge instead of asking the kernel
for an ``EAGAIN``, and the three cases where a short read can leave something to read (end of
stream, a pending error, TCP urgent data) never wait for an edge that will not come.

Each scenario runs in a child process (a hang must fail one test) with a client thread on plain
stdlib sockets, and counts the green socket's kernel reads through a stand-in for the C socket
type that ``preempt.socket`` calls (``preempt.socket._C``)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)

PRELUDE = r"""
import os, socket as std, sys, threading, time
import _socket
import preempt
import preempt.socket as ps

counts = {"recv": 0, "eagain": 0, "poll": 0}

class CountingC:
    # preempt.socket calls the C socket type's methods through _C: count its reads
    def __getattr__(self, name):
        return getattr(_socket.socket, name)

    @staticmethod
    def _count(fn, sock, *a):
        counts["recv"] += 1
        try:
            return fn(sock, *a)
        except BlockingIOError:
            counts["eagain"] += 1
            raise

    def recv(self, sock, *a):
        return self._count(_socket.socket.recv, sock, *a)

    def recv_into(self, sock, *a):
        return self._count(_socket.socket.recv_into, sock, *a)

ps._C = CountingC()

def listener():
    srv = ps.socket(ps.AF_INET, ps.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    return srv

def client(port, script):
    # a plain OS thread with the stdlib's blocking socket: script(sock) drives it
    def body():
        c = std.create_connection(("127.0.0.1", port))
        try:
            script(c)
        finally:
            c.close()
    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t

a_ev = threading.Event()

def registered(conn):
    # the first read waits: the client sends its "a" only once this goroutine has parked in
    # recv (a goroutine that runs then tells it); the kept registration exists after that wait
    preempt.go(a_ev.set)
    assert conn.recv(1) == b"a"
    assert conn._pst, "rule 10 should apply to a TCP socket after its first wait"

def connected(script):
    # a listener, a client thread running script (it sends "a" first), the accepted socket
    # registered: (listener, thread, connection)
    srv = listener()
    t = client(srv.getsockname()[1], script)
    conn, _ = srv.accept()
    registered(conn)
    return srv, t, conn

def finish(srv, t, conn):
    t.join()
    conn.close()
    srv.close()

def read_exactly(conn, want):
    got = b""
    while got != want:
        got += conn.recv(100)            # the last one is short: the queue is empty now
    return got
"""

REQUESTS = PRELUDE + r"""
N = 100
def main():
    srv = listener()
    def script(c):
        for i in range(N):
            c.sendall(b"ping %d\n" % i)
            assert c.recv(64) == b"pong"
    t = client(srv.getsockname()[1], script)
    conn, _ = srv.accept()
    got = 0
    while True:
        if sys.argv[1] == "recv_into":
            buf = bytearray(4096)
            n = conn.recv_into(buf)
            data = bytes(buf[:n])
        else:
            data = conn.recv(4096)
        if not data:
            break
        got += data.count(b"\n")
        conn.sendall(b"pong")
    finish(srv, t, conn)
    return got

got = preempt.run(main)
print(got, counts)
assert got == N, got
# every request is read once; without rule 10 each read after an answer is an EAGAIN (N of them)
assert counts["eagain"] <= 2, counts
print("OK")
"""


@pytest.mark.parametrize("how", ["recv", "recv_into"])
def test_a_read_after_a_short_read_waits_instead_of_asking_the_kernel(child, how):
    out = child(REQUESTS, how, timeout=60)
    assert out.strip().endswith("OK"), out


# The client's last bytes and its FIN (or RST, or urgent byte) arrive while the server goroutine
# sleeps, so the hub polls their one edge before the server reads; the read that gets the bytes
# is short, and the next must not wait for another edge.
LAST_BYTES = PRELUDE + r"""
what = sys.argv[1]
go_on = threading.Event()
done = threading.Event()

def script(c):
    a_ev.wait(30)
    c.sendall(b"a")
    go_on.wait(30)
    if what == "fin":
        c.sendall(b"last bytes")
        c.shutdown(std.SHUT_WR)
    elif what == "rst":
        c.sendall(b"last bytes")
        c.setsockopt(std.SOL_SOCKET, std.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        return
    elif what == "urgent":
        c.sendall(b"abc")
        c.send(b"!", std.MSG_OOB)
        c.sendall(b"def")
    done.wait(100)                       # no FIN before the server has all: it would end a hang

def main():
    srv, t, conn = connected(script)
    go_on.set()
    preempt.sleep(0.3)                   # the hub polls the edge meanwhile
    got, end = b"", None
    while True:
        try:
            data = conn.recv(4096)
        except ConnectionResetError:
            end = "reset"
            break
        if not data:
            end = "eof"
            break
        got += data
        if what == "urgent" and got == b"abcdef":
            end = "all"
            break
    done.set()
    finish(srv, t, conn)
    return got, end

got, end = preempt.run(main)
print(got, end, counts)
want = {"fin": (b"last bytes", "eof"), "rst": (b"last bytes", "reset"),
        "urgent": (b"abcdef", "all")}[what]
assert (got, end) == want, (got, end)
print("OK")
"""


@pytest.mark.parametrize("what", ["fin", "rst", "urgent"])
def test_a_short_read_before_the_end_error_or_urgent_mark_does_not_hang(child, what):
    """Without ``nodry`` for EPOLLRDHUP/EPOLLERR/EPOLLPRI the second read would wait for an
    edge that never comes: the child times out."""
    out = child(LAST_BYTES, what, timeout=60)
    assert out.strip().endswith("OK"), out


TIMEOUT_WHILE_DRY = PRELUDE + r"""
go_on = threading.Event()

def script(c):
    a_ev.wait(30)
    c.sendall(b"a")
    c.sendall(b"first")
    go_on.wait(30)
    c.sendall(b"second")
    c.recv(1)

def main():
    srv, t, conn = connected(script)
    conn.settimeout(0.2)
    read_exactly(conn, b"first")
    t0 = time.monotonic()
    try:
        conn.recv(100)
        raise AssertionError("recv returned with nothing sent")
    except TimeoutError:
        waited = time.monotonic() - t0
    go_on.set()
    conn.settimeout(10)
    read_exactly(conn, b"second")
    conn.sendall(b"x")
    finish(srv, t, conn)
    return waited

waited = preempt.run(main)
print(waited, counts)
assert waited >= 0.15, waited            # the socket's timeout, not an early return
print("OK")
"""


def test_a_read_that_waits_for_an_edge_keeps_the_socket_timeout(child):
    out = child(TIMEOUT_WHILE_DRY, timeout=60)
    assert out.strip().endswith("OK"), out


OUTLIVES_ITS_RUN = PRELUDE + r"""
import select
sent = threading.Event()
keep = []

def script(c):
    a_ev.wait(30)
    c.sendall(b"a")
    c.sendall(b"short")
    sent.wait(30)
    c.sendall(b"after the run")
    time.sleep(0.2)

def main():
    srv, t, conn = connected(script)
    read_exactly(conn, b"short")         # marks the socket: its queue is empty
    keep.extend([conn, srv, t])

preempt.run(main)
conn, srv, t = keep
polls = []
orig = ps._poll
class CountingPoll:
    def __init__(self):
        self.p = orig()
        polls.append(1)
    def __getattr__(self, name):
        return getattr(self.p, name)
ps._poll = CountingPoll
sent.set()
time.sleep(0.1)                          # the bytes are in the queue now
data = conn.recv(100)                    # outside run(): a blocking read of a stdlib socket
print(data, len(polls))
assert data == b"after the run", data
# the mark is gone with its poller: the read asks the kernel first, as a stdlib socket does
assert not polls, f"a socket that outlived its run waited {len(polls)} time(s) on a stale mark"
t.join()
conn.close()
srv.close()
print("OK")
"""


def test_a_socket_that_outlives_its_run_does_not_keep_its_mark(child):
    out = child(OUTLIVES_ITS_RUN, timeout=60)
    assert out.strip().endswith("OK"), out


BULK = PRELUDE + r"""
import array, hashlib, random
SIZE = 8 << 20
rnd = random.Random(int(sys.argv[1]))
blob = os.urandom(SIZE)
want = hashlib.sha256(blob).hexdigest()

def script(c):
    # sends in random pieces while the server reads in random sizes, then reads the echo
    def send():
        off = 0
        r = random.Random(rnd.random())
        while off < SIZE:
            n = r.choice((1, 7, 100, 1460, 4096, 65536, 300000))
            c.sendall(blob[off:off + n])
            off += n
            if r.random() < 0.05:
                time.sleep(0.001)
        c.shutdown(std.SHUT_WR)
    th = threading.Thread(target=send)
    th.start()
    h, n = hashlib.sha256(), 0
    while True:
        d = c.recv(1 << 16)
        if not d:
            break
        h.update(d)
        n += len(d)
    th.join()
    result.append((n, h.hexdigest()))

result = []

def main():
    srv = listener()
    t = client(srv.getsockname()[1], script)
    conn, _ = srv.accept()
    stop = []
    def ticker():
        while not stop:
            preempt.sleep(0.001)
    preempt.go(ticker)
    r = random.Random(rnd.random())
    h, n = hashlib.sha256(), 0
    while True:
        k = r.choice(("recv", "bytearray", "memoryview", "array"))
        size = r.choice((1, 10, 1000, 4096, 65536))
        if k == "recv":
            d = conn.recv(size)
        elif k == "array":                 # its len() counts items, not bytes
            a = array.array("i", bytes(4 * size))
            m = conn.recv_into(a)
            d = a.tobytes()[:m]
        else:
            b = bytearray(size)
            m = conn.recv_into(b if k == "bytearray" else memoryview(b))
            d = bytes(b[:m])
        if not d:
            break
        h.update(d)
        n += len(d)
        conn.sendall(d)
    conn.shutdown(ps.SHUT_WR)
    t.join()
    stop.append(1)
    conn.close()
    srv.close()
    return n, h.hexdigest()

got = preempt.run(main)
print(got, result, counts)
assert got == (SIZE, want), got
assert result == [(SIZE, want)], result
print("OK")
"""


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_reads_and_writes_both_ways_nothing_lost(child, seed):
    out = child(BULK, str(seed), timeout=100)
    assert out.strip().endswith("OK"), out


CLOSED_WHILE_DRY = PRELUDE + r"""
import errno
go_on = threading.Event()

def script(c):
    a_ev.wait(30)
    c.sendall(b"a")
    c.sendall(b"short")
    go_on.wait(30)

def main():
    srv, t, conn = connected(script)
    read_exactly(conn, b"short")         # marked: the next read waits for an edge first
    def closer():
        conn.close()                     # rule 4: the waiter wakes with EBADF
    preempt.go(closer)                   # runs once main parks in its recv
    try:
        conn.recv(100)
        raise AssertionError("recv returned after its socket was closed")
    except OSError as e:
        assert e.errno == errno.EBADF, e
    go_on.set()
    t.join()
    srv.close()

preempt.run(main)
print(counts)
print("OK")
"""


def test_a_read_waiting_for_an_edge_wakes_when_its_socket_is_closed(child):
    out = child(CLOSED_WHILE_DRY, timeout=60)
    assert out.strip().endswith("OK"), out
