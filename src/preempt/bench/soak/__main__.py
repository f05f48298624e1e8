"""``python -m preempt.bench.soak SECONDS SEED``: the soak's child interpreter, started by
``measure()``. Runs the soak here and prints its result as the last line, in JSON; the exit
status is 1 when the verdict is FAIL.
"""

from __future__ import annotations

import json
import sys
from typing import List

from ._program import soak


def _child(argv: List[str]) -> int:
    seconds, seed = float(argv[0]), int(argv[1])
    res = soak(seconds, seed)
    print(json.dumps(res, default=str), flush=True)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
