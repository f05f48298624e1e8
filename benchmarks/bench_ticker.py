"""Ticker lateness under 4 CPU-bound Python tasks, and under 4 native tasks, beside asyncio,
gevent, threading and Go; plus preempt's per-path preemption latency.

    python benchmarks/bench_ticker.py [--quick|--full]
"""

import sys

from preempt.bench.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["--only", "ticker,native,latency", *sys.argv[1:]]))
