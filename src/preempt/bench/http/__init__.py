"""HTTP under CPU-heavy load: ``python -m preempt.bench --only http``.

The same small HTTP/1.1 server (``_server.py``) runs on preempt (``preempt.net.serve_tcp``),
gevent (``StreamServer``), asyncio (``asyncio.start_server``) and threads (the stdlib's
``ThreadingHTTPServer``), each in its own process. ``wrk`` — a load generator none of us wrote
(Debian package ``wrk``) — keeps HEAVY_CONNS connections busy on ``/heavy`` (~20 ms of pure
Python per request, the same loop everywhere) and meanwhile measures ``/light`` over
LIGHT_CONNS connections: its p50/p90/p99 latency and requests/s, and the heavy requests/s
(the CPU work done meanwhile). With two or more CPUs, wrk is held to one of them.
Cooperative servers (gevent, asyncio) answer a light request
only when the heavy work in front of it has finished; threads pay the GIL's 5 ms switch
interval; preempt preempts the heavy handlers about 0.5 ms after a request arrives
(``_runtime/_netpoll.py`` invariant 6).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from .._stats import table

HEAVY_CONNS = 4
LIGHT_CONNS = 2
HEAVY_MS = 20.0
KINDS = ("preempt", "gevent", "asyncio", "threads")


def calibrate(ms: float = HEAVY_MS) -> int:
    """Iterations of ``_server.work`` that take about ``ms`` on this interpreter."""
    from ._server import work

    n = 20000
    while True:
        t0 = time.perf_counter()
        work(n)
        dt = time.perf_counter() - t0
        if dt > 0.05:
            return max(1, int(n * ms / 1000.0 / dt))
        n *= 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(out: str) -> Dict[str, Any]:
    """wrk --latency output -> {'p50': ms, 'p90': ms, 'p99': ms, 'rps': float, 'errors': str},
    plus what the plain-I/O benchmark (``bench/io``) reads: 'avg' and 'max' (ms, the "Latency"
    row of Thread Stats), 'requests' (the total), 'socket_errors' ({'connect', 'read',
    'write', 'timeout'}: counts) and 'non2xx' (a count), each only when wrk printed it.
    'errors' is the first of wrk's error lines, as printed."""
    r: Dict[str, Any] = {}
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            r[f"p{pct}"] = round(float(m.group(1)) * _UNITS[m.group(2)], 3)
    m = re.search(r"^\s*Latency\s+([\d.]+)(us|ms|s)\s+[\d.]+(?:us|ms|s)\s+([\d.]+)(us|ms|s)",
                  out, re.M)
    if m:
        r["avg"] = round(float(m.group(1)) * _UNITS[m.group(2)], 3)
        r["max"] = round(float(m.group(3)) * _UNITS[m.group(4)], 3)
    m = re.search(r"^\s*(\d+) requests in ", out, re.M)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if m:
        r["errors"] = m.group(0)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                      (int(x) for x in m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    return r


def _cpus() -> tuple:
    """(the server's CPUs, wrk's CPUs). wrk is held to one CPU, so that the load generator
    cannot take more than one core; the server may use every CPU, as a server would (only
    preempt has a second thread that needs one: its monitor, like Go's sysmon)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, None
    if len(cpus) < 2:
        return None, None
    return None, {cpus[0]}


def _pin(cpus: Optional[set]) -> Any:
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def _one(kind: str, iters: int, seconds: float) -> Dict[str, Any]:
    port = _free_port()
    env = dict(os.environ)
    srv_cpus, wrk_cpus = _cpus()
    srv = subprocess.Popen([sys.executable, "-m", "preempt.bench.http._server", kind, str(port),
                            str(iters)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env, preexec_fn=_pin(srv_cpus))
    try:
        line = srv.stdout.readline() if srv.stdout else ""
        if line.strip() != "ready":
            err = srv.stderr.read() if srv.stderr else ""
            return {"error": (err.strip().splitlines() or ["did not start"])[-1][:100]}
        url = f"http://127.0.0.1:{port}"
        heavy = subprocess.Popen(["wrk", "-t1", f"-c{HEAVY_CONNS}", f"-d{seconds + 2:g}s",
                                  "--timeout", "10s", url + "/heavy"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 preexec_fn=_pin(wrk_cpus))
        time.sleep(1.0)                     # the heavy load is on
        light = subprocess.run(["wrk", "-t1", f"-c{LIGHT_CONNS}", f"-d{seconds:g}s", "--latency",
                                "--timeout", "10s", url + "/light"],
                               capture_output=True, text=True, timeout=seconds + 30,
                               preexec_fn=_pin(wrk_cpus))
        hout, _ = heavy.communicate(timeout=seconds + 30)
        res = parse_wrk(light.stdout)
        res["heavy_rps"] = parse_wrk(hout).get("rps")
        return res
    finally:
        srv.kill()
        srv.wait()


def _available(kind: str) -> Optional[str]:
    if kind == "gevent":
        try:
            import gevent  # noqa: F401
        except ImportError:
            return "gevent is not installed (pip install gevent)"
    return None


def measure(seconds: float = 5.0, kinds: tuple = KINDS) -> Dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"error": "wrk is not installed: apt-get install wrk (Debian package)"}
    iters = calibrate()
    res: Dict[str, Any] = {"iters": iters, "heavy_ms": HEAVY_MS, "heavy_conns": HEAVY_CONNS,
                           "light_conns": LIGHT_CONNS, "seconds": seconds, "servers": {}}
    for kind in kinds:
        why = _available(kind)
        res["servers"][kind] = {"error": why} if why else _one(kind, iters, seconds)
    return res


def report(res: Dict[str, Any]) -> str:
    if "error" in res:
        return f"HTTP under CPU-heavy load: skipped — {res['error']}"
    rows: List[List[Any]] = []
    for kind, r in res["servers"].items():
        if "error" in r:
            rows.append([kind, "-", "-", "-", "-", "-", r["error"]])
        else:
            rows.append([kind, r.get("p50", "-"), r.get("p90", "-"), r.get("p99", "-"),
                         r.get("rps", "-"), r.get("heavy_rps", "-"), r.get("errors", "")])
    return table(f"HTTP: /light latency (ms) while {res['heavy_conns']} connections keep "
                 f"/heavy (~{res['heavy_ms']:g} ms of Python each) busy; wrk, "
                 f"{res['light_conns']} light connections, {res['seconds']:g} s",
                 ["server", "p50", "p90", "p99", "light req/s", "heavy req/s", "notes"], rows)
