"""Instructions per request, counted by callgrind: the plain-I/O figure that load cannot move.

wrk's requests/s on a shared 2-core machine move with whatever else runs there; the number of
instructions the server executes per request does not. So the hello-world server
(``_server.py``) runs under ``valgrind --tool=callgrind`` (PYTHONHASHSEED=0, every thread
counted) and a fixed-work client (``_client.py``, outside valgrind, in this process) drives it:
CONNS connections, each sending R requests one after another and waiting for each whole answer.
The server exits once all CONNS connections have ended (``--exit-after-conns``). This is done at
two sizes R1 < R2, and

    (instructions(R2) - instructions(R1)) / (CONNS * (R2 - R1))

is the cost of one keep-alive request: start-up, imports, the accepts, the connections' tasks
and the exit are the same in both runs and cancel out. Not counted: the kernel's work
(callgrind sees user space only) and the client.

Two figures, one per client mode (``_client.MODES``):

1. ``in turn``: one request in flight, so each request wakes an idle server and pays a whole
   trip through its poller. The same work on every run: the figure repeats to a fraction of a
   per cent, or a few per cent where start-up itself varies (uvloop's moves by ~20 million
   instructions, 5,000 per request at the default sizes). The load-independent figure.
2. ``side by side``: all CONNS requests in flight, so one poll serves several connections, as
   under load. Cheaper per request, but how many connections one poll returns depends on
   timing, and the figure moves from run to run (by up to ~20 %): ``--repeat`` shows how much.

preempt runs with ``slice=0`` here (preemption off, no monitor ticks): valgrind keeps the
real-time signal preempt's monitor uses (SIGRTMAX; ``preempt.run`` fails with EINVAL under it),
as in ``bench/instructions.py`` and ``tests/valgrind_runtime.py``. A hello-world handler never
runs long enough to be preempted; what is left out is the monitor's own timer work, paid per
slice of time, not per request.

Run: ``python -m preempt.bench.io --instructions [--kinds preempt,gevent]`` (needs valgrind;
about 45 s per runtime).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Sequence

from .._stats import table
from . import _launch
from ._client import MODES

CONNS = 50
SIZES = (20, 100)       # R1, R2: requests per connection
KINDS = ("preempt", "gevent")
REPEAT = 1              # pairs of runs per kind and mode (more show the side-by-side spread)
TIMEOUT = 300.0         # seconds a callgrind run may take before it counts as hung


def count(kind: str, requests: int, conns: int = CONNS, mode: str = "in turn") -> Dict[str, Any]:
    """One callgrind run: the ``kind`` server answers ``conns`` x ``requests`` requests, sent
    as client ``mode`` sends them (``_client.MODES``).

    Returns:
        {'instructions': total counted, 'seconds': wall time of the run}.

    Raises:
        RuntimeError: The server did not start, answered wrongly, or valgrind printed no count.
    """
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    t0 = time.perf_counter()
    srv = _launch.start(kind, exit_after_conns=conns, prefix=cmd, timeout=TIMEOUT,
                        args=["--slice", "0"] if kind == "preempt" else [],
                        env=dict(os.environ, PYTHONHASHSEED="0"))
    try:
        MODES[mode](srv.port, conns, requests, timeout=TIMEOUT)
        srv.proc.wait(timeout=TIMEOUT)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        err = srv.stop().strip().splitlines()
        raise RuntimeError(f"the callgrind run of the {kind} server ({conns} x {requests} "
                           f"requests, {mode}) failed: {e!r}; its last line on stderr: "
                           f"{err[-1] if err else '(none)'}") from e
    except BaseException:
        srv.stop()
        raise
    err = srv.stop()
    m = re.search(r"Collected : (\d+)", err)
    if srv.proc.returncode != 0 or m is None:
        raise RuntimeError(f"the callgrind run of the {kind} server ({conns} x {requests} "
                           f"requests) failed, exit status {srv.proc.returncode}: {err[-500:]}")
    return {"instructions": int(m.group(1)), "seconds": round(time.perf_counter() - t0, 1)}


def instructions(kinds: Sequence[str] = KINDS, sizes: Sequence[int] = SIZES,
                 conns: int = CONNS, repeat: int = REPEAT,
                 modes: Sequence[str] = tuple(MODES)) -> Dict[str, Any]:
    """Instructions per keep-alive request for each kind and client mode (module docstring),
    each pair of runs done ``repeat`` times.

    Returns:
        The settings and ``servers``: per kind, per mode ``{"per_request": mean of the
        repeats, "repeats": [one figure per pair], "runs": [{"R": count()} per pair]}``; or
        ``{"skipped": why}`` for a peer library that is not installed.

    Raises:
        RuntimeError: valgrind is not installed, or a run failed.
        ValueError: Sizes that are not R1 < R2, or an unknown mode.
    """
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed (Debian: apt-get install valgrind)")
    r1, r2 = sizes
    if not 0 < r1 < r2:
        raise ValueError(f"sizes must be two request counts R1 < R2, got {tuple(sizes)}")
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown client mode(s) {bad}; choose from {list(MODES)}")
    res: Dict[str, Any] = {"conns": conns, "sizes": [r1, r2], "repeat": repeat,
                           "modes": list(modes),
                           "python": f"{sys.implementation.name} {sys.version.split()[0]}",
                           "servers": {}}
    for kind in kinds:
        why = _launch.why_unavailable(kind)
        if why:
            res["servers"][kind] = {"skipped": why}
            continue
        res["servers"][kind] = {}
        for mode in modes:
            pairs, figures = [], []
            for _ in range(max(1, repeat)):
                runs = {str(r): count(kind, r, conns, mode) for r in (r1, r2)}   # str: JSON keys
                pairs.append(runs)
                figures.append(round((runs[str(r2)]["instructions"] -
                                      runs[str(r1)]["instructions"]) / (conns * (r2 - r1))))
            res["servers"][kind][mode] = {"per_request": round(sum(figures) / len(figures)),
                                          "repeats": figures, "runs": pairs}
    return res


def _cell(m: Dict[str, Any]) -> str:
    if len(m["repeats"]) == 1:
        return f"{m['per_request']:,}"
    return f"{m['per_request']:,} ({min(m['repeats']):,}-{max(m['repeats']):,})"


def instructions_report(res: Dict[str, Any]) -> str:
    r1, r2 = res["sizes"]
    modes = res["modes"]
    heads = {"in turn": "in turn (1 in flight)",
             "side by side": f"side by side ({res['conns']} in flight)"}
    rows: List[List[Any]] = []
    notes: List[str] = []
    for kind, s in res["servers"].items():
        if "skipped" in s:
            rows.append([kind] + ["skipped"] * len(modes))
            notes.append(f"  {kind} skipped: {s['skipped']}")
            continue
        rows.append([kind] + [_cell(s[m]) for m in modes])
    notes.append(f"  per request = (total at R={r2} - total at R={r1}) / ({res['conns']} x "
                 f"{r2 - r1}): start-up, accepts and exit cancel out; server, user space only;")
    notes.append("  in turn: every request wakes an idle server, the same work every run (what "
                 "moves is start-up, spread over the requests);")
    notes.append("  side by side: one poll serves several connections, and how many depends on "
                 "timing (it moves by up to ~20 %)"
                 + (f"; mean (min-max) of {res['repeat']} pairs" if res["repeat"] > 1 else ""))
    if "preempt" in res["servers"]:
        notes.append("  preempt runs with slice=0: valgrind keeps the real-time signal of "
                     "preempt's monitor")
    if "threads" in res["servers"]:
        notes.append("  threads: valgrind runs one thread at a time, so the GIL changes hands "
                     "differently than natively")
    return table(f"Instructions per keep-alive request (callgrind, {res['python']}; "
                 f"{res['conns']} connections x R requests, R = {r1} and {r2})",
                 ["server"] + [heads.get(m, m) for m in modes], rows) + "\n" + "\n".join(notes)
