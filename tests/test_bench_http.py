"""The HTTP benchmark's parts: wrk's output parsed, and (where wrk is installed) one short run
of the preempt server under the heavy load, which must serve both endpoints."""

from __future__ import annotations

import pytest

from preempt.bench import http

pytestmark = pytest.mark.timeout(120)

WRK = """Running 5s test @ http://127.0.0.1:18083/light
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.06ms  120.31us   5.00ms   95.12%
  Latency Distribution
     50%    1.07ms
     75%    1.09ms
     90%  812.00us
     99%    1.52s
  9330 requests in 5.00s, 401.00KB read
  Socket errors: connect 0, read 1, write 0, timeout 0
Requests/sec:   1865.53
Transfer/sec:     80.20KB
"""


def test_parse_wrk_reads_percentiles_in_any_unit_and_errors():
    r = http.parse_wrk(WRK)
    assert r["p50"] == 1.07 and r["p90"] == 0.812 and r["p99"] == 1520.0
    assert r["rps"] == 1865.53
    assert r["errors"].startswith("Socket errors")


def test_calibrated_work_is_positive():
    assert http.calibrate(1.0) >= 1


def test_a_short_run_serves_both_endpoints():
    from conftest import need_tool

    need_tool("wrk")
    res = http.measure(1.0, ("preempt",))
    r = res["servers"]["preempt"]
    assert "error" not in r, r
    assert r["rps"] > 0 and r["heavy_rps"] > 0 and r["p99"] > 0, r
    assert "preempt" in http.report(res)


def test_report_says_why_when_wrk_is_missing():
    assert "wrk is not installed" in http.report({"error": "wrk is not installed: ..."})
