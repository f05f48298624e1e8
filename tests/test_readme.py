"""The examples of the README and of docs/guide.md run as shown."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "docs" / "guide.md"]


def _example(first_lines: str) -> str:
    """The code block of the README or the guide that starts with ``first_lines``."""
    text = "\n".join(p.read_text() for p in DOCS)
    start = text.index("```python\n" + first_lines)
    return text[start + len("```python\n"):text.index("```", start + 10)]


def test_goroutine_example_runs(child):
    code = _example("import time\nimport preempt")
    out = child(code, timeout=120)
    assert out.startswith("100 ticks, worst"), out


def test_cancellation_example_runs(child):
    code = _example("import preempt\n\ndef search(target)")
    out = child(code, timeout=120)
    assert out.startswith("gave up: the block did not finish within its timeout of 0.2 s"), out
    assert out.splitlines()[1] == "499999500000 3", out


def test_networking_example_runs(child):
    code = _example("import preempt\nfrom preempt import socket, ssl")
    out = child(code, timeout=60)
    assert out.strip() == "echoed b'ping'", out


def test_pytest_example_runs(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "test_pipeline.py").write_text(_example("# test_pipeline.py\n"))
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                        "preempt.pytest_plugin", "test_pipeline.py"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "1 passed" in p.stdout, p.stdout + p.stderr


def test_gevent_example_runs(child):
    import pytest

    from conftest import need_module

    need_module("gevent")
    code = _example("import time\nimport gevent\nimport preempt.gevent")
    out = child(code, timeout=60)
    assert out.strip() == "heartbeat ticks while 4 greenlets computed: True", out


def test_aio_example_runs(child):
    code = _example("import asyncio\nimport preempt.aio")
    out = child(code, timeout=60)
    assert out.strip() == "[9592, 9592] ticker kept running: True", out
