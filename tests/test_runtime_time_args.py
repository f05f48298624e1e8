"""Every time-valued argument of the public API gets one validation (``_runtime/_timeouts.py``).

For sleep, select, Event.wait, Goroutine.join, WaitQ.wait, wait_readable/wait_writable,
ThreadHandle.suspend, stop_the_world and run(slice=) / PREEMPT_SLICE_MS: NaN, negative, infinite,
huge and wrong-typed values each give the documented result (rules 1-5 of ``_timeouts.py``):
a TypeError or ValueError naming the function and the argument, or "for ever" — never a hang,
a frozen runtime or a bare OverflowError from inside it.

Each scenario runs in a child interpreter with a timeout: before the fix several of them froze
the runtime at 100 % CPU, and a regression must hang one test, not the runner.
"""

from __future__ import annotations

import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

T = 30      # seconds a child may take; every scenario needs well under 2

PRE = '''
import decimal, fractions, math, os, sys, threading, time
import preempt
from preempt._runtime import _park
from preempt._runtime._waitq import WaitQ

NAN, INF = float("nan"), float("inf")

def outcome(fn, *a, **k):
    try:
        r = fn(*a, **k)
    except (TypeError, ValueError, OverflowError) as e:
        return f"{type(e).__name__}: {e}"
    except preempt.JoinTimeout:
        return "JoinTimeout"
    return f"ok {r!r}"

BAD = [("nan", NAN), ("neg", -1), ("tiny_neg", -1e-300), ("neg_inf", -INF),
       ("dec_nan", decimal.Decimal("NaN")), ("dec_snan", decimal.Decimal("sNaN")),
       ("str", "1"), ("bool", True), ("complex", 1j), ("object", object()),
       ("bytes", b"1")]

def heap_is_sane():
    limit = time.monotonic() + 2**31 + 60
    return all(e[0] == e[0] and e[0] < limit for e in _park.sched.timers)  # no NaN/inf/huge

def make(api):
    """(call(v), wake()): call waits with timeout v, wake() ends that wait (None: nothing can).
    Each call of make() gets its own primitive. Inside run()."""
    if api == "sleep":
        return (lambda v: preempt.sleep(v)), None
    if api == "select":
        ch = preempt.Chan()
        return (lambda v: preempt.select(preempt.Recv(ch), timeout=v)), (lambda: ch.send(7))
    if api == "event":
        ev = preempt.Event()
        return (lambda v: ev.wait(v)), ev.set
    if api == "join":
        ev = preempt.Event()
        target = preempt.go(ev.wait, name="target")
        return (lambda v: target.join(v)), ev.set
    if api == "waitq":
        q = WaitQ("q")
        return (lambda v: q.wait("WaitQ.wait", v)), q.wake_all
    r, w = os.pipe()
    if api == "readable":
        return (lambda v: preempt.wait_readable(r, v)), (lambda: os.write(w, b"x"))
    os.set_blocking(w, False)          # writable: fill the pipe, so that a writer must wait
    try:
        while True:
            os.write(w, b"x" * 65536)
    except BlockingIOError:
        pass
    def drain():
        os.set_blocking(r, False)
        try:
            while os.read(r, 1 << 20):
                pass
        except BlockingIOError:
            pass
    return (lambda v: preempt.wait_writable(w, v)), drain
'''

# api -> (what the errors name, the argument's name, what a poll (timeout 0) returns)
APIS = {
    "sleep": ("preempt.sleep()", "seconds", None),
    "select": ("preempt.select()", "timeout", "ok (-1, None)"),
    "event": ("Event.wait()", "timeout", "ok False"),
    "join": ("Goroutine.join()", "timeout", "JoinTimeout"),
    "waitq": ("WaitQ.wait()", "timeout", "ok False"),
    "readable": ("preempt.wait_readable()", "timeout", "ok False"),
    "writable": ("preempt.wait_writable()", "timeout", "ok False"),
}


def scenario(api: str, body: str) -> str:
    """A child program whose main runs ``body`` after ``call, wake = make(api)``."""
    body = textwrap.indent(textwrap.dedent(body), "    ")
    return PRE + f"\ndef main():\n    call, wake = make({api!r})\n{body}\npreempt.run(main)\n"


@pytest.mark.parametrize("api", sorted(APIS))
def test_bad_values_raise_errors_naming_function_and_argument(child, api):
    """Rules 1-2: each bad value is an error that names the call and the argument; the runtime
    is unharmed afterwards (a NaN deadline used to corrupt the timer heap)."""
    what, arg, _ = APIS[api]
    out = child(scenario(api, f"""
        for name, v in BAD + ([("none", None)] if {api == "sleep"} else []):
            print(name, "=>", outcome(call, v), flush=True)
        assert heap_is_sane()
        preempt.sleep(0.001)            # timers still fire
        print("alive")
    """), timeout=T)
    lines = dict(line.split(" => ", 1) for line in out.splitlines() if " => " in line)
    assert "alive" in out, out
    for name in ("nan", "dec_nan", "dec_snan"):
        assert lines[name] == (f"ValueError: {what}: {arg} is NaN; pass a number of seconds "
                               "(int or float) >= 0"), (name, out)
    for name in ("neg", "tiny_neg", "neg_inf"):
        assert lines[name].startswith(f"ValueError: {what}: {arg} must be >= 0, got "), out
    expected = "a number of seconds (int or float)" if api == "sleep" else \
        "None (wait for ever) or a number of seconds (int or float)"
    for name in ("str", "bool", "complex", "object", "bytes"):
        assert lines[name] == f"TypeError: {what}: {arg} must be {expected}, not '{name}'", out
    if api == "sleep":
        assert lines["none"] == (f"TypeError: {what}: seconds must be a number of seconds "
                                 "(int or float), not 'NoneType'"), out


@pytest.mark.parametrize("api", sorted(set(APIS) - {"sleep"}))
def test_zero_polls_and_other_reals_are_seconds(child, api):
    """Rule 4 (0 polls once, -0.0 is 0) and rule 1 (ints, Fractions and Decimals are seconds)."""
    out = child(scenario(api, """
        for v in (0, 0.0, -0.0, fractions.Fraction(0), decimal.Decimal(0)):
            t0 = time.monotonic()
            print("zero", outcome(call, v), time.monotonic() - t0 < 0.5, flush=True)
        for v in (fractions.Fraction(1, 50), decimal.Decimal("0.02"), 0.02):
            t0 = time.monotonic()
            r = outcome(call, v)
            print("short", r, 0.015 <= time.monotonic() - t0 < 1.0, flush=True)
        assert heap_is_sane()
    """), timeout=T)
    polled = APIS[api][2]
    assert [x for x in out.splitlines() if x.startswith("zero")] == \
        [f"zero {polled} True"] * 5, out
    assert [x for x in out.splitlines() if x.startswith("short")] == \
        [f"short {polled} True"] * 3, out


def test_sleep_zero_yields_and_reals_sleep(child):
    out = child(PRE + textwrap.dedent("""
        def main():
            ran = []
            for v in (0, 0.0, -0.0, fractions.Fraction(0), decimal.Decimal(0)):
                preempt.go(ran.append, v)
                preempt.sleep(v)             # yields: the new goroutine runs
            print("yielded", len(ran) == 5)
            for v in (fractions.Fraction(1, 50), decimal.Decimal("0.02"), 0.02):
                t0 = time.monotonic(); preempt.sleep(v); dt = time.monotonic() - t0
                print("slept", 0.015 <= dt < 1.0)
        preempt.run(main)
    """), timeout=T)
    assert out.split() == ["yielded", "True"] + ["slept", "True"] * 3, out


FOREVER = ["INF", "1e10", "sys.float_info.max", "10**400", "decimal.Decimal('Infinity')",
           "2.0**31 + 1"]


@pytest.mark.parametrize("api", sorted(APIS))
def test_infinite_and_huge_values_wait_for_ever_without_a_timer(child, api):
    """Rule 3: inf and anything above TIMEOUT_MAX mean for ever; no timer holds such a deadline,
    the runtime keeps running (it used to freeze at 100 % CPU), and each wait still ends when
    what it waits for happens."""
    out = child(PRE + textwrap.dedent(f"""
        def main():
            results, wakes, gs = [], [], []
            for v in ({", ".join(FOREVER)},):
                call, wake = make({api!r})
                wakes.append(wake)
                gs.append(preempt.go(lambda v=v, call=call: results.append(outcome(call, v))))
            preempt.sleep(0.05)
            assert heap_is_sane(), _park.sched.timers
            t0 = time.monotonic(); preempt.sleep(0.01)
            print("ticks", time.monotonic() - t0 < 1.0)       # timers still fire on time
            print("waiting", sum(not g.done() for g in gs), results)
            if wakes[0] is not None:
                for wake in wakes:
                    wake()
                for g in gs:
                    g.join(5)
                print("woken", sorted(set(results)), len(results))
            print("main done", flush=True)
        preempt.run(main)
    """), timeout=T)
    n = len(FOREVER)
    assert "ticks True" in out and f"waiting {n} []" in out and "main done" in out, out
    if api != "sleep":
        woke = "ok (0, 7)" if api == "select" else "ok True"
        assert f"woken [{woke!r}] {n}" in out, out


@pytest.mark.parametrize("api", ["sleep", "select", "event", "join", "waitq"])
def test_for_ever_alone_in_main_is_a_deadlock_not_a_hang(child, api):
    """Rule 3: with no timer, nothing can wake main: Deadlock, as for None (sleep(inf) used to
    raise a bare OverflowError from inside the runtime; the others froze it)."""
    reason = {"sleep": "sleep (for ever)", "select": "select", "event": "Event.wait",
              "join": "join", "waitq": "WaitQ.wait"}[api]
    out = child(scenario(api, f"""
        for v in (INF, 1e10, sys.float_info.max):
            try:
                call(v)
                print("returned")
            except preempt.Deadlock as e:
                print("Deadlock", "'main': {reason}" in str(e), flush=True)
    """), timeout=T)
    assert out.split() == ["Deadlock", "True"] * 3, out


def test_goroutines_sleeping_for_ever_do_not_keep_run_from_returning(child):
    """The issue's first symptom: ``go(preempt.sleep, 1e10)`` and main never woke again."""
    out = child(PRE + textwrap.dedent("""
        def main():
            for v in (1e10, INF, sys.float_info.max, 10**400):
                preempt.go(preempt.sleep, v, name=f"sleeper {v!r}"[:20])
            preempt.sleep(0.05)          # main must wake from this
            return "main woke"
        t0 = time.monotonic()
        print(preempt.run(main), time.monotonic() - t0 < 5)
    """), timeout=T)
    assert out.split() == ["main", "woke", "True"], out


def test_sleep_inf_alone_in_main_is_deadlock_naming_it(child):
    out = child(PRE + textwrap.dedent("""
        try:
            preempt.run(preempt.sleep, INF)
        except preempt.Deadlock as e:
            print("Deadlock:", e)
    """), timeout=T)
    assert "Deadlock:" in out and "goroutine 1 'main': sleep (for ever)" in out, out


def test_join_nan_after_a_timed_out_join_raises_and_the_runtime_still_works(child):
    """The issue's NaN symptoms: join(0.01) then join(nan) hung; join(nan) twice made run()
    raise 'the scheduler stopped before main finished (internal error)'."""
    out = child(PRE + textwrap.dedent("""
        def main():
            g = preempt.go(lambda: (preempt.sleep(0.1), "result")[1])
            print(outcome(g.join, 0.01))
            print(outcome(g.join, NAN))
            print(outcome(g.join, NAN))
            assert heap_is_sane()
            preempt.sleep(0.01)
            ch = preempt.Chan()
            preempt.go(ch.send, "ping")
            print(ch.recv(), g.join(), g.join(0))
            return "end"
        print(preempt.run(main))
    """), timeout=T)
    nan = ("ValueError: Goroutine.join(): timeout is NaN; pass a number of seconds "
           "(int or float) >= 0")
    assert out.splitlines() == ["JoinTimeout", nan, nan, "ping result result", "end"], out


def test_huge_finite_timer_does_not_break_the_idle_poll(child):
    """A timer 35 days out (past epoll's INT_MAX ms) while the hub idles waiting on an fd: the
    idle wait is capped (``_timers.POLL_MAX``) instead of raising OverflowError in the hub."""
    out = child(PRE + textwrap.dedent("""
        def main():
            r, w = os.pipe()
            threading.Timer(0.2, os.write, (w, b"x")).start()
            preempt.go(preempt.sleep, 35 * 86400.0)
            preempt.go(preempt.Event().wait, 40 * 86400)
            print(outcome(preempt.wait_readable, r))
        preempt.run(main)
    """), timeout=T)
    assert out.strip() == "ok True", out


def test_timer_heap_and_monitor_word_refuse_values_out_of_range(child):
    """Invariant 4 of ``_timers.py`` and the clamp of ``CoreMonitor.set_next_deadline``."""
    out = child(PRE + textwrap.dedent("""
        from preempt._runtime import _timers
        def main():
            s = _park.sched
            for when in (NAN, INF, 1e300):
                try:
                    _timers.add_timer(s, when, lambda a: None, None)
                    print("accepted", when)
                except preempt.PreemptError as e:
                    print("refused", "internal error" in str(e))
            assert heap_is_sane() and not s.timers
            m = s.monitor
            if hasattr(m, "sh"):                 # the C monitor
                got = []
                for t in (NAN, INF, 1e300, 9.3e9, -5.0, 0.0, None, 12.5):
                    m.set_next_deadline(t)
                    got.append(m.sh.next_deadline_ns)
                m.set_next_deadline(None)
                M = 2**63 - 1
                print("clamped", got == [M, M, M, M, 0, 0, M, 12_500_000_000], got)
            else:
                print("clamped True (no C monitor)")
            preempt.sleep(0.001)
        preempt.run(main, slice=0.01)
    """), timeout=T)
    assert out.split("\n")[:3] == ["refused True"] * 3, out
    assert "clamped True" in out, out


SLICE = PRE + """
def where():
    return _park.sched.slice
for name, v in [("nan", NAN), ("neg", -1), ("inf", INF), ("huge", 1e10), ("over", 3600.5),
                ("str", "10"), ("bool", True), ("complex", 1j)]:
    print(name, "=>", outcome(preempt.run, where, slice=v), flush=True)
for name, v in [("zero", 0), ("float", 0.005), ("frac", fractions.Fraction(1, 200)),
                ("cap", 3600), ("none", None)]:
    print(name, "=>", outcome(preempt.run, where, slice=v), flush=True)
for env in ["nan", "-5", "inf", "abc", "1e12", "0", "5", ""]:
    os.environ["PREEMPT_SLICE_MS"] = env
    try:
        r = f"ok {preempt.run(where)!r}"
    except preempt.PreemptError as e:
        r = f"PreemptError: {e}"
    print("env", repr(env), "=>", r, flush=True)
"""


def test_run_slice_and_preempt_slice_ms_are_validated(child):
    """Rule 5: a slice is 0 to 3600 s; NaN, negative, inf and above the cap are errors (they
    were accepted, NaN included)."""
    out = child(SLICE, timeout=T)
    lines = dict(line.split(" => ", 1) for line in out.splitlines())
    assert lines["nan"].startswith("ValueError: preempt.run(): slice is NaN"), out
    assert lines["neg"].startswith("ValueError: preempt.run(): slice must be >= 0"), out
    for name in ("inf", "huge", "over"):
        assert lines[name].startswith("ValueError: preempt.run(): slice must be finite and "
                                      "at most 3600 s"), (name, out)
    for name in ("str", "bool", "complex"):
        assert lines[name].startswith("TypeError: preempt.run(): slice must be a number"), out
    assert lines["zero"] == "ok 0.0" and lines["float"] == "ok 0.005", out
    assert lines["frac"] == "ok 0.005" and lines["cap"] == "ok 3600.0", out
    assert lines["none"] == "ok 0.01", out
    for env in ("nan", "-5", "inf", "1e12"):
        assert lines[f"env {env!r}"].startswith(
            f"PreemptError: PREEMPT_SLICE_MS={env!r} must be a finite number of milliseconds"), out
    assert "is not a number of milliseconds" in lines["env 'abc'"], out
    assert lines["env '0'"] == "ok 0.0" and lines["env '5'"] == "ok 0.005", out
    assert lines["env ''"] == "ok 0.01", out


THREADS = PRE + """
from preempt import threads
stop = threading.Event(); ready = threading.Event(); box = []
def pyloop():                        # Python code: never at an async safe-point
    box.append(threads.current()); ready.set()
    while not stop.is_set():
        time.sleep(0.001)
t = threading.Thread(target=pyloop, name="py-busy", daemon=True); t.start(); ready.wait()
h = box[0]
for name, v in [("nan", NAN), ("neg", -1), ("str", "1"), ("bool", True), ("complex", 1j)]:
    print("suspend", name, "=>", outcome(h.suspend, v), flush=True)
    print("stw", name, "=>", outcome(threads.stop_the_world, v), flush=True)
t0 = time.monotonic()
print("suspend", "short", "=>", outcome(h.suspend, fractions.Fraction(1, 20)),
      time.monotonic() - t0 < 5, flush=True)
stop.set(); t.join()
"""


def test_thread_suspend_and_stop_the_world_validate_their_timeout(child):
    """suspend(nan) used to retry for ever (a NaN deadline is never reached)."""
    out = child(THREADS, timeout=T)
    lines = dict(line.split(" => ", 1) for line in out.splitlines())
    for kind, what in (("suspend", "ThreadHandle.suspend()"),
                       ("stw", "preempt.threads.stop_the_world()")):
        assert lines[f"{kind} nan"].startswith(f"ValueError: {what}: timeout is NaN"), out
        assert lines[f"{kind} neg"].startswith(f"ValueError: {what}: timeout must be >= 0"), out
        for name in ("str", "bool", "complex"):
            assert lines[f"{kind} {name}"].startswith(f"TypeError: {what}: timeout must be "
                                                      "None (wait for ever) or a number"), out
    assert lines["suspend short"] == "ok False True", out


SUSPEND_FOREVER = """
import math, sys
from _childlib import *
lib = load(sys.argv[1]); preempt.preemptible(lib)
spinner = Worker(lambda: lib.pe_test_spin(1_000_000))
for v in (math.inf, sys.float_info.max, 10**400, 1e10):
    assert spinner.handle.suspend(v) is True
    spinner.handle.resume()
    with threads.stop_the_world(v) as stopped:
        assert spinner.handle in stopped and spinner.handle.is_suspended
spinner.stop()
print("OK")
"""


def test_thread_suspend_and_stop_the_world_wait_for_ever_on_inf_and_huge(child, torture_lib):
    """Rule 3: inf and huge timeouts wait until the thread parks (10**400 used to raise
    OverflowError computing the deadline)."""
    assert child(SUSPEND_FOREVER, torture_lib["path"], timeout=T).startswith("OK")
