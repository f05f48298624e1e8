"""The goroutine runtime: pure Python, one M (the thread that called ``preempt.run()``).

Layering (trio's ``_core`` habit): this package is self-contained and private. The public modules
(``preempt.chan``, ``preempt.sync``, ``preempt.time``, ``preempt.io``, ``preempt.offload``) build
on it; ``preempt/__init__.py`` re-exports their names.

Files, one concept each:

- ``_g.py``       the G (``preempt.Goroutine``): a greenlet plus state, id, name, result.
- ``_park.py``    THE ONLY place a G gives up the CPU: ``park()``, ``ready()``, ``gosched()``,
                  the G-exit hand-off. Every blocking primitive ends up here.
- ``_sched.py``   the scheduler: run queue + ``runnext``, the hub greenlet, ``run()``/``go()``,
                  deadlock detection, killing leftover Gs, SIGINT delivery.
- ``_timers.py``  the timer heap and ``sleep``.
- ``_waitq.py``   the waiter (Go's sudog) and wait queue (trio's parking lot).
- ``_netpoll.py`` the hub's epoll: fd readiness, offload completions, the wake-up eventfd.
- ``_preempt.py`` the synchronous-preemption hook and its defer rules.
- ``_sysmon.py``  the monitor interface and its pure-Python (setitimer) fallback.
- ``_local.py``   G-local storage.
- ``_debug.py``   ``stats()`` and ``dump()``.
"""
