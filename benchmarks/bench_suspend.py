"""Suspension latency (request -> parked) beside a bare signal round trip.

    python benchmarks/bench_suspend.py [--n 10000]

A thin runner around preempt.bench.suspend, which also runs installed: python -m preempt.bench.
"""

import sys

from preempt.bench.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["--only", "suspend", *sys.argv[1:]]))
