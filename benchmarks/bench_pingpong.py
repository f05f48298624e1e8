"""Channel ping-pong and spawn+join costs: python benchmarks/bench_pingpong.py [--rounds N]."""

from preempt.bench.switch import main

if __name__ == "__main__":
    main()
