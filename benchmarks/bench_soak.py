"""The soak: signals, fork, random timeouts and abandoned goroutines for N seconds, checked for
anything lost, duplicated or hung.

    python benchmarks/bench_soak.py [--soak-seconds 60] [--seed S]
"""

import sys

from preempt.bench.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["--only", "soak", *sys.argv[1:]]))
