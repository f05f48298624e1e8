"""PNG plots of a benchmark run (matplotlib, optional: without it the plots are skipped).

* ``ticker_cdf.png`` / ``native_cdf.png``: the ticker's lateness CDF per runtime, log x axis;
* ``switch_costs.png``: µs per operation, preempt beside greenlet and Go;
* ``io.png``: the hello-world server's requests/s and p99 latency per runtime and connection
  count (``--only io``), one group of bars per runtime.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional


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
    io = results.get("io")
    if io and io.get("servers"):
        path = _io_plot(plt, io, out)
        if path:
            paths.append(path)
    return paths


def _io_plot(plt: Any, io: Dict[str, Any], out: str) -> Optional[str]:
    """req/s and p99 per runtime (groups) and run (bars: 10, 50, 200, 50 close)."""
    kinds = [k for k, s in io["servers"].items() if s.get("runs")]
    labels: List[str] = []
    for k in kinds:
        labels += [lb for lb in io["servers"][k]["runs"] if lb not in labels]
    if not kinds or not labels:
        return None
    fig, (ax_rps, ax_p99) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / len(labels)
    for i, lb in enumerate(labels):
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(kinds))]
        runs = [io["servers"][k]["runs"].get(lb, {}) for k in kinds]
        name = lb.replace(" close", " conns, Connection: close") if "close" in lb \
            else f"{lb} conns, keep-alive"
        ax_rps.bar(xs, [r.get("rps", 0) for r in runs], width, label=name)
        ax_p99.bar(xs, [r.get("p99", 0) for r in runs], width, label=name)
    for ax, what in ((ax_rps, "requests/s"), (ax_p99, "p99 latency (ms, log scale)")):
        ax.set_xticks(list(range(len(kinds))))
        ax.set_xticklabels(kinds, fontsize=8)
        ax.set_ylabel(what)
        ax.grid(True, axis="y", alpha=0.3)
    ax_p99.set_yscale("log")
    ax_rps.legend(fontsize=8)
    fig.suptitle(f"Hello-world HTTP/1.1 server under wrk ({io['seconds']} s per run)")
    path = os.path.join(out, "io.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
