"""What the short-lived connections cost a page render: ``python bench/render_cost.py [--db FILE] [--runs 3]``.

Each page is rendered with AppTest, cache warm, 0.3 s apart (as a user's clicks: longer than the
0.1 s linger, so every render that reads the database opens it again). Counted per render: database
opens (a read the cache does not answer) and change checks (:func:`ui.state.sync`). Both are timed on
their own (medians of many), and the added cost of a render is ``opens x open cost + checks x check
cost``; a held connection (the behaviour before issue 9, which locked every other process out)
costs neither. Goal: under 20 ms per render. The render times themselves are printed for scale.

Without ``--db`` a small demo database (4 services x 7 days at one minute) is generated in a temp dir.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data.store import Store  # noqa: E402
from core.data.store import base as store_base  # noqa: E402

GOAL_MS = 20.0
PAGES = ("overview.py", "data.py", "trends.py", "thresholds.py", "policies.py")


def _median_ms(f, n: int) -> float:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=None)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="render-cost-")
    if args.db is None:
        from data.generate import write_demo

        db = Path(tmp) / "demo.duckdb"
        write_demo(Path(tmp) / "csv", db, services=4, days=7)
    else:
        db = Path(args.db)
    os.environ["STUDIO_DB"] = str(db)
    token_us = _median_ms(lambda: store_base.file_token(str(db)), 2000) * 1e3
    s = Store(db)
    s.release()

    def open_close() -> None:
        s.query_one("SELECT 1")
        s.release()

    open_ms = _median_ms(open_close, 25)
    s.close()

    from tests.apptest_util import open_page
    from ui import state

    counts = {"opens": 0, "checks": 0}
    real_connect, real_token = store_base.connect_with_retry, state.file_token

    def counting_connect(*a, **k):
        counts["opens"] += 1
        return real_connect(*a, **k)

    def counting_token(path):
        counts["checks"] += 1
        return real_token(path)

    store_base.connect_with_retry, state.file_token = counting_connect, counting_token
    rows = []
    for page in PAGES:
        open_page(page)                      # warm the caches
        times, opens, checks = [], [], []
        for _ in range(args.runs):
            time.sleep(0.3)
            counts.update(opens=0, checks=0)
            t = time.perf_counter()
            at = open_page(page)
            times.append(time.perf_counter() - t)
            opens.append(counts["opens"])
            checks.append(counts["checks"])
            assert not at.exception, at.exception
        o, c = max(opens), max(checks)
        rows.append((page, statistics.median(times) * 1e3, o, c, o * open_ms + c * token_us / 1e3))
    print(f"database: {db} ({db.stat().st_size / 1e6:.1f} MB); load average {os.getloadavg()[0]:.1f}")
    print(f"change check (file_token, two stat calls): {token_us:.1f} us per call")
    print(f"open + query + close of the database (one unit of work): {open_ms:.1f} ms")
    print(f"{'page':<16}{'render ms':>10}{'opens':>7}{'checks':>8}{'added ms':>10}")
    for page, ms, o, c, added in rows:
        print(f"{page:<16}{ms:>10.0f}{o:>7}{c:>8}{added:>10.2f}")
    worst = max(r[4] for r in rows)
    print(f"worst added cost per render: {worst:.2f} ms (goal <= {GOAL_MS:.0f} ms): "
          f"{'OK' if worst <= GOAL_MS else 'OVER'}")


if __name__ == "__main__":
    main()
