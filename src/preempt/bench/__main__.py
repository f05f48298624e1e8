"""``python -m preempt.bench [--n N]``: run preempt's benchmarks and print their tables."""

from __future__ import annotations

import argparse
import platform
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m preempt.bench", description=__doc__)
    p.add_argument("--n", type=int, default=10_000, help="suspensions to measure (default 10000)")
    args = p.parse_args(argv)
    if args.n < 1000:
        p.error("--n must be at least 1000 (percentiles need samples)")
    import preempt

    ok, why = preempt.available()
    print(f"preempt {preempt.__version__} on Python {platform.python_version()}, {platform.machine()}, "
          f"kernel {platform.release()}")
    if not ok:
        print(f"preemption unavailable: {why}")
        return 1
    from . import suspend

    print(suspend.report(suspend.measure(args.n)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
