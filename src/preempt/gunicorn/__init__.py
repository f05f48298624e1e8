"""Serve WSGI applications with gunicorn: ``gunicorn -k preempt.gunicorn.Worker app:app``.

A CPU-heavy request is the classic failure of a gunicorn deployment. With the gevent worker one
computing request freezes every other request on that worker and its heartbeat, so the arbiter
kills the worker ("WORKER TIMEOUT"); the sync and gthread workers queue the others behind it.
This worker runs one ``preempt.run()`` per worker process and a goroutine per connection on
preempt's sockets, with gunicorn's own HTTP parser and WSGI environ (it builds on
``base_async.AsyncWorker``, as gunicorn's gevent worker does). A computing request is preempted,
so light requests are answered meanwhile and the heartbeat keeps beating; and a request can be
*cancelled* while it computes: ``PREEMPT_REQUEST_TIMEOUT=<seconds>`` in the worker's environment
(``gunicorn -e PREEMPT_REQUEST_TIMEOUT=2 ...``) answers a request still running after that long
with a 503 and logs where it was stopped.

What it cannot do: preempt C code that holds the GIL (a long regex, a big ``sum`` over a C
iterator, a C extension that does not release the GIL). Such a call runs to its end before
anything else on that worker runs — the heartbeat included — and a request limit fires when it
returns. Run CPU-heavy native code in ``preempt.blocking()`` or register it with
``preempt.preemptible()`` (it must release the GIL).

``_worker.py``: the worker (its rules). ``_limit.py``: the request limit and how a stopped
request is answered.

Install with ``pip install preempt[gunicorn]``.
"""

from __future__ import annotations

from ._worker import Worker as Worker

__all__ = ["Worker"]
