"""Instructions per switch operation, counted by callgrind: the figure that noise cannot move.

Wall-clock timings on a shared 2-core VM move by 30 % from run to run (even the raw greenlet
round trip does); valgrind's callgrind counts the instructions executed, the same for the same
binary and input whatever else the machine does. Each operation of ``switch.py`` (thread-ring
hop, ping-pong round trip, spawn+join) runs in a child under callgrind at two sizes, and the
difference divided by the difference in operations is the cost of one operation, start-up and
imports cancelled out.

Run: ``python -m preempt.bench.instructions`` (needs valgrind; about a minute).

Compare figures from one installation only. The same code installed in two virtualenvs gave
ping-pong 6,617 in one and 6,880-7,484 in the other (2026-12-05), while every function of
``preempt._hot`` and greenlet executed exactly the same instructions in both: glibc malloc's
work differs with the process's environment and layout (``_int_malloc`` 8.6 against 10.3
million over 20,000 round trips). A change of a few per cent between installs is not a change
of the hand-off path; look at the per-function counts (``callgrind_annotate``) before
concluding one.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from typing import Dict

OPS = {
    # name: (the switch.py call, small size, large size)
    "thread-ring hop (503 goroutines)": ("thread_ring", 10_000, 30_000),
    "chan ping-pong round trip": ("pingpong", 5_000, 15_000),
    "spawn+join (one at a time)": ("spawn_join", 5_000, 15_000),
}


def _count(fn: str, n: int) -> int:
    code = f"from preempt.bench import switch; switch.{fn}({n})"
    p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                        sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=600, env=dict(os.environ, PYTHONHASHSEED="0"))
    m = re.search(r"Collected : (\d+)", p.stderr)
    if p.returncode != 0 or m is None:
        raise RuntimeError(f"callgrind run of {fn}({n}) failed: {p.stderr[-500:]}")
    return int(m.group(1))


def measure() -> Dict[str, float]:
    """{operation: instructions per operation}. Raises RuntimeError without valgrind."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed (Debian: apt-get install valgrind)")
    return {name: (_count(fn, b) - _count(fn, a)) / (b - a) for name, (fn, a, b) in OPS.items()}


def report(res: Dict[str, float]) -> str:
    from ._stats import table

    return table(f"Instructions per operation (callgrind, {sys.implementation.name} "
                 f"{sys.version.split()[0]})", ["operation", "instructions"],
                 [[k, f"{v:,.0f}"] for k, v in res.items()])


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    print(report(measure()))


if __name__ == "__main__":
    main()
