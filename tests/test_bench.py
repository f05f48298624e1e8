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
    for work in ("ticker", "native"):
        assert set(res[work]) == {"preempt", "asyncio", "gevent", "threading", "go"}
        pre = res[work]["preempt"]
        assert pre["late_us"] and all(isinstance(x, float) for x in pre["late_us"])
        assert pre["walls"] and pre["walls"][0] > 0
    assert res["native"]["preempt"]["path_latency"]["async_us"], "no async preemption measured"
    assert res["suspend"]["suspend: request -> parked (one-way)"]["n"] == 1000
    assert res["switch"]["chan ping-pong round trip"]["median"] > 0
    assert res["sleepers"]["sleepers"] == 1000 and res["sleepers"]["beside"][0]["wakes"] > 0
    assert res["overhead"]["ratio"] > 0 and len(res["overhead"]["on_s"]) == len(res["overhead"]["off_s"])
    assert res["memory"]["goroutines"] == 10_000 and res["memory"]["bytes_per_goroutine"] > 0
    # every table is printed, and the JSON path is named at the end
    for title in ("Ticker lateness", "Preemption latency per path", "Many sleeping goroutines",
                  "Overhead of preemption", "Memory:", "Suspension latency", "Switch costs"):
        assert title in p.stdout
    assert str(files[0].resolve()) in p.stdout
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

    if shutil.which("go"):
        assert res["ticker"]["go"]["late_us"], res["ticker"]["go"]
    else:
        assert "go is not on PATH" in res["ticker"]["go"]["skipped"]


def test_bad_options_give_clear_errors(tmp_path):
    p = _bench(tmp_path, "--only", "nonsense")
    assert p.returncode == 2 and "unknown benchmark(s) nonsense" in p.stderr
    p = _bench(tmp_path, "--n", "10")
    assert p.returncode == 2 and "--n must be at least 1000" in p.stderr
    p = _bench(tmp_path, "--quick", "--full")
    assert p.returncode == 2 and "not allowed with" in p.stderr
