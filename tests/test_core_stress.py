"""Stress: many suspensions across threads, and stop-the-world, in child processes."""

from __future__ import annotations

SUSPEND_3x10k = """
import sys, threading
from _childlib import *
lib = load(sys.argv[1]); preempt.preemptible(lib)
N = 1_000_000
ref = gpr(lib, N)
workers = [Worker(lambda: gpr(lib, N), f"w{i}") for i in range(3)]
errors = []
def drive(w):
    try:
        hammer(w.handle, 10_000, jitter_us=10)
    except BaseException as e:
        errors.append(e)
drivers = [threading.Thread(target=drive, args=(w,)) for w in workers]
for d in drivers: d.start()
for d in drivers: d.join(300)
stats = [w.handle.stats() for w in workers]
for w in workers: w.stop()
assert not errors, errors
assert all(s["accepted"] >= 10_000 for s in stats), stats
bad = sum(r != ref for w in workers for r in w.results)
assert not bad, f"{bad} corrupted results"
print("OK", stats)
"""


def test_three_threads_ten_thousand_cycles_each(child, torture_lib):
    assert child(SUSPEND_3x10k, torture_lib["path"], timeout=300).startswith("OK")


STW = """
import sys, threading, time
from _childlib import *
lib = load(sys.argv[1]); preempt.preemptible(lib)
N = 300_000
ref = gpr(lib, N)
workers = [Worker(lambda: gpr(lib, N), f"w{i}") for i in range(8)]
# a short-lived thread that registers and exits meanwhile must not break stop_the_world
def churn():
    for _ in range(200):
        t = threading.Thread(target=threads.current); t.start(); t.join()
c = threading.Thread(target=churn); c.start()
for i in range(500):
    with threads.stop_the_world(timeout=30) as stopped:
        ids = {h.native_id for h in stopped}
        for w in workers:
            assert w.handle.native_id in ids
            assert w.handle.is_suspended
counts = [len(w.results) for w in workers]
c.join(60)
for w in workers: w.stop()
bad = sum(r != ref for w in workers for r in w.results)
assert not bad, f"{bad} corrupted results"
assert all(n > 0 for n in counts), counts
print("OK", counts)
"""


def test_stop_the_world_eight_threads_500_times(child, torture_lib):
    assert child(STW, torture_lib["path"], timeout=400).startswith("OK")


STW_TIMEOUT = """
import sys, threading, time
from _childlib import *
lib = load(sys.argv[1]); preempt.preemptible(lib)
# 150 ms per native call: between calls the spinner waits for the GIL (py-busy holds it for
# 5 ms switch intervals), which is no safe-point; with 1.6 ms calls it spent most of its time
# there, and under load stop_the_world timed out on it instead of py-busy (seen in CI).
spinner = Worker(lambda: lib.pe_test_spin(100_000_000))
stop = threading.Event()
def pyloop():
    threads.current(); ready.set()
    while not stop.is_set(): pass
ready = threading.Event()
t = threading.Thread(target=pyloop, name="py-busy", daemon=True)   # never holds up the exit
t.start(); ready.wait()
try:
    try:
        with threads.stop_the_world(timeout=0.3):
            raise AssertionError("should not stop a thread running Python")
    except preempt.SuspendTimeout as e:
        assert "py-busy" in str(e), e
    # everything already stopped was resumed
    assert not spinner.handle.is_suspended
finally:
    stop.set(); t.join(10); spinner.stop()
print("OK")
"""


def test_stop_the_world_timeout_names_the_thread_and_resumes_others(child, torture_lib):
    assert child(STW_TIMEOUT, torture_lib["path"]).startswith("OK")
