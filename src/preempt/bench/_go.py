"""Builds and runs the Go peers (``go/*.go`` beside this file; ``benchmarks/go`` in the repo).

Go 1.19 from Debian's golang-go is enough. Each program is built once per source version into a
cache folder and run with GOMAXPROCS=1, so that, like preempt's single M, all its goroutines
share one OS thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from typing import Any, Dict, List

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "go")


class GoUnavailable(Exception):
    """The Go peer cannot run here; the message says why."""


def binary(name: str) -> str:
    go = shutil.which("go")
    if not go:
        raise GoUnavailable("go is not on PATH (Debian: apt-get install golang-go)")
    src = os.path.join(HERE, f"{name}.go")
    if not os.path.exists(src):
        raise GoUnavailable(f"{src} is missing")
    digest = hashlib.sha256(open(src, "rb").read()).hexdigest()[:16]
    cache = os.path.join(tempfile.gettempdir(), "preempt-bench-go")
    os.makedirs(cache, exist_ok=True)
    exe = os.path.join(cache, f"{name}-{digest}")
    if not os.path.exists(exe):
        env = dict(os.environ, GOCACHE=os.path.join(cache, "gocache"), GO111MODULE="off",
                   GOFLAGS="", CGO_ENABLED="0")
        p = subprocess.run([go, "build", "-o", exe + ".tmp", src], capture_output=True, text=True,
                           env=env, timeout=300)
        if p.returncode != 0:
            raise GoUnavailable(f"go build {name}.go failed: {p.stderr.strip()[:300]}")
        os.replace(exe + ".tmp", exe)
    return exe


def run(name: str, args: List[str], timeout: float = 300) -> Dict[str, Any]:
    exe = binary(name)
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, GOMAXPROCS="1"))
    if p.returncode != 0:
        raise RuntimeError(f"{name} (Go) failed: {p.stderr.strip()[:300]}")
    return json.loads(p.stdout)
