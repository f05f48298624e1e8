"""Shared fixtures: the native test kernels, and a child-process runner for dangerous tests.

Dangerous tests (signals, trampoline, fork) run their scenario in a child interpreter: a crash or
hang fails that one test (the child is killed at its timeout), never the pytest process.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _cpu_flags() -> set:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


CPU_FLAGS = _cpu_flags()


def required_parts() -> set:
    """The optional parts this run must have: ``PREEMPT_REQUIRE=gevent,trustme,wrk,...``.

    .ci/run sets it, so in CI a missing peer library or tool fails its tests instead of
    skipping them: a green CI cannot hide what it did not run.
    """
    return {p.strip() for p in os.environ.get("PREEMPT_REQUIRE", "").split(",") if p.strip()}


def need(part: str, present: bool, why: str) -> None:
    """Skips the calling test (or module) when the optional ``part`` is missing, or fails it
    when this run requires the part (:func:`required_parts`)."""
    if present:
        return
    if part in required_parts():
        pytest.fail(f"{part} is required in this run (PREEMPT_REQUIRE) but {why}", pytrace=False)
    pytest.skip(why, allow_module_level=True)


def need_module(name: str):
    """Imports and returns module ``name``, or :func:`need`'s skip/fail when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        need(name, False, f"{name} is not installed ({e})")


def need_tool(name: str) -> str:
    """The path of command ``name`` on PATH, or :func:`need`'s skip/fail when it is missing."""
    path = shutil.which(name)
    need(name, path is not None, f"{name} is not installed (not on PATH)")
    return path


@pytest.fixture(scope="session")
def torture_lib(tmp_path_factory) -> dict:
    """Builds tests/native/torture.c into a shared object (plus an identical copy under another
    name, used as an *unregistered* library). Returns their paths."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "a C compiler (gcc) is needed to build the test kernels"
    d = tmp_path_factory.mktemp("native")
    so = d / "libtorture.so"
    subprocess.run([gcc, "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-o", str(so),
                    str(HERE / "native" / "torture.c")], check=True)
    unreg = d / "libtorture_unreg.so"
    shutil.copy(so, unreg)
    return {"path": str(so), "unreg": str(unreg)}


def run_child(code: str, *args: str, timeout: float = 120, expect_rc: int = 0) -> str:
    """Runs dedented ``code`` in a fresh interpreter with ``args`` as sys.argv[1:].

    Fails the test with the child's output if it exits with another code than ``expect_rc``
    (a crash gives a negative signal number) or outlives ``timeout`` seconds.
    """
    env = dict(os.environ)
    env.setdefault("PYTHONFAULTHANDLER", "1")
    # Children import tests/_childlib.py; keep whatever finds preempt (installed, or PYTHONPATH=src).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    try:
        p = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                           text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"child timed out after {timeout}s\nstdout:\n{e.stdout}\nstderr:\n{e.stderr}")
    if p.returncode != expect_rc:
        pytest.fail(f"child exited with {p.returncode} (expected {expect_rc})\n"
                    f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p.stdout


@pytest.fixture
def child():
    return run_child


@pytest.fixture
def in_run():
    """``in_run(fn)``: runs ``fn()`` as the main goroutine of a fresh ``preempt.run()`` and
    returns what it returned."""
    import preempt

    def run(fn):
        box = {}

        def main():
            box["r"] = fn()

        preempt.run(main)
        return box.get("r")

    return run
