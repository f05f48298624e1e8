"""Percentiles and table printing shared by the benchmarks."""

from __future__ import annotations

from typing import Dict, Iterable, List, Sequence


def percentiles(samples: Sequence[float]) -> Dict[str, float]:
    """p50/p90/p99/max/mean of samples (nearest-rank), with their count."""
    s = sorted(samples)
    if not s:
        raise ValueError("no samples")

    def rank(p: float) -> float:
        return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]

    return {"n": len(s), "p50": rank(50), "p90": rank(90), "p99": rank(99), "max": s[-1],
            "mean": sum(s) / len(s)}


def table(title: str, columns: List[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain fixed-width text table."""
    rows = [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(columns[i]), *(len(r[i]) for r in rows)) for i in range(len(columns))]
    line = "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(columns, widths)))
    out = [title, line, "-" * len(line)]
    for r in rows:
        out.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.2f}" if v < 10 else (f"{v:.1f}" if v < 1000 else f"{v:.0f}")
    return str(v)
