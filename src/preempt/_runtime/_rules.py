"""The scheduler's constants and the goroutine states, defined once.

Python code imports them from here, and the C code gets them from here too: the hand-off path
(``csrc/pe_hot.c``) from ``_hot.init()`` (``chan.py`` passes them) and sysmon
(``csrc/pe_sysmon.c``) its I/O slice from ``pe_sysmon_start()`` (``_csysmon.py``). Nothing else
spells them (``_debug.py`` compares with these names, not with the strings). The exception is the ``REASON_*`` codes: they are the C core's (``preempt.h``)
because sysmon writes them; the copies below are checked against it (``test_core_sysmon.py``)
and serve where no C monitor runs.

This module imports nothing, so any module of the runtime may import it.
"""

from __future__ import annotations

# Goroutine states (``_g.py`` has the state machine). They are compared by identity, in Python
# (``g.state is RUNNING``) and in C (the objects init() was given).
RUNNABLE = "runnable"
RUNNING = "running"
WAITING = "waiting"
DEAD = "dead"

# Fairness rule 2 (``_park.py``): after this many consecutive ``runnext`` picks, the head of
# the run queue goes first (Go: a G in runnext inherits the time slice).
RUNNEXT_STREAK = 64

# While fds are watched, a G-to-G hand-off visits the hub every POLL_EVERY switches, so that
# the poller runs even while goroutines only hand off to each other (``_park.py``).
POLL_EVERY = 61

# A G woken by I/O runs this long (seconds) before the next G that the same poll woke
# (``_netpoll.py`` invariant 6); sysmon asks to preempt for a ready fd after as long.
IO_SLICE_NS = 500_000
IO_SLICE = IO_SLICE_NS / 1e9

# How many I/O slices a G woken by I/O gets ahead of the preempted Gs per wake
# (``_netpoll.py`` invariant 6): cut short by a timer or I/O request once it had one, it
# queues behind them. A timer it did not have the whole slice of does not count.
IO_TURNS = 1

# Why the monitor asked for a preemption (``monitor.req_reason()``; preempt.h PE_REASON_*).
REASON_SLICE = 1        # the G used its slice
REASON_TIMER = 2        # a timer is due while the G computes
REASON_IO = 3           # an fd became ready while the G computes
