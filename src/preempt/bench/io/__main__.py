"""``python -m preempt.bench.io``: the plain-I/O benchmark on its own.

    python -m preempt.bench.io                       # the wrk runs (as --only io does)
    python -m preempt.bench.io --quick               # 1 s runs
    python -m preempt.bench.io --instructions        # instructions per request (valgrind)
    python -m preempt.bench.io --instructions --kinds preempt,gevent,asyncio --modes in-turn

Prints the table; ``--json FILE`` also writes the results there. ``python -m preempt.bench
--only io`` runs the wrk part inside the full harness (results.json, plots).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._instructions import CONNS as I_CONNS
from ._instructions import KINDS as I_KINDS
from ._client import MODES
from ._instructions import REPEAT, SIZES, instructions, instructions_report
from ._server import KINDS
from ._wrk import measure, report


def main(argv: Any = None) -> int:
    p = argparse.ArgumentParser(prog="python -m preempt.bench.io", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instructions", action="store_true",
                   help="count instructions per request under callgrind instead of running wrk")
    p.add_argument("--kinds", default=None,
                   help=f"comma-separated servers among {','.join(KINDS)} (default: all for "
                        f"wrk, {','.join(I_KINDS)} for --instructions)")
    p.add_argument("--quick", action="store_true", help="1 s wrk runs")
    p.add_argument("--seconds", type=int, default=5, help="seconds per wrk run (default 5)")
    p.add_argument("--sizes", default=None,
                   help=f"--instructions: R1,R2 requests per connection (default "
                        f"{SIZES[0]},{SIZES[1]}; {I_CONNS} connections)")
    p.add_argument("--repeat", type=int, default=REPEAT,
                   help=f"--instructions: pairs of runs per server and mode (default {REPEAT})")
    p.add_argument("--modes", default=",".join(m.replace(" ", "-") for m in MODES),
                   help="--instructions: client modes, among in-turn (one request in flight) "
                        "and side-by-side (one per connection); default: both")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the results here")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error(f"--repeat must be at least 1, got {args.repeat}")
    default = I_KINDS if args.instructions else KINDS
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip()) if args.kinds else default
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        p.error(f"unknown server(s) {', '.join(bad)}; choose from {', '.join(KINDS)}")
    if args.instructions:
        sizes = SIZES
        if args.sizes:
            try:
                sizes = tuple(int(x) for x in args.sizes.split(","))
            except ValueError:
                sizes = ()
            if len(sizes) != 2 or not 0 < sizes[0] < sizes[1]:
                p.error(f"--sizes must be two request counts R1,R2 with 0 < R1 < R2, "
                        f"got {args.sizes!r}")
        modes = tuple(m.strip().replace("-", " ") for m in args.modes.split(",") if m.strip())
        if not modes or any(m not in MODES for m in modes):
            p.error(f"--modes must be among {', '.join(m.replace(' ', '-') for m in MODES)}, "
                    f"got {args.modes!r}")
        try:
            res = instructions(kinds, sizes, repeat=args.repeat, modes=modes)
        except RuntimeError as e:
            print(f"instructions per request: {e}", file=sys.stderr)
            return 1
        text = instructions_report(res)
    else:
        res = measure(1 if args.quick else args.seconds, kinds)
        text = report(res)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
