"""The benchmark harness itself, in its fast mode: well-formed results, skipped peers, bad options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _bench(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "preempt.bench", "--out", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


def test_quick_run_writes_every_benchmark_to_json(tmp_path):
    p = _bench(tmp_path, "--quick")
    assert p.returncode == 0, p.stderr
    files = list(tmp_path.glob("*/results.json"))
    assert len(files) == 1, files
    res = json.loads(files[0].read_text())
    assert res["machine"]["python"] and res["mode"] == "quick"
    assert "soak" not in res, "the soak is not part of the default (or --quick) run"
    for work in ("ticker", "native"):
        assert set(res[work]) == {"hog_s", "preempt", "asyncio", "gevent", "threading", "go"}
        assert res[work]["hog_s"] > 0 and res[work]["hog_s"] == res["ticker"]["hog_s"]
        pre = res[work]["preempt"]
        assert pre["late_us"] and all(isinstance(x, float) for x in pre["late_us"])
        assert pre["walls"] and pre["walls"][0] > 0
        for rt, r in res[work].items():      # every family reports the CPU its hogs used
            if isinstance(r, dict) and "skipped" not in r:
                assert len(r["cpu_per_hog"]) == len(r["walls"]) and r["cpu_per_hog"][0] > 0, (work, rt)
    assert res["native"]["preempt"]["path_latency"]["async_us"], "no async preemption measured"
    assert res["suspend"]["suspend: request -> parked (one-way)"]["n"] == 1000
    assert res["switch"]["chan ping-pong round trip"]["median"] > 0
    assert res["switch"]["thread-ring hop (503 goroutines)"]["median"] > 0
    assert res["sleepers"]["sleepers"] == 1000 and res["sleepers"]["beside"][0]["wakes"] > 0
    over = res["overhead"]["configs"]
    assert set(over) == {"off", "armed", "10 ms", "1 ms"}
    assert all(len(c["wall_s"]) == res["overhead"]["runs"] for c in over.values())
    assert all(r > 0 for r in res["overhead"]["ratio"].values())
    assert set(res["overhead"]["cpu_ratio"]) == set(over)
    mem = res["memory"]
    assert mem["goroutines"] == 10_000 and mem["bytes_per_goroutine"] > 0
    assert mem["python"]["goroutines"] == 10_000 and mem["python"]["bytes_per_goroutine"] > 0
    assert mem["go"].get("bytes_per_goroutine", 0) > 0 or "skipped" in mem["go"], mem["go"]
    # every table is printed, and the JSON path is named at the end
    assert "CPU s/hog" in p.stdout and "each hog is sized to" in p.stdout
    for title in ("Ticker lateness", "Preemption latency per path", "Many sleeping goroutines",
                  "Overhead of preemption", "Memory:", "Suspension latency", "Switch costs"):
        assert title in p.stdout
    assert str(files[0].resolve()) in p.stdout
    # one header line above the tables: command, date, CPython, machine
    import platform

    header = next(ln for ln in p.stdout.splitlines() if ln.startswith("Command: "))
    assert header.startswith(f"Command: python -m preempt.bench --out {tmp_path} --quick | date: ")
    assert f"| CPython {platform.python_version()} |" in header and " cores" in header
    assert res["machine"]["command"] == header.split(" | ")[0][len("Command: "):]
    pngs = sorted(x.name for x in files[0].parent.glob("*.png"))
    try:
        import matplotlib  # noqa: F401
        assert pngs == ["native_cdf.png", "switch_costs.png", "ticker_cdf.png"], pngs
    except ImportError:
        assert pngs == [] and "Plots skipped: matplotlib is not installed" in p.stdout


def test_missing_peer_is_reported_skipped(tmp_path):
    try:
        import gevent  # noqa: F401
        has_gevent = True
    except ImportError:
        has_gevent = False
    p = _bench(tmp_path, "--quick", "--only", "ticker")
    assert p.returncode == 0, p.stderr
    res = json.loads(next(tmp_path.glob("*/results.json")).read_text())
    if has_gevent:
        assert "skipped" not in res["ticker"]["gevent"]
    else:
        assert "gevent" in res["ticker"]["gevent"]["skipped"]
        assert "gevent skipped" in p.stdout
    import shutil

    from conftest import required_parts

    assert shutil.which("go") or "go" not in required_parts(), "go is required (PREEMPT_REQUIRE)"
    if shutil.which("go"):
        assert res["ticker"]["go"]["late_us"], res["ticker"]["go"]
    else:
        assert "go is not on PATH" in res["ticker"]["go"]["skipped"]


def test_soak_reports_nothing_lost(tmp_path):
    p = _bench(tmp_path, "--only", "soak", "--soak-seconds", "3", "--seed", "9")
    files = list(tmp_path.glob("*/results.json"))
    assert len(files) == 1, p.stdout + p.stderr
    res = json.loads(files[0].read_text())
    s = res["soak"]
    assert p.returncode == 0 and s["verdict"] == "PASS" and s["ok"], (s.get("failures"), p.stderr[-3000:])
    assert s["seed"] == 9 and s["seconds"] == 3 and s["failures"] == []
    assert set(res) == {"machine", "mode", "soak"}
    v = s["values"]
    assert v["sent"] > 0 and v["received"] == v["sent"] == v["relayed"]
    assert v["lost"] == v["duplicated"] == v["phantom"] == 0
    assert s["select"]["calls"] > 0 and s["select"]["timed_out"] > 0
    assert s["timeouts"]["zero"] > 0 and s["timeouts"]["tiny_under_100us"] > 0
    assert s["mutex"]["increments"] > 0 and s["mutex"]["counter"] == s["mutex"]["increments"]
    assert s["waitgroup"]["batches"] > 0 and s["event_wait"]["calls"] > 0
    j = s["join"]
    assert j["calls"] == j["joined"] + j["timed_out"] and j["timed_out"] > 0
    assert j["waiting_for_ever"] > 0 and j["unwound_at_end"] == j["waiting_for_ever"]
    assert s["sleep"]["calls"] > 0 and s["sleep"]["early"] == 0 and s["cpu"]["chunks"] > 0
    sig = s["signals"]
    assert sig["usr1_sent"] > 0 and sig["usr1_caught_in_main"] == sig["usr1_sent"]
    assert sig["usr1_in_worker"] == sig["usr1_lost"] == sig["usr1_duplicated"] == 0
    assert sig["usr2_sent"] > 0 and sig["usr2_handled"] == sig["usr2_sent"]
    f = s["fork"]
    assert f["forks"] > 0 and f["ok"] == f["forks"] and f["failed"] == f["hung"] == 0
    assert s["preemptions"]["sync"] > 0
    import preempt

    ok, why = preempt.available()       # the native worker is skipped only where it must be
    assert ("skipped" in s["native"]) == (not ok), (s["native"], why)
    if ok:
        assert s["native"]["calls"] > 0 and s["preemptions"]["async"] > 0
    assert "Soak: 3 s" in p.stdout and "verdict: PASS" in p.stdout
    assert "seed 9" in p.stderr
    p = _bench(tmp_path, "--only", "soak", "--soak-seconds", "0")
    assert p.returncode == 2 and "--soak-seconds must be" in p.stderr


def test_bad_options_give_clear_errors(tmp_path):
    p = _bench(tmp_path, "--only", "nonsense")
    assert p.returncode == 2 and "unknown benchmark(s) nonsense" in p.stderr
    p = _bench(tmp_path, "--n", "10")
    assert p.returncode == 2 and "--n must be at least 1000" in p.stderr
    p = _bench(tmp_path, "--quick", "--full")
    assert p.returncode == 2 and "not allowed with" in p.stderr


def test_aio_benchmark_reports_the_three_ways(tmp_path):
    p = _bench(tmp_path, "--only", "aio", "--quick", timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(next(tmp_path.glob("*/results.json")).read_text())["aio"]
    kinds = res["kinds"]
    base = {"preempt.aio.run", "asyncio.to_thread", "inline"}
    try:
        import uvloop  # noqa: F401
        base |= {"preempt.aio.run (uvloop)", "inline (uvloop)"}
    except ImportError:
        pass
    assert set(kinds) == base, kinds
    assert "1 ms ticker's lateness" in p.stdout and "preempt.aio.run" in p.stdout
    # behaviour, not speed: inline work freezes the loop, preempt.aio keeps it ticking
    assert kinds["inline"][0]["ticks"] == 0, kinds["inline"]
    assert kinds["preempt.aio.run"][0]["ticks"] > 10, kinds["preempt.aio.run"]


def test_instruction_counts_per_operation(monkeypatch):
    # python -m preempt.bench.instructions: callgrind counts at two sizes, the difference per
    # operation. Tiny sizes here; the real run uses 10-30 thousand operations.
    from conftest import need_tool

    need_tool("valgrind")
    from preempt.bench import instructions

    monkeypatch.setattr(instructions, "OPS", {"spawn+join": ("spawn_join", 200, 1200)})
    res = instructions.measure()
    # a spawn+join is a few thousand instructions at least (two switches, two objects), and
    # far below what 1,000 of them would be if start-up were not cancelled out
    assert 2_000 < res["spawn+join"] < 200_000, res
    assert "spawn+join" in instructions.report(res)


def test_memory_once_refuses_an_unknown_kind():
    import pytest

    from preempt.bench import overhead

    with pytest.raises(ValueError, match="kind must be 'builtin' or 'python', not 'lambda'"):
        overhead.memory_once(10, "lambda")


def test_overhead_prices_preemptions_that_happened():
    # the on/off ratio is only the price of preemption when preemptions happened: the shared
    # configurations take some, the baseline and the armed-but-never-due slice take none
    from preempt.bench import overhead

    res = overhead.measure_overhead(3_000_000, 1)
    c = res["configs"]
    assert c["10 ms"]["sync"][0] > 0 and c["1 ms"]["sync"][0] > c["10 ms"]["sync"][0], c
    assert c["off"]["sync"][0] == c["armed"]["sync"][0] == 0, c
    assert all(x["async"][0] == 0 for x in c.values()), c   # a Python loop: the eval breaker
    text = overhead.report(res, {})
    assert "sync preempt" in text and "preempted, 10 ms slice" in text


def test_switch_runs_every_program_beside_go(tmp_path):
    import shutil

    from preempt.bench import switch

    p = _bench(tmp_path, "--quick", "--only", "switch")
    assert p.returncode == 0, p.stderr
    res = json.loads(next(tmp_path.glob("*/results.json")).read_text())["switch"]
    ops = ("chan ping-pong round trip", switch.RING_OP, switch.CHAMENEOS_OP, switch.SIEVE_OP,
           "spawn+join (one at a time)")
    for op in ops:
        assert res[op]["median"] > 0 and res[op]["runs"] == 2, (op, res.get(op))
    assert "after one warm-up run" in p.stdout
    if shutil.which("go"):
        # go/switch.go runs every program preempt runs, under the same names: a ratio each
        assert set(ops) <= set(res["go"]), res["go"]
        for op in ops:
            line = next(ln for ln in p.stdout.splitlines() if ln.startswith(op + " "))
            assert line.rstrip().endswith("x"), line
    else:
        assert "go is not on PATH" in res["go"]["skipped"]


def test_sieve_counts_its_handoffs_and_finds_the_primes():
    import preempt
    from preempt.bench import switch

    # 2 goes to main (1); 3 through filter 2 to main (2); 4 dropped by filter 2 (1); 5 (3)
    assert [switch.sieve_handoffs(n) for n in (1, 2, 3)] == [1, 3, 7]
    assert switch.sieve_handoffs(1000) == 517_383
    last = preempt.run(lambda: switch._sieve(25, preempt.Chan, preempt.go), slice=0)
    assert last == 97
    assert switch.chameneos(200) > 0     # checks that the meetings add up, none with itself


def test_gevent_benchmark_reproduces_the_readme_rows(tmp_path):
    import pytest

    pytest.importorskip("gevent")
    p = _bench(tmp_path, "--only", "gevent", "--quick", timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(next(tmp_path.glob("*/results.json")).read_text())["gevent"]
    cases = res["cases"]
    assert list(cases) == ["gevent alone", "enable()", "enable(slice=0.002)",
                           "gevent alone, patch_all()", "enable(), patch_all()",
                           "enable(), libuv"], cases
    for name in cases:
        assert name in p.stdout
    assert "heartbeat ticks" in p.stdout and "late p99" in p.stdout and "late max" in p.stdout
    # behaviour, not speed: alone, nothing preempts the computing greenlets; enabled, they are
    # preempted and the heartbeat ticks between them, with and without patch_all, on libuv too
    alone, small = cases["gevent alone"][0], cases["enable(slice=0.002)"][0]
    assert cases["gevent alone, patch_all()"][0]["preemptions"] == 0
    assert alone["preemptions"] == 0 and small["preemptions"] > 0, (alone, small)
    for name in ("enable()", "enable(), patch_all()", "enable(), libuv"):
        case = cases[name][0]
        assert case["preemptions"] > 0 and case["ticks"] > alone["ticks"], (name, case, alone)
