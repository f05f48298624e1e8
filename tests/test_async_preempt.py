"""Asynchronous preemption of goroutines inside registered native code (issue: async + timers).

Each scenario runs in a child process: a goroutine calls a register-torture kernel (GIL released)
while a ticker goroutine sleeps 1 ms in a loop. The kernel's result must be bit-exact, the ticker
must have ticked *during* the native call (so the goroutine really was taken off the CPU), and
stats() must count async preemptions.
"""

from __future__ import annotations

import pytest

from conftest import CPU_FLAGS

HEAD = """
import sys, time, signal, os
from _childlib import *
import preempt
lib = load(sys.argv[1])
ticks = []
def ticker(stop):
    while not stop.is_set():
        preempt.sleep(0.001)
        ticks.append(time.perf_counter())
"""

TORTURE = HEAD + """
via = sys.argv[2]; kind = sys.argv[3]
if via == "cffi":
    import cffi
    ffi = cffi.FFI()
    ffi.cdef("void pe_test_gpr_kernel(uint64_t *, uint64_t); void pe_test_zmm_kernel(uint8_t *, uint64_t, const uint8_t *); uint64_t pe_test_redzone(uint64_t);")
    clib = ffi.dlopen(sys.argv[1])
    kern = preempt.preemptible(clib)
    init = ffi.new("uint8_t[]", bytes(ZMM_INIT))
    def run_kernel(n):
        if kind == "gpr":
            out = ffi.new("uint64_t[16]"); kern.pe_test_gpr_kernel(out, n); return tuple(out)
        if kind == "zmm":
            out = ffi.new("uint8_t[2120]"); kern.pe_test_zmm_kernel(out, n, init); return bytes(ffi.buffer(out))
        return kern.pe_test_redzone(n)
else:
    kern = preempt.preemptible(lib)
    def run_kernel(n):
        if kind == "gpr":
            out = (U64 * 16)(); kern.pe_test_gpr_kernel(out, n); return tuple(out)
        if kind == "zmm":
            out = (ctypes.c_uint8 * 2120)(); kern.pe_test_zmm_kernel(out, n, ZMM_INIT); return bytes(out)
        return kern.pe_test_redzone(n)
N = {"gpr": 6_000_000, "zmm": 3_000_000, "redzone": 3_000_000}[kind]   # each call >= ~30 ms
ref = run_kernel(N)                      # undisturbed, outside run()
def main():
    stop = preempt.Event()
    tk = preempt.go(ticker, stop, name="ticker")
    preempt.sleep(0.005)
    res, spans = [], []
    for _ in range(3):
        t0 = time.perf_counter(); res.append(run_kernel(N)); spans.append((t0, time.perf_counter()))
    st = preempt.stats()
    stop.set(); tk.join()
    return res, spans, st
res, spans, st = preempt.run(main)
assert all(r == ref for r in res), "native results differ after async preemption"
during = sum(1 for t in ticks for a, b in spans if a < t < b)
assert during >= 3, f"the ticker never ran during the native calls ({during} ticks)"
assert st["async"]["count"] >= 1, st["async"]
print("OK", during, st["async"])
"""


@pytest.mark.parametrize("via", ["ctypes", "cffi"])
@pytest.mark.parametrize("kind", ["gpr", "zmm", "redzone"])
def test_torture_kernel_in_goroutine_is_preempted_and_bit_exact(child, torture_lib, via, kind):
    if kind == "zmm" and not {"avx512f", "avx512bw"} <= CPU_FLAGS:
        pytest.skip("CPU has no AVX-512F/BW")
    out = child(TORTURE, torture_lib["path"], via, kind)
    assert out.startswith("OK"), out


SEVERAL = HEAD + """
kern = preempt.preemptible(lib, reentrant=True)
iters = spin_iters(lib, 0.15)
ref = lib.pe_test_spin(iters)
def native():
    return [kern.pe_test_spin(iters) for _ in range(2)]
def python_hog():
    x = 0
    for i in range(2_000_000):
        x += i
    return x
def main():
    stop = preempt.Event()
    tk = preempt.go(ticker, stop)
    gs = [preempt.go(native, name=f"n{i}") for i in range(3)] + [preempt.go(python_hog, name=f"p{i}") for i in range(2)]
    out = [g.join() for g in gs]
    st = preempt.stats()
    stop.set(); tk.join()
    return out, st
out, st = preempt.run(main)
assert all(o == [ref, ref] for o in out[:3]), out[:3]
assert out[3] == out[4] == sum(range(2_000_000))
# six native calls of ~150 ms at 10 ms slices: each must have been preempted several times,
# including while other goroutines were themselves parked inside native code
assert st["async"]["count"] >= 18 and len(ticks) >= 20, (st["async"], len(ticks))
print("OK", len(ticks), st["async"]["count"])
"""


def test_several_native_goroutines_interleave_with_python_ones(child, torture_lib):
    assert child(SEVERAL, torture_lib["path"]).startswith("OK")


SERIAL = HEAD + """
reentrant = sys.argv[2] == "reentrant"
kern = preempt.preemptible(lib, reentrant=reentrant)
iters = spin_iters(lib, 0.1)                 # pe_test_enter_spin runs the same loop
lib.pe_test_inside_max_reset()
def native():
    return kern.pe_test_enter_spin(iters)    # counts the callers inside the library at once
def main():
    stop = preempt.Event()
    tk = preempt.go(ticker, stop)
    preempt.sleep(0.005)
    t0 = time.perf_counter()
    gs = [preempt.go(native) for _ in range(3)]
    for g in gs: g.join()
    t1 = time.perf_counter()
    st = preempt.stats()
    stop.set(); tk.join()
    return st, sum(1 for t in ticks if t0 < t < t1)
st, during = preempt.run(main)
most = lib.pe_test_inside_max_reset()
# ~0.3 s of native calls: the goroutine inside was switched out again and again (the ticker ran
# tens of times, 0-2 without preemption), yet one goroutine at a time was inside unless reentrant
assert during >= 15 and st["async"]["count"] >= 3, (during, st["async"])
if reentrant:
    assert most >= 2, f"reentrant=True, yet at most {most} goroutine was inside at once"
else:
    assert most == 1, f"{most} goroutines were inside a non-reentrant library at once"
print("OK", most, during, st["async"]["count"])
"""


@pytest.mark.parametrize("mode", ["default", "reentrant"])
def test_non_reentrant_library_calls_are_serialised(child, torture_lib, mode):
    out = child(SERIAL, torture_lib["path"], mode)
    assert out.startswith("OK"), out


SIGINT = HEAD + """
kern = preempt.preemptible(lib)
iters = spin_iters(lib, 3.0)                 # long enough for the 0.2 s timer on a loaded machine
def main():
    stop = preempt.Event()
    tk = preempt.go(ticker, stop)
    try:
        kern.pe_test_spin(iters)             # main itself is in native code
        after = "no interrupt"
    except KeyboardInterrupt:
        after = "interrupted"
    stop.set(); tk.join()
    return after
import threading
threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
t0 = time.monotonic()
try:
    r = preempt.run(main)
except KeyboardInterrupt:
    r = "interrupted outside main"
dt = time.monotonic() - t0
assert r in ("interrupted", "interrupted outside main"), r
assert dt < 10, dt
print("OK", r, round(dt, 2))
"""


def test_sigint_while_main_goroutine_is_in_native_code(child, torture_lib):
    assert child(SIGINT, torture_lib["path"]).startswith("OK")


KILL = HEAD + """
import io, sys
kern = preempt.preemptible(lib)
iters = spin_iters(lib, 30.0)                # a 30 s native call
log = []
def leftover():
    try:
        kern.pe_test_spin(iters)
        log.append("returned")
    finally:
        log.append("finally")
def main():
    g = preempt.go(leftover, name="leftover")
    preempt.sleep(0.05)                      # leftover is now parked inside native code
    assert preempt.stats()["async"]["count"] >= 1
    return "main done"
err, sys.stderr = sys.stderr, io.StringIO()
t0 = time.monotonic()
try:
    assert preempt.run(main) == "main done"
finally:
    report, sys.stderr = sys.stderr.getvalue(), err
dt = time.monotonic() - t0
# Go's rule: the program's exit waits for no goroutine. A goroutine parked inside a native call
# cannot be unwound, so run() abandons it at once (it never runs again: neither the rest of the
# call nor its finally block) and says so, instead of waiting 30 s for the call to return.
assert log == [], log
assert "goroutine" in report and "'leftover'" in report and "native call" in report, report
assert dt < 10, dt
print("OK", round(dt, 2))
"""


def test_goroutine_parked_in_native_code_is_abandoned_when_run_ends(child, torture_lib):
    assert child(KILL, torture_lib["path"]).startswith("OK")


SLEEPER = HEAD + """
kern = preempt.preemptible(lib)
eintr = ctypes.c_int(0)
def sleeper():
    return kern.pe_test_sleep_ns(300_000_000, ctypes.byref(eintr))   # libc: never preempted
def hog():
    x = 0
    for i in range(3_000_000): x += i
def main():
    g = preempt.go(sleeper); h = preempt.go(hog)
    t0 = time.monotonic(); rc = g.join(); dt = time.monotonic() - t0; h.join()
    return rc, dt
rc, dt = preempt.run(main)
assert rc == 0 and dt >= 0.29, (rc, dt)
print("OK", eintr.value)
"""


def test_native_goroutine_in_nanosleep_still_completes(child, torture_lib):
    assert child(SLEEPER, torture_lib["path"]).startswith("OK")


STUCK = HEAD + """
pylib = ctypes.PyDLL(sys.argv[1])            # calls keep the GIL: no safe-point of any kind
pylib.pe_test_spin.argtypes = [ctypes.c_uint64]; pylib.pe_test_spin.restype = ctypes.c_uint64
iters = spin_iters(lib, 1.0)                 # 10 x the 100 ms asserted: calibrated under load
def holder():
    pylib.pe_test_spin(iters)
    for _ in range(100):                     # a backward jump: the hook runs here, in this G
        pass
def other():                                 # someone to yield to: sysmon leaves a lone G be
    for _ in range(200):
        preempt.sleep(0.001)
def main():
    g = preempt.go(holder, name="gil-holder")
    o = preempt.go(other)
    g.join(); o.join()
    return preempt.stats()
st = preempt.run(main)
stuck = [s for s in st["stuck"] if s["goroutine"] == "gil-holder"]
assert stuck and stuck[0]["ms"] >= 100, st["stuck"]
assert "holder" in stuck[0]["where"], stuck
print("OK", stuck)
"""


def test_goroutine_out_of_reach_is_reported(child, torture_lib):
    assert child(STUCK, torture_lib["path"]).startswith("OK")


CHAIN = """
import signal
calls = []
signal.signal(signal.SIGURG, lambda s, f: calls.append(s))   # the program's own, before preempt
""" + HEAD + """
kern = preempt.preemptible(lib, reentrant=True)
iters = spin_iters(lib, 0.2)
def main():
    stop = preempt.Event()
    tk = preempt.go(ticker, stop)
    gs = [preempt.go(kern.pe_test_spin, iters) for _ in range(2)]
    for g in gs: g.join()
    st = preempt.stats()
    stop.set(); tk.join()
    n_before = len(calls)
    os.kill(os.getpid(), signal.SIGURG)                       # a real SIGURG, during run()
    preempt.sleep(0.05)
    return st, n_before, len(calls)
st, n_before, n_after = preempt.run(main)
assert st["async"]["count"] >= 5, st["async"]
assert n_before == 0, f"{n_before} preemption signals reached the program's SIGURG handler"
assert n_after == 1, n_after
print("OK", st["async"]["count"])
"""


def test_program_sigurg_handler_sees_only_real_sigurgs_under_async_preemption(child, torture_lib):
    assert child(CHAIN, torture_lib["path"]).startswith("OK")


# The shapes a goroutine can call a registered library in. docs/guide.md promises that direct calls
# on the raw library object are preempted too (the region is registered): also when the raw
# function is itself the goroutine's function, where the frame that made the native call is the
# worker loop's (_preempt.py rule 8; before it, rule 6's bottom-frame clause, meant for the
# loop's back-edge on the sync path, vetoed every async preemption there: 2 ticks in 0.87 s).
SHAPES = """
import os, sys
os.environ["PREEMPT_PURE"] = sys.argv[4]          # before preempt is imported
""" + HEAD + """
shape, kind = sys.argv[2], sys.argv[3]
kern = preempt.preemptible(lib)
if kind == "gpr":
    name, size, extra = "pe_test_gpr_kernel", 128, ()
elif kind == "zmm":
    name, size, extra = "pe_test_zmm_kernel", 2120, (ZMM_INIT,)
else:
    from _childlib import YMM_INIT
    name, size, extra = "pe_test_ymm_kernel", 516, (YMM_INIT,)
raw, proxied = getattr(lib, name), getattr(kern, name)
def call_args(n):
    out = (ctypes.c_uint8 * size)()
    return out, (out, n) + extra
def undisturbed(n):
    out, a = call_args(n); raw(*a); return bytes(out)
n = 200_000                                  # calibrate: each call ~0.15 s on this machine now
t0 = time.perf_counter(); undisturbed(n); dt = max(time.perf_counter() - t0, 1e-6)
N = max(n, int(n * 0.15 / dt))
ref = undisturbed(N)
assert ref != undisturbed(N + 1)             # the result depends on every iteration
def start(a):
    if shape == "raw_target":
        return preempt.go(raw, *a)               # the ctypes function is the G's function
    if shape == "raw_in_python":
        return preempt.go(lambda: raw(*a))
    if shape == "proxy_target":
        return preempt.go(proxied, *a)
    return preempt.go(lambda: proxied(*a))
def main():
    stop = preempt.Event()
    tk = preempt.go(ticker, stop, name="ticker")
    preempt.sleep(0.005)
    res, spans = [], []
    for _ in range(3):
        out, a = call_args(N)
        t0 = time.perf_counter(); start(a).join(); spans.append((t0, time.perf_counter()))
        res.append(bytes(out))
    st = preempt.stats()
    stop.set(); tk.join()
    return res, spans, st
res, spans, st = preempt.run(main)
bad = sum(r != ref for r in res)
assert not bad, f"{bad} of 3 native results differ after async preemption ({shape}, {kind})"
during = sum(1 for t in ticks for a, b in spans if a < t < b)
# ~0.45 s of native calls: preempted, the 1 ms ticker runs at least once a 10 ms slice (tens of
# ticks); never preempted, it runs only around each call's start and end (0-2 per call)
assert during >= 15, f"the ticker ran {during} times during 3 native calls of ~0.15 s ({shape})"
assert st["async"]["count"] >= 3, st["async"]
print("OK", during, st["async"]["count"])
"""

SHAPE_NAMES = ["raw_target", "raw_in_python", "proxy_target", "proxy_in_python"]


def _widest_vector() -> str:
    if {"avx512f", "avx512bw"} <= CPU_FLAGS:
        return "zmm"
    if "avx2" in CPU_FLAGS:
        return "ymm"
    pytest.skip("CPU has neither AVX-512F/BW nor AVX2")


@pytest.mark.parametrize("shape", SHAPE_NAMES)
@pytest.mark.parametrize("kind", ["gpr", "vector"])
def test_every_call_shape_of_a_registered_library_is_preempted_and_bit_exact(
        child, torture_lib, shape, kind):
    kind = _widest_vector() if kind == "vector" else kind
    out = child(SHAPES, torture_lib["path"], shape, kind, "0")
    assert out.startswith("OK"), out


@pytest.mark.parametrize("shape", SHAPE_NAMES)
def test_every_call_shape_is_preempted_on_the_pure_python_runtime(child, torture_lib, shape):
    out = child(SHAPES, torture_lib["path"], shape, _widest_vector(), "1")
    assert out.startswith("OK"), out


# A G whose function is the raw ctypes function, switched out inside it and cancelled: the
# Cancelled the hook gets when the G runs again cannot be raised into native frames; it is kept
# (rule 8) and raised by the worker loop right after the call returns, inside the try that
# records a G's exception: join() raises it, run() does not, and the worker goes on.
CANCEL_RAW = """
import os, sys
os.environ["PREEMPT_PURE"] = sys.argv[2]
""" + HEAD + """
kern = preempt.preemptible(lib)
iters = spin_iters(lib, 0.3)
ref = lib.pe_test_spin(1000)
def main():
    from preempt._runtime import _park
    stop = preempt.Event()
    tk = preempt.go(ticker, stop, name="ticker")
    g = preempt.go(lib.pe_test_spin, iters, name="raw")
    preempt.sleep(0.03)                      # main runs again: g was switched out somewhere
    parked_in_native = g in _park.sched.native
    g.cancel()
    try:
        r = ("returned", g.join())
    except preempt.Cancelled as e:
        r = ("cancelled", str(e))
    # the worker that ran g (and every other) still runs goroutines, raw targets included
    after = [h.join() for h in [preempt.go(lib.pe_test_spin, 1000) for _ in range(4)]]
    stop.set(); tk.join()
    return parked_in_native, r, after
parked, r, after = preempt.run(main)
assert parked, "the raw-target goroutine was not parked inside its native call when cancelled"
assert r[0] == "cancelled" and "'raw'" in r[1], r
assert after == [ref] * 4, after
print("OK", r)
"""


@pytest.mark.parametrize("pure", ["0", "1"])
def test_raw_target_cancelled_while_parked_in_native_code_raises_only_from_join(
        child, torture_lib, pure):
    out = child(CANCEL_RAW, torture_lib["path"], pure)
    assert out.startswith("OK"), out


# A region dropped without close() stays registered (native.py: a registration lasts until
# close()): the raw library's calls stay preempted, and the library object stays alive so its
# code cannot be unloaded under the registration. close() then releases both.
DROPPED = HEAD + """
import gc, weakref
from preempt import _core
lib = None                                   # HEAD's own handle: only `mine` below holds one
mine = ctypes.CDLL(sys.argv[2])              # a library nobody else has loaded
mine.pe_test_spin.argtypes = [U64]; mine.pe_test_spin.restype = U64
alive = weakref.ref(mine)
n0 = _core.lib.pe_regions_count()
preempt.preemptible(mine)                    # the region is dropped at once
gc.collect()
assert _core.lib.pe_regions_count() > n0, "dropping the region unregistered it"
iters = spin_iters(mine, 0.3)
def main():
    stop = preempt.Event()
    tk = preempt.go(ticker, stop)
    preempt.sleep(0.005)
    t0 = time.perf_counter(); preempt.go(mine.pe_test_spin, iters).join(); t1 = time.perf_counter()
    stop.set(); tk.join()
    return sum(1 for t in ticks if t0 < t < t1)
during = preempt.run(main)
assert during >= 10, f"a raw call of ~0.3 s after the region was dropped: {during} ticks"
del mine, main
gc.collect()
assert alive() is not None, "the library object of a registered region was freed"
from preempt import native
(region,) = [r for r in native._open if r._lib is alive()]
region.close()
del region
gc.collect()
assert _core.lib.pe_regions_count() == n0, "close() left the segments registered"
assert alive() is None, "a closed region still keeps its library alive"
print("OK", during)
"""


def test_a_dropped_region_stays_registered_and_keeps_its_library(child, torture_lib):
    out = child(DROPPED, torture_lib["path"], torture_lib["unreg"])
    assert out.startswith("OK"), out
