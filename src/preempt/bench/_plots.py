"""PNG plots of a benchmark run (matplotlib, optional: without it the plots are skipped).

* ``ticker_cdf.png`` / ``native_cdf.png``: the ticker's lateness CDF per runtime, log x axis;
* ``switch_costs.png``: µs per operation, preempt beside greenlet and Go.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List


def write(results: Dict[str, Any], out: str) -> List[str]:
    """Writes the plots into ``out``; returns their paths. Raises ImportError without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: List[str] = []
    for key, title in (("ticker", "1 ms ticker under 4 CPU-bound Python tasks"),
                       ("native", "1 ms ticker under 4 native tasks (GIL released)")):
        res = results.get(key)
        if not res:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for rt, r in res.items():
            if not isinstance(r, dict):     # "hog_s", the hogs' sized duration
                continue
            xs = sorted(max(x, 0.1) for x in r.get("late_us", []))
            if not xs:
                continue
            ys = [(i + 1) / len(xs) for i in range(len(xs))]
            ax.step(xs, ys, where="post", label=f"{rt} (n={len(xs)})")
        ax.set_xscale("log")
        ax.set_xlabel("wake-up lateness (µs, log scale)")
        ax.set_ylabel("fraction of ticks")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        path = os.path.join(out, f"{key}_cdf.png")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    sw = results.get("switch")
    if sw:
        names = [k for k in sw if k != "go"]
        vals = [sw[k]["median"] for k in names]
        go = sw.get("go", {})
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ys = range(len(names))
        ax.barh([y + 0.2 for y in ys], vals, height=0.4, label="preempt / greenlet")
        gv = [go.get(k) if isinstance(go.get(k), float) else 0 for k in names]
        if any(gv):
            ax.barh([y - 0.2 for y in ys], gv, height=0.4, label="Go (GOMAXPROCS=1)")
        ax.set_yticks(list(ys))
        ax.set_yticklabels(names, fontsize=8)
        ax.set_xlabel("µs per operation (median)")
        ax.set_title("Switch costs")
        ax.legend(fontsize=8)
        path = os.path.join(out, "switch_costs.png")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
