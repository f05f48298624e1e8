"""preempt's benchmarks, runnable installed: ``python -m preempt.bench``.

Each module measures one thing and returns plain data; ``__main__`` prints the tables. The
files in the repository's ``benchmarks/`` folder are thin runners around these modules.
"""
