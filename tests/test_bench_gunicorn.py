"""The gunicorn benchmark (``python -m preempt.bench --only gunicorn``): its table from canned
figures, and — where wrk, gunicorn and gevent are installed — one quick run through the
benchmark's command line, which must measure every worker kind and print the table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import need_module, need_tool
from preempt.bench import gunicorn as gbench

pytestmark = pytest.mark.timeout(180)

FIGURES = {"hello_rps": 10000.0, "hello_p50": 1.0, "hello_p99": 3.0, "light_p50": 0.5,
           "light_p99": 1.2, "light_rps": 500.0, "light_errors": "", "heavy_rps": 19.5,
           "kills": 0}


def test_report_has_a_row_per_run_and_says_why_one_is_missing():
    res = {"iters": 1, "heavy_ms": 50.0, "seconds": 5.0, "heavy_conns": 4, "light_conns": 2,
           "hello_conns": 50, "runs": {"preempt -w1": FIGURES,
                                      "gevent -w1": {"skipped": "gevent is not installed"}}}
    text = gbench.report(res)
    assert "preempt -w1" in text and "1.2" in text and "10000" in text
    assert "gevent -w1: gevent is not installed" in text


def test_report_without_wrk_says_so():
    assert "skipped — wrk is not installed" in gbench.report({"error": "wrk is not installed"})


def test_quick_run_measures_every_worker_kind(tmp_path):
    need_tool("wrk")
    need_module("gunicorn")
    need_module("gevent")
    p = subprocess.run([sys.executable, "-m", "preempt.bench", "--quick", "--only", "gunicorn",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=150)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "gunicorn workers: /light latency" in p.stdout
    rows = {line.split()[0]: line.split() for line in p.stdout.splitlines()
            if line.endswith(tuple("0123456789-")) and " -w1 " in line}
    assert set(rows) == {"sync", "gthread", "gevent", "preempt"}, p.stdout
    # preempt's worker answers light requests beside the heavy ones and is never killed (a
    # cooperative peer may answer none in a 1 s run: its figures are not checked)
    assert rows["preempt"][2] != "-" and rows["preempt"][6] == "0", p.stdout
