"""Signals beside ours (docs/design.md invariant 5): chaining, SIGINT, no EINTR elsewhere, fork."""

from __future__ import annotations

CHAIN = """
import os, signal, sys, threading, time
calls = []
signal.signal(signal.SIGURG, lambda s, f: calls.append(s))   # installed BEFORE preempt
from _childlib import *
lib = load(sys.argv[1]); preempt.preemptible(lib)
assert preempt.available()[0] is True, preempt.available()
# thousands of preemption requests must not reach the user's handler...
w = Worker(lambda: lib.pe_test_spin(2_000_000))
hammer(w.handle, 500, jitter_us=50)
w.stop()
time.sleep(0.05)
assert calls == [], f"preemption requests leaked to the user's SIGURG handler: {len(calls)}"
# ...but every real SIGURG does
for _ in range(3):
    os.kill(os.getpid(), signal.SIGURG)
    time.sleep(0.01)
deadline = time.monotonic() + 5
while len(calls) < 3 and time.monotonic() < deadline:
    time.sleep(0.01)
assert calls == [signal.SIGURG] * 3, calls
print("OK")
"""


def test_previous_sigurg_handler_still_runs(child, torture_lib):
    assert child(CHAIN, torture_lib["path"]).startswith("OK")


REPLACED = """
import signal, preempt
assert preempt.available()[0]
signal.signal(signal.SIGURG, lambda s, f: None)              # installed AFTER preempt
ok, why = preempt.available()
assert not ok and "SIGURG" in why, why
print("OK", why)
"""


def test_replaced_handler_is_reported(child):
    assert child(REPLACED).startswith("OK")


SIGINT = """
import os, signal, sys, threading, time
from _childlib import *
lib = load(sys.argv[1]); preempt.preemptible(lib)
threads.current()                                   # main thread registered too
w = Worker(lambda: time.sleep(1))                   # never at a safe-point: suspend blocks
threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
t0 = time.monotonic()
try:
    w.handle.suspend()                              # timeout=None: waits until Ctrl-C
except KeyboardInterrupt:
    dt = time.monotonic() - t0
    assert dt < 5, dt
    assert not w.handle.is_suspended
    print("OK", round(dt, 3))
else:
    print("suspend returned without KeyboardInterrupt")
"""


def test_sigint_interrupts_a_waiting_suspend(child, torture_lib):
    assert child(SIGINT, torture_lib["path"], timeout=60).startswith("OK")


NO_EINTR = """
import os, sys, threading, ctypes, time
from _childlib import *
lib = load(sys.argv[1]); preempt.preemptible(lib)
# A bystander thread blocked in raw read() and one in nanosleep while another thread is
# suspended thousands of times: neither may see EINTR (signals go to the target only).
r, wfd = os.pipe()
eintr_read = ctypes.c_int(0); eintr_sleep = ctypes.c_int(0)
buf = ctypes.create_string_buffer(8)
reader = threading.Thread(target=lib.pe_test_read_all, args=(r, buf, 4, ctypes.byref(eintr_read)))
sleeper = threading.Thread(target=lib.pe_test_sleep_ns, args=(1_500_000_000, ctypes.byref(eintr_sleep)))
reader.start(); sleeper.start()
w = Worker(lambda: lib.pe_test_spin(2_000_000))
hammer(w.handle, 2000, jitter_us=20)
w.stop()
os.write(wfd, b"done")
reader.join(10); sleeper.join(10)
assert buf.value == b"done"
assert eintr_read.value == 0 and eintr_sleep.value == 0, (eintr_read.value, eintr_sleep.value)
print("OK")
"""


def test_bystander_syscalls_see_no_eintr(child, torture_lib):
    assert child(NO_EINTR, torture_lib["path"]).startswith("OK")


FORK = """
import os, sys, threading
from _childlib import *
from preempt import _core
lib = load(sys.argv[1]); preempt.preemptible(lib)
main_h = threads.current()
w = Worker(lambda: lib.pe_test_spin(2_000_000))
hammer(w.handle, 50)
pid = os.fork()
if pid == 0:
    try:
        # fresh registry: only the forking thread, with its new tid
        regs = threads.registered()
        assert [h.native_id for h in regs] == [threading.get_native_id()], regs
        assert _core.lib.pe_signal_handler_installed() == 1
        w2 = Worker(lambda: lib.pe_test_spin(2_000_000))
        hammer(w2.handle, 200)
        w2.stop()
        os._exit(0)
    except BaseException as e:
        import traceback; traceback.print_exc()
        os._exit(3)
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
hammer(w.handle, 50)                 # the parent is unaffected
w.stop()
print("OK")
"""


def test_fork_child_has_fresh_registry_and_working_core(child, torture_lib):
    assert child(FORK, torture_lib["path"]).startswith("OK")
