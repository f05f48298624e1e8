"""The wrk runs of the plain-I/O benchmark: ``measure()`` and its table, ``report()``.

For each server kind, one server process (``_launch.start``) serves every run in turn:

1. keep-alive, ``wrk -t1 -cN --latency`` for N in CONNS;
2. ``Connection: close`` (``-H "Connection: close"``) over CLOSE_CONNS connections: wrk opens
   a new connection per request, so accept, the new connection's task and close are measured
   with each request.

Before every measured run, a WARMUP_S run of the same shape that is thrown away: every runtime
gets the same warm-up (code paths run once, buffers and pools grown, the connections' tasks made
in keep-alive mode). With two or more CPUs the server is pinned to the first and wrk to the
others (``taskset``), so one core serves and the load generator never competes with it. wrk's
own figures are kept: requests/s, latency p50 and p99 (``--latency``), max, and its socket
errors (connect, read, write, timeout) and non-2xx answers, summed as "errors".
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any, Callable, Dict, List, Optional, Sequence

from .._stats import table
from ..http import parse_wrk
from . import _launch
from ._server import KINDS

CONNS = (10, 50, 200)
CLOSE_CONNS = 50
WARMUP_S = 1
WRK_TIMEOUT = "10s"     # wrk's per-request timeout: later answers count as timeout errors


def run_label(conns: int, close: bool) -> str:
    """The name of one run in results and tables: ``"50"`` or ``"50 close"``."""
    return f"{conns} close" if close else str(conns)


def _wrk(port: int, conns: int, seconds: int, close: bool, cpus: List[int]) -> str:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", WRK_TIMEOUT]
    if close:
        cmd += ["-H", "Connection: close"]
    if cpus:
        cmd = ["taskset", "-c", ",".join(map(str, cpus)), *cmd]
    p = subprocess.run([*cmd, f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                       timeout=seconds + 60)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed (exit status {p.returncode}): "
                           f"{(p.stderr or p.stdout).strip()[-200:]}")
    return p.stdout


def errors(r: Dict[str, Any]) -> int:
    """A parsed wrk run's socket errors and non-2xx answers, summed."""
    return sum(r.get("socket_errors", {}).values()) + r.get("non2xx", 0)


def _one(kind: str, runs: Sequence[tuple], seconds: int, warmup: int) -> Dict[str, Any]:
    srv_cpu, wrk_cpus = _launch.split_cpus()
    try:
        srv = _launch.start(kind, cpu=srv_cpu)
    except RuntimeError as e:
        return {"error": str(e)}
    out: Dict[str, Any] = {"runs": {}}
    try:
        for conns, close in runs:
            if warmup:
                _wrk(srv.port, conns, warmup, close, wrk_cpus)
            text = _wrk(srv.port, conns, seconds, close, wrk_cpus)
            r = parse_wrk(text)
            r.update(conns=conns, close=close, errors=errors(r))
            if "rps" not in r:
                r["error"] = f"wrk printed no Requests/sec: {text.strip()[-200:]}"
            out["runs"][run_label(conns, close)] = r
            if srv.proc.poll() is not None:
                out["error"] = f"the server exited (status {srv.proc.returncode}) during the run"
                break
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        out["error"] = str(e)
    finally:
        stderr = srv.stop().strip()
    if stderr:          # a handler's traceback: the runtime misbehaved, say so beside its figures
        out["stderr"] = stderr[-2000:]
    return out


def measure(seconds: int = 5, kinds: Sequence[str] = KINDS, conns: Sequence[int] = CONNS,
            close_conns: Optional[int] = CLOSE_CONNS, warmup: int = WARMUP_S,
            progress: Optional[Callable[[str], Any]] = None) -> Dict[str, Any]:
    """Every kind's server under wrk (module docstring). ``seconds`` and ``warmup`` are whole
    seconds (wrk's ``-d`` takes no fractions); ``close_conns=None`` leaves out the close run;
    ``progress(kind)`` is called before each kind's runs.

    Returns:
        ``{"error": why}`` without wrk, else the settings and ``servers``: per kind either
        ``{"skipped": why}`` (a peer library that is not installed), ``{"error": why}``, or
        ``{"runs": {label: parsed wrk figures}}`` (labels: :func:`run_label`).
    """
    if shutil.which("wrk") is None:
        return {"error": "wrk is not installed: apt-get install wrk (Debian package)"}
    seconds, warmup = max(1, int(round(seconds))), max(0, int(round(warmup)))
    runs = [(n, False) for n in conns] + ([(close_conns, True)] if close_conns else [])
    srv_cpu, wrk_cpus = _launch.split_cpus()
    res: Dict[str, Any] = {"seconds": seconds, "warmup_s": warmup, "conns": list(conns),
                           "close_conns": close_conns, "server_cpu": srv_cpu,
                           "wrk_cpus": wrk_cpus, "servers": {}}
    for kind in kinds:
        if progress:
            progress(kind)
        why = _launch.why_unavailable(kind)
        res["servers"][kind] = {"skipped": why} if why else _one(kind, runs, seconds, warmup)
    return res


def report(res: Dict[str, Any]) -> str:
    title = "Plain concurrent I/O: a hello-world HTTP/1.1 server"
    if "error" in res:
        return f"{title}: skipped — {res['error']}"
    rows: List[List[Any]] = []
    notes: List[str] = []
    for kind, s in res["servers"].items():
        if "skipped" in s:
            rows.append([kind, "skipped", "-", "-", "-", "-", "-"])
            notes.append(f"  {kind} skipped: {s['skipped']}")
            continue
        for label, r in s.get("runs", {}).items():
            rows.append([kind, label, r.get("rps", "-"), r.get("p50", "-"), r.get("p99", "-"),
                         r.get("max", "-"), r.get("errors", "-")])
        if "error" in s:
            rows.append([kind, "error", "-", "-", "-", "-", "-"])
            notes.append(f"  {kind}: {s['error']}")
        if "stderr" in s:
            notes.append(f"  {kind} printed on stderr: {s['stderr'].splitlines()[-1][:150]}")
    pin = (f"server pinned to CPU {res['server_cpu']}, wrk to CPU "
           f"{','.join(map(str, res['wrk_cpus']))}" if res.get("wrk_cpus")
           else "one CPU: server and wrk share it")
    notes.append(f"  wrk -t1 -cN -d{res['seconds']}s --latency after a {res['warmup_s']} s warm-up "
                 f"run each; \"N close\": -H 'Connection: close' (a new connection per request);")
    notes.append(f"  {pin}; latency in ms; errors = wrk's socket errors + non-2xx answers")
    return table(title, ["server", "conns", "req/s", "p50", "p99", "max", "errors"], rows) + \
        "\n" + "\n".join(notes)
