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
import queue, sys
mode = sys.argv[1]
ROUNDS, WORKERS, ITEMS = 20, 20, 300

def rounds(spawn, join_all):
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
        spinner = spawn(spin)
        join_all([spawn(worker, k) for k in range(WORKERS)])
        stop[0] = True
        join_all([spinner])
        while True:
            try:
                got.append(q.get_nowait())
            except queue.Empty:
                break
        want = sorted((k, i) for k in range(WORKERS) for i in range(ITEMS))
        assert sorted(got) == want, (r, len(got), len(want))   # each item exactly once

if mode == "gevent":
    import gevent, preempt.gevent as pg
    pg.enable(slice=0.0002)
    rounds(gevent.spawn, gevent.joinall)
    assert pg.stats()["preemptions"] > 0
else:
    import preempt
    if mode == "patch":
        preempt.patch()
    def main():
        rounds(preempt.go, lambda gs: [g.join() for g in gs])
        assert preempt.stats()["sync"]["count"] > 0, preempt.stats()   # preemption happened
    preempt.run(main, slice=0.0002)
print("OK")
"""


@pytest.mark.parametrize("mode", ["run", "gevent"])
def test_a_shared_queue_never_deadlocks(child, mode):
    if mode == "gevent":
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


@pytest.mark.parametrize("mode", ["run"])
def test_futures_and_logging_from_many_goroutines(child, mode):
    assert child(FUTURES_AND_LOGGING, mode, timeout=60).strip() == "OK"
