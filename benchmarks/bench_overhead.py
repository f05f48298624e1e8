"""Overhead of preemption on the same CPU work (on vs off), memory of 100,000 parked goroutines,
and a hog's throughput beside 1,000 sleeping goroutines.

    python benchmarks/bench_overhead.py [--quick|--full]
"""

import sys

from preempt.bench.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["--only", "overhead,sleepers", *sys.argv[1:]]))
