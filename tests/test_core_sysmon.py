"""sysmon (csrc/pe_sysmon.c) driven directly, without the goroutine runtime. Child processes.

The M here is the main thread running a plain Python loop; the "hook" is a Python handler on
SLOT that acknowledges each request, as the runtime's hook does.
"""

from __future__ import annotations

import sys

COMMON = """
import signal, sys, time
from preempt import _core, threads
lib, ffi = _core.lib, _core.ffi
SLOT = signal.SIGRTMAX
sh = lib.pe_sysmon_shared()
calls = []
def hook(signum, frame):
    seq = sh.req_seq
    if seq != sh.ack_seq:
        calls.append((seq, time.monotonic_ns() - sh.req_ns, sh.req_reason))
        sh.ack_seq = seq
signal.signal(SLOT, hook)
m = threads.current()
"""

BUSY = COMMON + """
import os
assert os.environ["PREEMPT_SYSMON_GRACE_US"] == "5000000"   # no signal before 5 s: poke only
assert lib.pe_sysmon_start(SLOT, 2_000_000, 500_000, m._slot, m._gen) == lib.PE_OK   # 2 ms slices
sh.running = 1
t_end = time.monotonic() + 0.5
x = 0
while time.monotonic() < t_end:
    x += 1                                  # pure bytecode: reached only via the eval breaker
lib.pe_sysmon_stop()
n = len(calls)
# ~one request per 2-4 ms over 0.5 s, every one taken at a bytecode safe-point by the poke
# (3.10-3.12) or the direct trip (3.13+): with escalation 5 s away, no signal could help
assert 20 <= n <= 400, n
assert all(r == lib.PE_REASON_SLICE for _, _, r in calls)
# No signal for a request. (A kick for a tripped-but-unrun handler may come when the M is off
# the CPU for over 1 ms on a loaded machine, just as a re-trip lands after the hook's ack: that
# is the handler watch, not the request path, and is counted apart.)
assert sh.n_signals <= sh.n_signal_kicks, (sh.n_signals, sh.n_signal_kicks, n)
print("OK", n, sh.n_signals, lib.pe_sysmon_poke_mode(), sorted(l for _, l, _ in calls)[n // 2] // 1000, "us p50")
"""


def test_sysmon_preempts_a_python_loop_without_signals(child, monkeypatch):
    monkeypatch.setenv("PREEMPT_SYSMON_GRACE_US", "5000000")
    out = child(BUSY)
    assert out.startswith("OK"), out
    poke = int(out.split()[3])
    assert poke == (1 if sys.version_info < (3, 13) else 0)


IDLE = COMMON + """
assert lib.pe_sysmon_start(SLOT, 1_000_000, 500_000, m._slot, m._gen) == lib.PE_OK
sh.running = 0                              # the hub is waiting: nothing to preempt
time.sleep(0.3)
lib.pe_sysmon_stop()
assert calls == [] and sh.n_requests == 0 and sh.n_signals == 0, (calls, sh.n_requests)
print("OK")
"""


def test_sysmon_leaves_an_idle_m_alone(child):
    assert child(IDLE).startswith("OK")


BLOCKED = COMMON + """
assert lib.pe_sysmon_start(SLOT, 2_000_000, 500_000, m._slot, m._gen) == lib.PE_OK
sh.running = 1
t0 = time.monotonic()
time.sleep(0.3)                             # blocked in a syscall: no bytecode runs
during = [c for c in calls]
slept = time.monotonic() - t0
lib.pe_sysmon_stop()
# the request escalated to SIGURG, which interrupted the sleep so the handler ran inside it
assert sh.n_signals >= 1, sh.n_signals
assert during, "the handler never ran while the M was blocked"
assert slept >= 0.3                         # time.sleep still slept its full time (PEP 475)
print("OK", len(during), sh.n_signals)
"""


def test_sysmon_escalates_to_a_signal_when_the_m_is_blocked(child):
    assert child(BLOCKED).startswith("OK")


TIMER = COMMON + """
assert lib.pe_sysmon_start(SLOT, 10_000_000_000, 500_000, m._slot, m._gen) == lib.PE_OK  # 10 s slice
sh.running = 1
due = time.monotonic_ns() + 50_000_000
sh.next_deadline_ns = due; lib.pe_sysmon_kick()
x = 0
while not calls and time.monotonic_ns() < due + 2_000_000_000:
    x += 1
lib.pe_sysmon_stop()
assert calls and calls[0][2] == lib.PE_REASON_TIMER, calls
late = (time.monotonic_ns() - due)
print("OK", late // 1000, "us after the deadline")
"""


def test_sysmon_requests_when_a_timer_is_due(child):
    assert child(TIMER).startswith("OK")


TWICE = COMMON + """
assert lib.pe_sysmon_start(SLOT, 1_000_000, 500_000, m._slot, m._gen) == lib.PE_OK
assert lib.pe_sysmon_start(SLOT, 1_000_000, 500_000, m._slot, m._gen) == lib.PE_BUSY
lib.pe_sysmon_stop(); lib.pe_sysmon_stop()       # idempotent
assert lib.pe_sysmon_start(SLOT, 0, 500_000, m._slot, m._gen) == lib.PE_INVALID
assert lib.pe_sysmon_start(SLOT, 1_000_000, 0, m._slot, m._gen) == lib.PE_INVALID
print("OK")
"""


def test_sysmon_start_stop_misuse(child):
    assert child(TWICE).startswith("OK")


def test_the_runtime_names_the_request_reasons_the_core_makes():
    # _rules.REASON_* are the runtime's copies of preempt.h's PE_REASON_* (netpoll invariant 6
    # tells a slice's end from a timer or I/O request by them)
    import pytest

    core = pytest.importorskip("preempt._core")
    from preempt._runtime import _rules

    got = {n: getattr(core.lib, "PE_" + n) for n in ("REASON_SLICE", "REASON_TIMER", "REASON_IO")}
    assert got == {n: getattr(_rules, n) for n in got}
