"""Ctrl-C latency: SIGINT -> run() raised KeyboardInterrupt, in five situations (native calls,
Python hogs, idle), a fresh process per trial.

    python benchmarks/bench_interrupt.py [--quick|--full]
"""

import sys

from preempt.bench.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["--only", "interrupt", *sys.argv[1:]]))
