"""The plain-I/O benchmark's parts (``preempt.bench.io``): wrk's output parsed, the handler's
cutting of requests, every installed runtime's server answering real requests byte for byte
(pipelined, ``Connection: close``, a reset peer), and, where the tools are installed, one short
wrk run of the preempt server and one small instruction count."""

from __future__ import annotations

import shutil
import socket
import struct

import pytest

from preempt.bench import io
from preempt.bench.io import _client, _launch, _server, _wrk

pytestmark = pytest.mark.timeout(60)

WRK = """Running 5s test @ http://127.0.0.1:40000/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   671.00us  201.13us   1.20s    91.02%
    Req/Sec    35.51k     2.01k   38.23k    80.00%
  Latency Distribution
     50%  670.00us
     75%  700.00us
     90%  750.00us
     99%    2.50ms
  176655 requests in 5.00s, 13.14MB read
  Socket errors: connect 0, read 7, write 1, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:  35330.12
Transfer/sec:      2.63MB
"""

WRK_CLEAN = """Running 1s test @ http://127.0.0.1:40000/
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   168.62us   44.72us   1.36ms   90.17%
    Req/Sec    59.82k     4.22k   70.17k    81.82%
  Latency Distribution
     50%  166.00us
     75%  177.00us
     90%  191.00us
     99%  340.00us
  65316 requests in 1.10s, 4.86MB read
Requests/sec:  59394.65
Transfer/sec:      4.42MB
"""

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
CLOSE_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def test_parse_wrk_reads_max_latency_and_every_error_count():
    r = io.parse_wrk(WRK)
    assert r["p50"] == 0.67 and r["p99"] == 2.5 and r["max"] == 1200.0 and r["avg"] == 0.671
    assert r["rps"] == 35330.12 and r["requests"] == 176655
    assert r["socket_errors"] == {"connect": 0, "read": 7, "write": 1, "timeout": 2}
    assert r["non2xx"] == 3 and _wrk.errors(r) == 13
    clean = io.parse_wrk(WRK_CLEAN)
    assert clean["max"] == 1.36 and clean["p99"] == 0.34 and _wrk.errors(clean) == 0
    assert "socket_errors" not in clean and "errors" not in clean


def test_answer_cuts_pipelined_requests_and_keeps_the_unfinished_one():
    out, rest, close = _server.answer(REQUEST * 3 + b"GET / HT")
    assert out == _server.RESPONSE * 3 and rest == b"GET / HT" and not close
    out, rest, close = _server.answer(REQUEST + CLOSE_REQUEST + REQUEST)
    assert out == _server.RESPONSE + _server.CLOSE_RESPONSE and close   # nothing after close
    assert _server.answer(b"") == (b"", b"", False)
    assert _server.answer(b"GET / HTTP/1.1\r\nCONNECTION: Close\r\n\r\n")[2]


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        data = s.recv(n - len(buf))
        if not data:
            break
        buf += data
    return buf


@pytest.mark.parametrize("kind", _server.KINDS)
def test_each_server_answers_pipelined_and_close_requests_exactly(kind):
    from conftest import need_module

    if kind in ("gevent", "uvloop"):
        need_module(kind)
    srv = _launch.start(kind, exit_after_conns=2, timeout=30)
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as c:
            c.sendall(REQUEST * 3)              # three pipelined requests in one segment
            assert _recv_exactly(c, 3 * len(_server.RESPONSE)) == _server.RESPONSE * 3
            c.sendall(CLOSE_REQUEST[:10])       # a request split over two reads
            c.sendall(CLOSE_REQUEST[10:])
            got = _recv_exactly(c, 1 << 16)     # the answer, then the server closes
            assert got == _server.CLOSE_RESPONSE, got
        # a peer that resets its connection (as wrk does when it stops) ends it quietly
        r = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        r.sendall(REQUEST * 2)
        assert _recv_exactly(r, len(_server.RESPONSE)) == _server.RESPONSE
        r.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        r.close()                               # unread data + linger 0: an RST
        assert srv.proc.wait(timeout=10) == 0   # both connections ended: --exit-after-conns 2
    finally:
        stderr = srv.stop()
    assert stderr == "", stderr                 # no traceback for the reset


def test_a_peer_that_is_not_installed_is_skipped_with_why(monkeypatch):
    monkeypatch.setitem(_launch._PEERS, "uvloop", "no_such_module_for_the_io_bench")
    res = io.measure(1, ("uvloop",)) if shutil.which("wrk") else None
    why = _launch.why_unavailable("uvloop")
    assert why == ("no_such_module_for_the_io_bench is not installed "
                   "(pip install no_such_module_for_the_io_bench)")
    if res is not None:
        assert res["servers"] == {"uvloop": {"skipped": why}}
        assert "uvloop skipped: no_such_module" in io.report(res)
    with pytest.raises(ValueError, match="unknown server kind 'tornado'"):
        _launch.why_unavailable("tornado")


def test_report_says_why_when_wrk_is_missing():
    assert "wrk is not installed" in io.report({"error": "wrk is not installed: ..."})


def test_a_short_wrk_run_of_the_preempt_server():
    from conftest import need_tool

    need_tool("wrk")
    res = io.measure(1, ("preempt",), conns=(10,), close_conns=10, warmup=1)
    s = res["servers"]["preempt"]
    assert "error" not in s and "stderr" not in s, s
    assert list(s["runs"]) == ["10", "10 close"], s
    for label, r in s["runs"].items():
        assert r["rps"] > 0 and r["requests"] > 0 and r["p50"] > 0, (label, r)
        assert r["max"] >= r["p99"] >= r["p50"], (label, r)
        assert r["close"] == (label == "10 close") and r["conns"] == 10
    text = io.report(res)
    assert "10 close" in text and "req/s" in text and "errors" in text


def test_io_is_an_extra_and_plotted(tmp_path):
    from preempt.bench.__main__ import BENCHES, EXTRA

    assert "io" in EXTRA and "io" not in BENCHES        # --quick and the default run skip it
    pytest.importorskip("matplotlib")
    from preempt.bench import _plots

    res = {"io": {"seconds": 1, "servers": {
        "preempt": {"runs": {"10": {"rps": 3e4, "p99": 0.8}, "50 close": {"rps": 2e4, "p99": 20}}},
        "uvloop": {"skipped": "uvloop is not installed"}}}}
    paths = _plots.write(res, str(tmp_path))
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["io.png"]


@pytest.mark.parametrize("mode", _client.MODES)
def test_both_clients_hold_every_connection_open_and_check_each_answer(mode):
    srv = _launch.start("preempt", exit_after_conns=4, timeout=30)
    try:
        assert _client.MODES[mode](srv.port, 4, 25, timeout=10) == {"connections": 4,
                                                                     "requests": 100}
        assert srv.proc.wait(timeout=10) == 0   # the 4 connections ended: the server exits
    finally:
        assert srv.stop() == ""


def test_instructions_per_request_cancel_start_up():
    from conftest import need_tool

    need_tool("valgrind")
    # tiny sizes here (5 connections, 2 and 42 requests each, one client mode); the real run
    # uses 50 x 20 and 100, both modes
    res = io.instructions(("preempt",), sizes=(2, 42), conns=5, modes=("in turn",))
    per = res["servers"]["preempt"]["in turn"]["per_request"]
    # a request is thousands of instructions at least (a wake-up, a read, a write, the
    # handler), and far below one run's start-up (~300 million) spread over 200 requests
    assert 2_000 < per < 500_000, res
    text = io.instructions_report(res)
    assert "preempt" in text and "in turn (1 in flight)" in text


def test_the_instructions_command_refuses_bad_sizes_and_modes(capsys):
    from preempt.bench.io.__main__ import main

    for bad in (["--sizes", "9,3"], ["--modes", "sideways"], ["--repeat", "0"]):
        with pytest.raises(SystemExit) as e:
            main(["--instructions", *bad])
        assert e.value.code == 2, bad
    err = capsys.readouterr().err
    assert "--sizes must be two request counts" in err and "--modes must be among" in err
