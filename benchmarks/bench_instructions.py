"""Instructions per switch operation under callgrind: python benchmarks/bench_instructions.py."""

from preempt.bench.instructions import main

if __name__ == "__main__":
    main()
