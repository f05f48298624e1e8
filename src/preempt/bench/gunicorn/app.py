"""The WSGI application of the gunicorn benchmark: ``preempt.bench.gunicorn.app:app``.

``/heavy`` runs ``HEAVY_ITERS`` (environment) iterations of the HTTP benchmark's pure-Python
loop (``bench/http/_server.work``: the parent calibrates it to about 50 ms); every other path
answers at once (``/light`` and ``/`` for hello-world). Plain WSGI, no framework: the figures
are the workers', not a framework's.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from ..http._server import work

ITERS = int(os.environ.get("HEAVY_ITERS", "100000"))


def app(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/heavy":
        body = b"heavy %d\n" % work(ITERS)
    else:
        body = b"hello\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
