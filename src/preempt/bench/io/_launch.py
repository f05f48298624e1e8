"""Starting a hello-world server process (``_server.py``) and knowing when it listens.

Shared by the wrk runs (``_wrk.py``), the instruction count (``_instructions.py``, which puts
valgrind in front of the interpreter) and the tests. The server's stderr goes to a temporary
file, never a pipe nobody reads: a server that printed a traceback per connection would
otherwise block on a full pipe and be measured as slow instead of reported as broken.
"""

from __future__ import annotations

import importlib.util
import os
import select
import subprocess
import sys
import tempfile
import time
from typing import IO, List, Optional, Sequence, Tuple

from ._server import KINDS

_PEERS = {"gevent": "gevent", "uvloop": "uvloop"}     # kind -> the module it needs


def why_unavailable(kind: str) -> Optional[str]:
    """None when ``kind`` can run here, else why not (a peer library that is not installed)."""
    if kind not in KINDS:
        raise ValueError(f"unknown server kind {kind!r}; choose from {', '.join(KINDS)}")
    mod = _PEERS.get(kind)
    if mod and importlib.util.find_spec(mod) is None:
        return f"{mod} is not installed (pip install {mod})"
    return None


def split_cpus() -> Tuple[Optional[int], List[int]]:
    """(the server's CPU, wrk's CPUs): the first usable CPU for the server, the others for wrk,
    so that the load generator never takes the server's core. (None, []) on one CPU."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, []
    if len(cpus) < 2:
        return None, []
    return cpus[0], cpus[1:]


class Server:
    """A running server process: ``proc``, ``port``; ``stop()`` ends it and returns its stderr."""

    def __init__(self, proc: subprocess.Popen, port: int, stderr: IO[bytes]) -> None:
        self.proc, self.port, self._stderr = proc, port, stderr

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stop(self) -> str:
        """Kills the server (if it still runs); returns what it printed on stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        try:
            return self.stderr()
        finally:
            self._stderr.close()


def start(kind: str, *, cpu: Optional[int] = None, exit_after_conns: int = 0,
          prefix: Sequence[str] = (), args: Sequence[str] = (), env: Optional[dict] = None,
          timeout: float = 30.0) -> Server:
    """Starts ``python -m preempt.bench.io._server kind [args]`` (behind ``prefix``, e.g.
    valgrind's command) and waits for its ``ready PORT`` line.

    Raises:
        RuntimeError: The server exited or printed nothing within ``timeout`` seconds; the
            message ends with its last line on stderr.
    """
    cmd = [*prefix, sys.executable, "-m", "preempt.bench.io._server", kind, *args]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    if exit_after_conns:
        cmd += ["--exit-after-conns", str(exit_after_conns)]
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
    line = b""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        ch = os.read(proc.stdout.fileno(), 1)
        if not ch:
            break
        line += ch
    srv = Server(proc, 0, err)
    words = line.split()
    if len(words) == 2 and words[0] == b"ready":
        srv.port = int(words[1])
        return srv
    alive = proc.poll() is None
    text = srv.stop().strip().splitlines()
    why = text[-1] if text else ("no ready line within %g s" % timeout if alive else
                                 f"it exited with status {proc.returncode}")
    raise RuntimeError(f"the {kind} server did not start: {why}")
