"""The README's examples run as shown."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_goroutine_example_runs(child):
    text = README.read_text()
    start = text.index("```python\nimport time\nimport preempt")
    code = text[start + len("```python\n"):text.index("```", start + 10)]
    out = child(code, timeout=120)
    assert out.startswith("100 ticks, worst"), out


def test_cancellation_example_runs(child):
    text = README.read_text()
    start = text.index("```python\nimport preempt\n\ndef search(target)")
    code = text[start + len("```python\n"):text.index("```", start + 10)]
    out = child(code, timeout=120)
    assert out.startswith("gave up: the block did not finish within its timeout of 0.2 s"), out
    assert out.splitlines()[1] == "499999500000 3", out


def test_networking_example_runs(child):
    text = README.read_text()
    start = text.index("```python\nimport preempt\nfrom preempt import socket, ssl")
    code = text[start + len("```python\n"):text.index("```", start + 10)]
    out = child(code, timeout=60)
    assert out.strip() == "echoed b'ping'", out
