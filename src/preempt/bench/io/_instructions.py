"""Instructions per request, counted by callgrind: the plain-I/O figure that load cannot move.

wrk's requests/s on a shared 2-core machine move with whatever else runs there; the number of
instructions the server executes per request does not. So the hello-world server
(``_server.py``) runs under ``valgrind --tool=callgrind`` (PYTHONHASHSEED=0, every thread
counted) and the deterministic client (``_client.py``, outside
valgrind, in this process) drives it: CONNS connections side by side, each sending R requests
one after another and waiting for each whole answer. The server exits once all CONNS
connections have ended (``--exit-after-conns``). This is done at two sizes R1 < R2, and

    (instructions(R2) - instructions(R1)) / (CONNS * (R2 - R1))

is the cost of one keep-alive request: start-up, imports, the accepts, the connections' tasks
and the exit are the same in both runs and cancel out.

What is left is per request: the wake-up of the connection's task by the poller, one read, the
handler's few lines, one write. Not counted: the kernel's work (callgrind sees user space only)
and the client. preempt runs with ``slice=0`` here (preemption off, no monitor ticks): valgrind
keeps the real-time signals preempt's monitor uses (SIGRTMAX; ``preempt.run`` fails with
EINVAL under it), as ``bench/instructions.py`` and ``tests/valgrind_runtime.py`` also do. A
hello-world handler never runs long enough to be preempted, so what is left out is the
monitor's own timer work, which is paid per slice of time, not per request.

The pair of runs is done REPEAT times and the mean reported with each pair's figure: with 50
connections, how many are ready when the server polls depends on timing, and a poll that
returns more of them costs less per request; the pairs' spread (a few per cent) shows how much.

Run: ``python -m preempt.bench.io --instructions [--kinds preempt,gevent]`` (needs valgrind;
about 40 s per runtime).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from typing import Any, Dict, List, Sequence

from .._stats import table
from . import _launch
from ._client import drive

CONNS = 50
SIZES = (20, 100)       # R1, R2: requests per connection
KINDS = ("preempt", "gevent")
REPEAT = 2              # pairs of runs per kind: their spread shows what timing moves
TIMEOUT = 300.0         # seconds a callgrind run may take before it counts as hung


def count(kind: str, requests: int, conns: int = CONNS) -> Dict[str, Any]:
    """One callgrind run: the ``kind`` server answers ``conns`` x ``requests`` requests.

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
        drive(srv.port, conns, requests, timeout=TIMEOUT)
        srv.proc.wait(timeout=TIMEOUT)
    except Exception:
        err = srv.stop().strip().splitlines()
        if err:
            print(f"(the {kind} server's last words: {err[-1]})", file=sys.stderr)
        raise
    err = srv.stop()
    m = re.search(r"Collected : (\d+)", err)
    if srv.proc.returncode != 0 or m is None:
        raise RuntimeError(f"the callgrind run of the {kind} server ({conns} x {requests} "
                           f"requests) failed, exit status {srv.proc.returncode}: {err[-500:]}")
    return {"instructions": int(m.group(1)), "seconds": round(time.perf_counter() - t0, 1)}


def instructions(kinds: Sequence[str] = KINDS, sizes: Sequence[int] = SIZES,
                 conns: int = CONNS, repeat: int = REPEAT) -> Dict[str, Any]:
    """Instructions per keep-alive request for each kind (module docstring), the pair of runs
    done ``repeat`` times.

    Returns:
        The settings and ``servers``: per kind ``{"per_request": mean of the repeats,
        "repeats": [one figure per repeat], "runs": [{"R": count()} per repeat]}``, or
        ``{"skipped": why}`` for a peer library that is not installed.

    Raises:
        RuntimeError: valgrind is not installed, or a run failed.
    """
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed (Debian: apt-get install valgrind)")
    r1, r2 = sizes
    if not 0 < r1 < r2:
        raise ValueError(f"sizes must be two request counts R1 < R2, got {tuple(sizes)}")
    res: Dict[str, Any] = {"conns": conns, "sizes": [r1, r2], "repeat": repeat,
                           "python": f"{sys.implementation.name} {sys.version.split()[0]}",
                           "servers": {}}
    for kind in kinds:
        why = _launch.why_unavailable(kind)
        if why:
            res["servers"][kind] = {"skipped": why}
            continue
        pairs, figures = [], []
        for _ in range(max(1, repeat)):
            runs = {str(r): count(kind, r, conns) for r in (r1, r2)}     # str: JSON's keys
            pairs.append(runs)
            figures.append(round((runs[str(r2)]["instructions"] - runs[str(r1)]["instructions"])
                                 / (conns * (r2 - r1))))
        res["servers"][kind] = {"per_request": round(sum(figures) / len(figures)),
                                "repeats": figures, "runs": pairs}
    return res


def instructions_report(res: Dict[str, Any]) -> str:
    r1, r2 = res["sizes"]
    rows: List[List[Any]] = []
    notes: List[str] = []
    for kind, s in res["servers"].items():
        if "skipped" in s:
            rows.append([kind, "skipped", "-", "-", "-"])
            notes.append(f"  {kind} skipped: {s['skipped']}")
            continue
        first = s["runs"][0]
        rows.append([kind, f"{s['per_request']:,}", " / ".join(f"{x:,}" for x in s["repeats"]),
                     f"{first[str(r1)]['instructions']:,}", f"{first[str(r2)]['instructions']:,}"])
    notes.append(f"  per request = (total at R={r2} - total at R={r1}) / ({res['conns']} x "
                 f"{r2 - r1}): start-up, accepts and exit cancel out; user space only, server "
                 f"only;")
    notes.append(f"  {res['repeat']} pair(s) of runs, their mean; the pairs differ by how many "
                 "ready connections one poll returns (timing), not by the code run")
    if "preempt" in res["servers"]:
        notes.append("  preempt runs with slice=0: valgrind keeps the real-time signal of "
                     "preempt's monitor")
    if "threads" in res["servers"]:
        notes.append("  threads: valgrind runs one thread at a time, so the GIL is handed over "
                     "less often than natively")
    return table(f"Instructions per keep-alive request (callgrind, {res['python']}; "
                 f"{res['conns']} connections x R requests, R = {r1} and {r2})",
                 ["server", "per request", "each pair", f"total, R={r1}", f"total, R={r2}"],
                 rows) + "\n" + "\n".join(notes)
