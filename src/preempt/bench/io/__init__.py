"""Plain concurrent I/O: ``python -m preempt.bench --only io``.

The http benchmark (``bench/http``) asks whether a light request gets through while handlers
compute; this one asks what a runtime costs when there is nothing to compute. A hello-world
HTTP/1.1 keep-alive server (``_server.py``: read until a blank line, ``sendall`` a fixed answer)
runs with the same handler on preempt (``preempt.net.serve_tcp``), gevent (``StreamServer``),
asyncio (``start_server`` streams), asyncio on uvloop, and threads (``ThreadingTCPServer``),
each in its own process pinned to one CPU. Two measurements:

1. throughput and latency under ``wrk`` (``_wrk.py``), a load generator none of us wrote
   (Debian package ``wrk``), on the other CPU(s): requests/s, p50, p99 and max latency and
   errors over 10, 50 and 200 keep-alive connections, and over 50 connections in
   ``Connection: close`` mode, where every request also costs an accept and a new task;
2. instructions per request under callgrind (``_instructions.py``), the figure that a noisy
   machine cannot move, with one request in flight and with one per connection:
   ``python -m preempt.bench.io --instructions``.

Runtimes whose library is not installed (gevent, uvloop) are reported as skipped, with why.
The layout: ``_server.py`` the servers, ``_launch.py`` starting one, ``_wrk.py`` the wrk runs and
their table, ``_client.py`` (the fixed-work clients) and ``_instructions.py`` the instruction
count.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The names below are loaded on first use (PEP 562), not when the package is imported: every
# server process runs ``python -m preempt.bench.io._server``, which imports this package first,
# and a server should import its handler and its runtime, not wrk's runner and valgrind's
# (nor should runpy find _server imported before it runs it, which it warns about).
_EXPORTS = {"measure": "._wrk", "report": "._wrk", "CONNS": "._wrk", "CLOSE_CONNS": "._wrk",
            "instructions": "._instructions", "instructions_report": "._instructions",
            "KINDS": "._server", "parse_wrk": "..http"}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from ..http import parse_wrk as parse_wrk
    from ._instructions import instructions as instructions
    from ._instructions import instructions_report as instructions_report
    from ._server import KINDS as KINDS
    from ._wrk import CLOSE_CONNS as CLOSE_CONNS
    from ._wrk import CONNS as CONNS
    from ._wrk import measure as measure
    from ._wrk import report as report


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(mod, __name__), name)
