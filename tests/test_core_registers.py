"""Register integrity across real suspensions (docs/design.md invariant 4), in child processes.

Each scenario runs a kernel that keeps live values in every register of a class on a registered
worker thread, suspends and resumes it thousands of times from the main thread, and compares
every result bit for bit with an undisturbed run of the same kernel.
"""

from __future__ import annotations

import pytest

from conftest import CPU_FLAGS

CYCLES = "3000"

GPR = """
import sys
from _childlib import *
lib = load(sys.argv[1]); cycles = int(sys.argv[2])
preempt.preemptible(lib)
N = 2_000_000
ref = gpr(lib, N)
assert ref[15] & 0x400, "kernel should leave DF set in its captured RFLAGS"
spans = region_of(sys.argv[1])
seen = {"in_region": 0, "df": 0}
def check(regs):
    seen["in_region"] += any(a <= regs["rip"] < b for a, b in spans)
    seen["df"] += bool(regs["rflags"] & 0x400)
w = Worker(lambda: gpr(lib, N), "gpr")
n = hammer(w.handle, cycles, check)
stats = w.handle.stats()
w.stop()
assert stats["accepted"] >= n, stats
bad = [r for r in w.results if r != ref]
assert w.results and not bad, f"{len(bad)} of {len(w.results)} runs differ: {bad[0]} vs {ref}"
assert seen["in_region"] == n, seen
assert seen["df"] > n // 2, seen
print("OK", n, len(w.results), stats)
"""


def test_gprs_flags_and_df_survive_suspension(child, torture_lib):
    out = child(GPR, torture_lib["path"], CYCLES)
    assert out.startswith("OK"), out


VEC = """
import sys
from _childlib import *
lib = load(sys.argv[1]); cycles = int(sys.argv[2]); kind = sys.argv[3]
preempt.preemptible(lib)
N = 200_000
kernel = zmm if kind == "zmm" else ymm
ref = kernel(lib, N)
assert ref != kernel(lib, N + 1)  # the result depends on every iteration
w = Worker(lambda: kernel(lib, N), kind)
n = hammer(w.handle, cycles, lambda regs: None)
w.stop()
bad = sum(r != ref for r in w.results)
assert w.results and not bad, f"{bad} of {len(w.results)} runs differ"
mx = w.results[0][2112:2116] if kind == "zmm" else w.results[0][512:516]
assert int.from_bytes(mx, "little") == 0x7fc0, mx
print("OK", n, len(w.results))
"""


@pytest.mark.skipif(not {"avx512f", "avx512bw"} <= CPU_FLAGS, reason="CPU has no AVX-512F/BW")
def test_zmm_opmask_mxcsr_x87_survive_suspension(child, torture_lib):
    out = child(VEC, torture_lib["path"], CYCLES, "zmm")
    assert out.startswith("OK"), out


@pytest.mark.skipif("avx2" not in CPU_FLAGS, reason="CPU has no AVX2")
def test_ymm_and_mxcsr_survive_suspension(child, torture_lib):
    out = child(VEC, torture_lib["path"], CYCLES, "ymm")
    assert out.startswith("OK"), out


REDZONE = """
import sys
from _childlib import *
lib = load(sys.argv[1]); cycles = int(sys.argv[2])
preempt.preemptible(lib)
N = 1_000_000
ref = lib.pe_test_redzone(N)
assert ref != lib.pe_test_redzone(N + 1)
lo, hi = U64(), U64()
def body():
    if not hi.value:
        assert lib.pe_test_stack_bounds(ctypes.byref(lo), ctypes.byref(hi)) == 0
    return lib.pe_test_redzone(N)
w = Worker(body, "redzone")
def check(regs):
    assert lo.value <= regs["rsp"] < hi.value, (hex(regs["rsp"]), hex(lo.value), hex(hi.value))
n = hammer(w.handle, cycles, check)
w.stop()
bad = sum(r != ref for r in w.results)
assert w.results and not bad, f"{bad} of {len(w.results)} runs differ"
print("OK", n, len(w.results))
"""


def test_red_zone_of_a_leaf_survives_suspension(child, torture_lib):
    out = child(REDZONE, torture_lib["path"], CYCLES)
    assert out.startswith("OK"), out


# registers()["rsp"] is where the thread was interrupted: in its own stack, beside a local of
# the native function it spins in, and the same for every read of one suspension. (It used to
# be computed from the caller's copy of the registers: a heap address, new at every call.)
RSP = """
import sys, time
from _childlib import *
lib = load(sys.argv[1]); cycles = int(sys.argv[2])
preempt.preemptible(lib)
iters = spin_iters(lib, 0.02)
lo, hi, where = U64(), U64(), U64()
def body():
    if not hi.value:
        assert lib.pe_test_stack_bounds(ctypes.byref(lo), ctypes.byref(hi)) == 0
    return lib.pe_test_spin_at(iters, ctypes.byref(where))
spin_at = ctypes.cast(lib.pe_test_spin_at, ctypes.c_void_p).value
spans = region_of(sys.argv[1])
w = Worker(body, "rsp")
while not where.value:                       # from now on it runs only pe_test_spin_at's code
    time.sleep(0.001)
h = w.handle
rsps = set()
for _ in range(cycles):
    assert h.suspend(10), h.stats()
    try:
        a, b = h.registers(), h.registers()
    finally:
        h.resume()
    rsp, rip = a["rsp"], a["rip"]
    assert a == b, f"two reads of one suspension differ: {a} vs {b}"
    assert lo.value <= rsp < hi.value, \
        f"rsp {rsp:#x} outside the thread's stack [{lo.value:#x}, {hi.value:#x})"
    assert abs(rsp - where.value) <= 256, \
        f"rsp {rsp:#x} is not beside the spinning frame's local at {where.value:#x}"
    assert any(a0 <= rip < b0 for a0, b0 in spans), f"rip {rip:#x} outside the registered region"
    assert spin_at <= rip < spin_at + 256, f"rip {rip:#x} not in pe_test_spin_at ({spin_at:#x})"
    rsps.add(rsp)
w.stop()
print("OK", cycles, sorted(hex(r) for r in rsps))
"""


def test_rsp_is_the_interrupted_stack_pointer_in_the_threads_stack(child, torture_lib):
    out = child(RSP, torture_lib["path"], "300")
    assert out.startswith("OK"), out
