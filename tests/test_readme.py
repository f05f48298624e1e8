"""The README's goroutine example runs as shown."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_goroutine_example_runs(child):
    text = README.read_text()
    start = text.index("```python\nimport time\nimport preempt")
    code = text[start + len("```python\n"):text.index("```", start + 10)]
    out = child(code, timeout=120)
    assert out.startswith("100 ticks, worst"), out
