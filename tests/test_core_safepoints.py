"""docs/design.md invariant 3: a thread is parked only at an async safe-point; elsewhere suspend()
times out and the thread carries on unharmed. Child processes."""

from __future__ import annotations

LIBC_READ = """
import os, sys, threading, ctypes
from _childlib import *
lib = load(sys.argv[1]); preempt.preemptible(lib)
r, w = os.pipe()
eintr = ctypes.c_int(0)
buf = ctypes.create_string_buffer(64)
box = {}
def body():
    box["h"] = threads.current(); ready.set()
    box["n"] = lib.pe_test_read_all(r, buf, 11, ctypes.byref(eintr))   # blocks in libc read()
ready = threading.Event()
t = threading.Thread(target=body); t.start(); ready.wait()
h = box["h"]
import time; time.sleep(0.05)
assert h.suspend(timeout=0.3) is False
st = h.stats()
assert st["signals_sent"] >= 2 and st["accepted"] == 0 and st["declined"] >= 1, st
os.write(w, b"hello world")
t.join(10); assert not t.is_alive()
assert box["n"] == 11 and buf.value == b"hello world", (box, buf.value)
assert eintr.value == 0, "SA_RESTART should restart read(); EINTR leaked: %d" % eintr.value
print("OK", st)
"""


def test_thread_blocked_in_libc_read_is_not_suspended(child, torture_lib):
    assert child(LIBC_READ, torture_lib["path"]).startswith("OK")


NANOSLEEP = """
import sys, threading, ctypes, time
from _childlib import *
lib = load(sys.argv[1]); preempt.preemptible(lib)
eintr = ctypes.c_int(0); box = {}
def body():
    box["h"] = threads.current(); ready.set()
    t0 = time.monotonic()
    box["rc"] = lib.pe_test_sleep_ns(400_000_000, ctypes.byref(eintr))
    box["slept"] = time.monotonic() - t0
ready = threading.Event()
t = threading.Thread(target=body); t.start(); ready.wait(); time.sleep(0.02)
assert box["h"].suspend(timeout=0.25) is False
t.join(10)
assert box["rc"] == 0 and box["slept"] >= 0.39, box
# exponential back-off (20 us doubling to a 10 ms cap): ~10 + 25 interruptions in 0.25 s,
# not one every 20 us (12,500)
assert eintr.value < 60, eintr.value
print("OK", eintr.value)
"""


def test_thread_in_nanosleep_is_not_suspended_and_finishes(child, torture_lib):
    assert child(NANOSLEEP, torture_lib["path"]).startswith("OK")


PYLOOP = """
import sys, threading, time
from _childlib import *
lib = load(sys.argv[1]); preempt.preemptible(lib)
stop = threading.Event(); box = {"n": 0}
def body():
    box["h"] = threads.current(); ready.set()
    while not stop.is_set():
        box["n"] += 1
ready = threading.Event()
t = threading.Thread(target=body); t.start(); ready.wait()
before = box["n"]
assert box["h"].suspend(timeout=0.3) is False
assert box["h"].stats()["accepted"] == 0
time.sleep(0.05)
assert box["n"] > before   # it kept running
stop.set(); t.join(10)
print("OK")
"""


def test_thread_running_python_is_not_suspended(child, torture_lib):
    assert child(PYLOOP, torture_lib["path"]).startswith("OK")


UNREGISTERED = """
import sys, threading
from _childlib import *
lib = load(sys.argv[1]); preempt.preemptible(lib)
other = load(sys.argv[2])          # the same code under another name, never registered
w = Worker(lambda: other.pe_test_spin(spin_iters(other, 1.0)), runs=1)
assert w.handle.suspend(timeout=0.3) is False
st = w.handle.stats()
w.stop()
assert st["accepted"] == 0 and st["declined"] >= 1, st
# control: the registered copy is suspended
w = Worker(lambda: lib.pe_test_spin(spin_iters(lib, 1.0)), runs=1)
assert w.handle.suspend(timeout=5) is True
w.handle.resume(); w.stop()
print("OK")
"""


def test_code_outside_registered_regions_is_not_suspended(child, torture_lib):
    assert child(UNREGISTERED, torture_lib["path"], torture_lib["unreg"]).startswith("OK")


GIL_HELD = """
import sys, threading, ctypes, time
from _childlib import *
from preempt import _core
lib = load(sys.argv[1]); preempt.preemptible(lib)
pylib = ctypes.PyDLL(sys.argv[1])          # same object, but calls keep the GIL
pylib.pe_test_spin.argtypes = [ctypes.c_uint64]; pylib.pe_test_spin.restype = ctypes.c_uint64
iters = spin_iters(lib, 1.5)
box = {}; ready = threading.Event(); go = threading.Event()
def body():
    box["h"] = threads.current(); ready.set(); go.wait()
    pylib.pe_test_spin(iters)              # in the registered region, holding the GIL
    box["stats"] = box["h"].stats()
t = threading.Thread(target=body); t.start(); ready.wait()
h = box["h"]
res = {}
def suspender():
    # One C call with the GIL released for its whole length (the target holds the GIL).
    res["rc"] = _core.lib.pe_thread_suspend(h._slot, h._gen, 400_000_000, _core.ffi.new("int64_t *"))
s = threading.Thread(target=suspender); s.start(); time.sleep(0.01); go.set()
s.join(30); t.join(30)
assert res["rc"] == _core.lib.PE_TIMEOUT, res
st = box["stats"]
assert st["accepted"] == 0 and st["declined"] >= 1, st
print("OK", st)
"""


def test_thread_holding_the_gil_is_not_suspended(child, torture_lib):
    assert child(GIL_HELD, torture_lib["path"]).startswith("OK")
