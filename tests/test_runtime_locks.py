"""Real locks shared by goroutines (``src/preempt/_locks.py``, ``_runtime/_preempt.py`` rule 6):
stdlib ``queue``, ``concurrent.futures``, ``logging`` and ``threading`` used from many
goroutines while another computes. A deadlock freezes the whole process (every goroutine is on
one OS thread), so each scenario runs in a child process with a timeout and many rounds: the
hang they guard against came 4 times in 8 runs, not every time."""

from __future__ import annotations

import pytest
from conftest import need_module

pytestmark = pytest.mark.timeout(180)

# Goroutines (or greenlets) put and get in tight loops on one shared Queue/LifoQueue while a
# spinner computes, so preemption lands inside queue's own methods (with its mutex held).
QUEUE_ROUNDS = """
import sys
mode = sys.argv[1]
if mode == "gevent-monkey":              # gevent's locks: greenlets may switch inside queue
    from gevent import monkey
    monkey.patch_all()
import queue
ROUNDS, WORKERS, ITEMS = 20, 20, 300

def rounds(run_all):
    for r in range(ROUNDS):
        q = (queue.LifoQueue if r % 2 else queue.Queue)()
        got, stop = [], [False]
        def spin():
            x = 0
            while not stop[0]:
                x += 1
        def worker(k):
            for i in range(ITEMS):
                q.put((k, i))
                try:
                    got.append(q.get_nowait())
                except queue.Empty:
                    pass
        run_all(spin, stop, worker, WORKERS)
        while True:
            try:
                got.append(q.get_nowait())
            except queue.Empty:
                break
        want = sorted((k, i) for k in range(WORKERS) for i in range(ITEMS))
        assert sorted(got) == want, (r, len(got), len(want))   # each item exactly once

if mode.startswith("gevent"):
    import gevent, preempt.gevent as pg
    pg.enable(slice=0.0002)
    def run_all(spin, stop, worker, n):
        sp = gevent.spawn(spin)
        gevent.joinall([gevent.spawn(worker, k) for k in range(n)])
        stop[0] = True
        sp.join()
    rounds(run_all)
    assert pg.stats()["preemptions"] > 0
elif mode == "aio":
    import asyncio, preempt.aio as pa
    async def one_round(spin, stop, worker, n):
        sp = asyncio.ensure_future(pa.run(spin, slice=0.0002))
        await asyncio.gather(*[pa.run(worker, k, slice=0.0002) for k in range(n)])
        stop[0] = True
        await sp
    rounds(lambda *a: asyncio.run(one_round(*a)))
else:
    import preempt
    if mode == "patch":
        preempt.patch()
    def run_all(spin, stop, worker, n):
        sp = preempt.go(spin)
        for g in [preempt.go(worker, k) for k in range(n)]:
            g.join()
        stop[0] = True
        sp.join()
    def main():
        rounds(run_all)
        assert preempt.stats()["sync"]["count"] > 0, preempt.stats()   # preemption happened
    preempt.run(main, slice=0.0002)
print("OK")
"""


@pytest.mark.parametrize("mode", ["run", "patch", "gevent", "gevent-monkey", "aio"])
def test_a_shared_queue_never_deadlocks(child, mode):
    if mode.startswith("gevent"):
        need_module("gevent")
    assert child(QUEUE_ROUNDS, mode, timeout=60).strip() == "OK"


# ThreadPoolExecutor.submit()/result() and logging from many goroutines while one computes.
FUTURES_AND_LOGGING = """
import concurrent.futures as cf, io, logging, sys
import preempt
if sys.argv[1] == "patch":
    preempt.patch()
ROUNDS, GS, N = 10, 30, 20

class Collect(logging.Handler):          # a handler of user code: emit() runs under its lock
    def __init__(self):
        super().__init__()
        self.records = []
    def emit(self, record):
        s = 0
        for i in range(200):             # long enough to be preempted inside
            s += i
        self.records.append(record.getMessage())

def main():
    ex = cf.ThreadPoolExecutor(4)
    log = logging.getLogger("shared")
    log.propagate = False
    log.setLevel(logging.INFO)
    h, buf = Collect(), io.StringIO()
    log.addHandler(h)
    log.addHandler(logging.StreamHandler(buf))
    for r in range(ROUNDS):
        stop = [False]
        def spin():
            x = 0
            while not stop[0]:
                x += 1
        def user(k):
            out = []
            for i in range(N):
                out.append(ex.submit(pow, k, i).result())
                log.info("g%d-%d-%d", r, k, i)
            return out
        sp = preempt.go(spin)
        gs = [preempt.go(user, k) for k in range(GS)]
        for k, g in enumerate(gs):
            assert g.join() == [pow(k, i) for i in range(N)], k
        stop[0] = True
        sp.join()
    ex.shutdown()
    want = sorted(f"g{r}-{k}-{i}" for r in range(ROUNDS) for k in range(GS) for i in range(N))
    assert sorted(h.records) == want, len(h.records)
    assert sorted(buf.getvalue().split()) == want
    assert preempt.stats()["sync"]["count"] > 0, preempt.stats()     # preemption happened
preempt.run(main, slice=0.0002)
print("OK")
"""


@pytest.mark.parametrize("mode", ["run", "patch"])
def test_futures_and_logging_from_many_goroutines(child, mode):
    assert child(FUTURES_AND_LOGGING, mode, timeout=60).strip() == "OK"


# Under patch(), a handler made after the patch has a goroutine-aware RLock: a goroutine that
# parks inside emit() (here time.sleep; in life a green socket) keeps the others out of it
# (_locks.py rule 6). With a real RLock every goroutine is "the same thread" and gets in.
PARKING_HANDLER = """
import logging, time
import preempt
preempt.patch()

class TwoPart(logging.Handler):
    def __init__(self):
        super().__init__()
        self.out = []
    def emit(self, record):
        self.out.append(("begin", record.msg))
        time.sleep(0.0005)               # parks with the handler's lock held
        self.out.append(("end", record.msg))

def main():
    h, log = TwoPart(), logging.getLogger("parking")
    log.propagate = False
    log.addHandler(h)
    def user(k):
        for i in range(10):
            log.warning("%d-%d" % (k, i))
    for g in [preempt.go(user, k) for k in range(20)]:
        g.join()
    assert len(h.out) == 400, len(h.out)
    for i in range(0, 400, 2):           # every record whole: begin and end of the same one
        assert h.out[i][0] == "begin" and h.out[i + 1] == ("end", h.out[i][1]), h.out[i:i + 4]
preempt.run(main)
print("OK")
"""


def test_a_logging_handler_that_parks_keeps_other_goroutines_out_under_patch(child):
    assert child(PARKING_HANDLER, timeout=60).strip() == "OK"


# Under patch(), a goroutine waiting on a threading primitive parks: a ticker goroutine keeps
# ticking meanwhile (_locks.py rule 1). The same objects still work with real threads.
PRIMITIVES = """
import threading, time
import preempt
preempt.patch()

def ticking(fn):
    box = {"n": 0, "stop": False}
    def tick():
        while not box["stop"]:
            box["n"] += 1
            preempt.sleep(0.001)
    t = preempt.go(tick)
    preempt.sleep(0.005)
    n0 = box["n"]
    out = fn()
    n1 = box["n"]
    box["stop"] = True
    t.join()
    return out, n1 - n0

def holder(lock, hold, log, tag):
    with lock:
        log.append(tag + "+")
        time.sleep(hold)                 # parks (patched), the lock held
        log.append(tag + "-")

def main():
    # Lock: a second goroutine parks behind the holder, then gets the lock (rules 1-2)
    lock, log = threading.Lock(), []
    assert type(lock).__module__ == "preempt._locks"
    a = preempt.go(holder, lock, 0.05, log, "a")
    preempt.sleep(0.005)
    (ok, ticks) = ticking(lambda: lock.acquire())
    assert ok and ticks >= 1, ticks   # the M was free: the ticker ran
    assert log == ["a+", "a-"], log
    assert not lock.acquire(timeout=0.01) and not lock.acquire(False)
    for args, err in (((True, -2), ValueError), ((False, 1), ValueError),
                      ((True, 1e12), OverflowError)):
        try:
            lock.acquire(*args)
        except err:
            pass
        else:
            raise AssertionError(args)
    lock.release()
    a.join()
    a = preempt.go(holder, lock, 0.02, log, "a")
    preempt.sleep(0.005)
    assert lock.acquire(timeout=3e9)     # beyond the timers' range: waits for ever
    lock.release()

    # RLock: the owner is the goroutine, so a second goroutine is kept out (rule 6)
    rl, log = threading.RLock(), []
    def nested(tag):
        with rl:
            with rl:
                log.append(tag + "+")
                time.sleep(0.02)
                log.append(tag + "-")
    gs = [preempt.go(nested, t) for t in "abc"]
    for g in gs:
        g.join()
    assert all(log[i][0] == log[i + 1][0] for i in range(0, 6, 2)), log
    try:
        rl.release()
    except RuntimeError:
        pass
    else:
        raise AssertionError("released an RLock this goroutine does not own")

    # Condition + Event + Semaphore between goroutines
    cond, items = threading.Condition(), []
    def consumer():
        with cond:
            while not items:
                cond.wait()
            return items.pop()
    c = preempt.go(consumer)
    def produce():
        preempt.sleep(0.03)
        with cond:
            items.append(42)
            cond.notify()
    preempt.go(produce)
    assert ticking(c.join)[0] == 42

    ev = threading.Event()
    def setter():
        time.sleep(0.03)
        ev.set()
    preempt.go(setter)
    (ok, ticks) = ticking(lambda: ev.wait(5))
    assert ok and ticks >= 1, ticks   # the M was free: the ticker ran
    assert not threading.Event().wait(0.01)

    sem, inside, peak = threading.Semaphore(2), [0], [0]
    def user():
        with sem:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
            time.sleep(0.01)
            inside[0] -= 1
    for g in [preempt.go(user) for _ in range(6)]:
        g.join()
    assert peak[0] == 2, peak

    # between a goroutine and real threads (the offload pool: preempt.blocking)
    lock = threading.Lock()
    lock.acquire()
    def thread_takes():
        with lock:                       # a real thread blocks for real until the G releases
            return "thread got it"
    g = preempt.go(preempt.blocking, thread_takes)
    preempt.sleep(0.02)
    assert not g.done()
    lock.release()
    assert g.join() == "thread got it"

    ev, cond, box = threading.Event(), threading.Condition(), []
    def thread_sets():
        time.sleep(0.03)                 # the real sleep: this is a real thread
        with cond:
            box.append(1)
            cond.notify_all()
        ev.set()
    t = threading.Thread(target=thread_sets)
    t.start()
    def wait_both():
        with cond:
            while not box:
                cond.wait()
        return ev.wait(5)
    (ok, ticks) = ticking(wait_both)
    assert ok and ticks >= 1, ticks   # the M was free: the ticker ran
    t.join()

    # a goroutine that blocks on a lock it holds itself times out, as a thread would
    l2 = threading.Lock()
    l2.acquire()
    assert ticking(lambda: l2.acquire(timeout=0.03))[0] is False

    # a waiter interrupted by a timeout scope leaves the FIFO; one whose wake-up was already
    # claimed passes it on, so the next waiter still gets the lock (rule 4)
    l3, order = threading.Lock(), []
    l3.acquire()
    def waits(tag):
        with l3:
            order.append(tag)
    def cancelled():
        try:
            with preempt.timeout(0.02):
                l3.acquire()
            l3.release()                 # got it before its timeout
        except preempt.Timeout:
            order.append("timed out")
    a, b = preempt.go(cancelled), preempt.go(waits, "b")
    preempt.sleep(0.05)
    assert order == ["timed out"], order
    assert len(l3._waiters) == 1
    c = preempt.go(cancelled)
    preempt.sleep(0)
    l3.release()                         # claims b's wake-up
    b.join(), c.join()
    assert order == ["timed out", "b"] and not l3.locked() and not l3._waiters, order
    d, e = preempt.go(waits, "d"), preempt.go(waits, "e")
    l3.acquire()                         # main holds it: d and e park
    preempt.sleep(0.01)
    l3._l.release()                      # a release on another thread: d's wake-up claimed,
    l3._waiters.popleft()                # its delivery through the hub not run yet...
    d.cancel()                           # ...when d is cancelled: e must get the lock
    e.join()
    assert order[-1] == "e" and not l3.locked() and not l3._waiters, order
    assert d.cancelled()
preempt.run(main)
print("OK")
"""


def test_threading_primitives_park_goroutines_under_patch(child):
    assert child(PRIMITIVES, timeout=60).strip() == "OK"


# Issue 24's report: one requests.Session (and one urllib3.PoolManager) shared by 50 goroutines
# against a loopback server while a goroutine computes. urllib3's pool is a LifoQueue.
SHARED_SESSION = """
import http.server, sys, threading
ROUNDS, GS = 20, 50

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"        # keep-alive: connections go back to the pool
    def do_GET(self):
        body = (self.path * 50).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

# the server is made before the patch: real sockets and locks, in real threads
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
threading.Thread(target=srv.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % srv.server_address[1]

import preempt
preempt.patch()
import logging
logging.getLogger("urllib3").setLevel(logging.ERROR)   # "pool is full, discarding" is expected
import requests, urllib3

def main():
    session, pm = requests.Session(), urllib3.PoolManager(maxsize=10)
    for r in range(ROUNDS):
        stop = [False]
        def spin():
            x = 0
            while not stop[0]:
                x += 1
        def get(k):
            path = "/%d/%d" % (r, k)
            if k % 2:
                body = session.get(base + path, timeout=30).content
            else:
                body = pm.request("GET", base + path, timeout=30).data
            assert body == (path * 50).encode(), (path, body[:80])
            return k
        sp = preempt.go(spin)
        gs = [preempt.go(get, k) for k in range(GS)]
        assert [g.join() for g in gs] == list(range(GS))
        stop[0] = True
        sp.join()
    assert preempt.stats()["sync"]["count"] > 0, preempt.stats()   # preemption happened
    session.close()
    pm.clear()

preempt.run(main, slice=0.0002)
print("OK")
"""


def test_fifty_goroutines_share_one_requests_session(child):
    need_module("requests")
    assert child(SHARED_SESSION, timeout=90).strip() == "OK"
