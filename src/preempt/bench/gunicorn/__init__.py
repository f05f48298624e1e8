"""gunicorn's workers under CPU-heavy load: ``python -m preempt.bench --only gunicorn``.

One gunicorn arbiter per worker kind — ``-k sync``, ``-k gthread --threads 8``, ``-k gevent``
and ``-k preempt.gunicorn.Worker`` — serving ``app.py`` with ``-w 1`` and then ``-w 2``. For
each, ``wrk`` (Debian package ``wrk``; none of us wrote it) measures:

1. hello-world: ``wrk -t1 -c50`` on ``/``, requests/s and p50/p99;
2. under load: HEAVY_CONNS connections keep ``/heavy`` (~HEAVY_MS of pure Python per request,
   the HTTP benchmark's calibrated loop) busy while ``wrk --latency`` measures ``/light`` over
   LIGHT_CONNS connections: p50/p99 and requests/s, beside the heavy requests/s;
3. the workers the arbiter killed meanwhile ("WORKER TIMEOUT" in its log, ``--timeout 30``).

wrk is held to one CPU (``bench/http``); the workers may use every CPU. The sync worker serves
one connection at a time: a light request waits for the heavy ones before it, and wrk's
keep-alive connections hold it (its row shows what a sync deployment sees).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from .._stats import table
from ..http import _cpus, _free_port, _pin, calibrate, parse_wrk

HEAVY_CONNS = 4
LIGHT_CONNS = 2
HELLO_CONNS = 50
HEAVY_MS = 50.0
KINDS = {"sync": ["-k", "sync"],
         "gthread": ["-k", "gthread", "--threads", "8"],
         "gevent": ["-k", "gevent", "--worker-connections", "1000"],
         "preempt": ["-k", "preempt.gunicorn.Worker", "--worker-connections", "1000"]}


def why_unavailable(kind: str) -> Optional[str]:
    for mod in ("gunicorn", "gevent") if kind == "gevent" else ("gunicorn",):
        try:
            __import__(mod)
        except ImportError:
            return f"{mod} is not installed (pip install {mod})"
    return None


def _wrk(url: str, conns: int, seconds: float, latency: bool, cpus: Any) -> subprocess.Popen:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    return subprocess.Popen(cmd + (["--latency"] if latency else []) + [url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_pin(cpus))


def _start(kind: str, workers: int, iters: int, log: Any) -> tuple:
    port = _free_port()
    env = dict(os.environ, HEAVY_ITERS=str(iters))
    cmd = [sys.executable, "-m", "gunicorn", *KINDS[kind], "-w", str(workers), "-b",
           f"127.0.0.1:{port}", "--no-control-socket", "--timeout", "30", "--backlog", "2048",
           "preempt.bench.gunicorn.app:app"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(0.5 * workers)               # every worker booted
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("gunicorn did not start within 30 s")


def _one(kind: str, workers: int, iters: int, seconds: float, logdir: str) -> Dict[str, Any]:
    _, wrk_cpus = _cpus()
    path = os.path.join(logdir, f"gunicorn-{kind}-w{workers}.log")
    with open(path, "w") as log:
        try:
            proc, port = _start(kind, workers, iters, log)
        except RuntimeError as e:
            return {"error": str(e)}
        url = f"http://127.0.0.1:{port}"
        try:
            hello = parse_wrk(_wrk(url + "/", HELLO_CONNS, seconds, True, wrk_cpus)
                              .communicate(timeout=seconds + 60)[0])
            heavy = _wrk(url + "/heavy", HEAVY_CONNS, seconds + 2, False, wrk_cpus)
            time.sleep(1.0)                         # the heavy load is on
            light = parse_wrk(_wrk(url + "/light", LIGHT_CONNS, seconds, True, wrk_cpus)
                              .communicate(timeout=seconds + 60)[0])
            heavy_r = parse_wrk(heavy.communicate(timeout=seconds + 60)[0])
        except subprocess.TimeoutExpired:
            return {"error": "wrk did not finish"}
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = open(path).read()
    return {"hello_rps": hello.get("rps"), "hello_p50": hello.get("p50"),
            "hello_p99": hello.get("p99"), "light_p50": light.get("p50"),
            "light_p99": light.get("p99"), "light_rps": light.get("rps"),
            "light_errors": light.get("errors", ""), "heavy_rps": heavy_r.get("rps"),
            "kills": text.count("WORKER TIMEOUT"), "log": path}


def measure(seconds: float = 5.0, workers: Sequence[int] = (1, 2),
            kinds: Sequence[str] = tuple(KINDS), logdir: Optional[str] = None) -> Dict[str, Any]:
    """Every kind with each worker count (module docstring). Returns ``{"error": why}`` without
    wrk, else the settings and ``runs``: ``{"<kind> -w<N>": figures or {"error"|"skipped"}}``."""
    if shutil.which("wrk") is None:
        return {"error": "wrk is not installed: apt-get install wrk (Debian package)"}
    if why_unavailable("sync"):
        return {"error": why_unavailable("sync")}
    logdir = logdir or os.path.abspath("results")
    os.makedirs(logdir, exist_ok=True)
    iters = calibrate(HEAVY_MS)
    res: Dict[str, Any] = {"iters": iters, "heavy_ms": HEAVY_MS, "seconds": seconds,
                           "heavy_conns": HEAVY_CONNS, "light_conns": LIGHT_CONNS,
                           "hello_conns": HELLO_CONNS, "runs": {}}
    for w in workers:
        for kind in kinds:
            why = why_unavailable(kind)
            res["runs"][f"{kind} -w{w}"] = ({"skipped": why} if why else
                                            _one(kind, w, iters, seconds, logdir))
    return res


def report(res: Dict[str, Any]) -> str:
    title = "gunicorn workers"
    if "error" in res:
        return f"{title}: skipped — {res['error']}"
    rows: List[List[Any]] = []
    notes: List[str] = []
    for label, r in res["runs"].items():
        if "skipped" in r or "error" in r:
            rows.append([label] + ["-"] * 7)
            notes.append(f"  {label}: {r.get('skipped') or r.get('error')}")
            continue
        rows.append([label, r["light_p50"] or "-", r["light_p99"] or "-", r["light_rps"] or "-",
                     r["heavy_rps"] or "-", r["kills"], r["hello_rps"] or "-",
                     r["hello_p99"] or "-"])
        if r.get("light_errors"):
            notes.append(f"  {label} light: {r['light_errors']}")
    notes.append(f"  light: wrk -t1 -c{res['light_conns']} --latency on /light while "
                 f"wrk -c{res['heavy_conns']} keeps /heavy (~{res['heavy_ms']:g} ms of Python) "
                 f"busy, {res['seconds']:g} s; hello: wrk -t1 -c{res['hello_conns']} on / alone;")
    notes.append("  latency in ms; kills = \"WORKER TIMEOUT\" in the arbiter's log (--timeout 30)")
    return table(f"{title}: /light latency beside heavy requests, and hello-world",
                 ["worker", "light p50", "light p99", "light req/s", "heavy req/s", "kills",
                  "hello req/s", "hello p99"], rows) + "\n" + "\n".join(notes)
