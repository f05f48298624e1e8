"""The core under valgrind (scripts/valgrind-core): suspend/resume a register-torture kernel 200
times and stop the world once; memcheck must report nothing in preempt's own code."""
import os, sys, threading
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _childlib import *
lib = load(sys.argv[1]); preempt.preemptible(lib)
N = 200_000
ref = gpr(lib, N)
w = Worker(lambda: gpr(lib, N))
# every suspension's registers are read: pe_thread_registers copies the spill frame
n = hammer(w.handle, 100, on_regs=lambda r: r["rsp"] + r["rip"], jitter_us=500)
st = w.handle.stats(); w.stop()
assert all(r == ref for r in w.results), "mismatch"
with threads.stop_the_world(timeout=5): pass
print("OK", n, st, preempt._corelib.core()[1].pe_xsave_size())
