"""Benchmark: the fleet-health Overview page (AppTest through ``app.py``) on a database.

A server process is simulated: one render of the app on a small seeded database pays for the imports,
then the Overview is rendered on the benchmark database with its caches cold (first render), again
(re-render), after a filter change, and, with ``--compute``, after computing the derived columns
(quality and alerts: ``fast``; plus anomalies and recommendations: ``all``) with the time that took.
The reference is the same process's ``Store.list_series()`` on the benchmark database (the one query
every page runs): the ratio first render / reference puts the figure in machine-independent terms.

Run: ``python bench/overview.py [--db FILE] [--compute none|fast|all]``. Without ``--db`` the demo fleet
(12 services x 5 metrics x 30 days) is generated into a temporary folder first. Budgets (issue 14):
first render <= 2 s, re-render <= 0.5 s; the script exits 1 when one is exceeded. Wall-clock figures
inflate when other jobs share the cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _timed(label: str, fn, out: dict[str, float]):
    t = time.perf_counter()
    at = fn()
    out[label] = time.perf_counter() - t
    errors = [e.value for e in at.exception]
    print(f"{label:<30} {out[label]:7.2f} s" + (f"  EXCEPTION: {errors[0]}" if errors else ""))
    if errors:
        raise SystemExit(1)
    return at


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", default=None, help="benchmark database (default: generate the demo fleet)")
    p.add_argument("--compute", choices=("none", "fast", "all"), default="fast")
    p.add_argument("--budget-first", type=float, default=2.0)
    p.add_argument("--budget-rerun", type=float, default=0.5)
    args = p.parse_args(argv)
    from streamlit.testing.v1 import AppTest

    from core.data.store import Store
    from tests.apptest_util import build_small_db

    tmp = Path(tempfile.mkdtemp(prefix="bench-overview-"))
    db = Path(args.db) if args.db else None
    if db is None:
        from data.generate import write_demo

        db = tmp / "demo.duckdb"
        write_demo(tmp / "csv", db)
    warm = build_small_db(tmp / "warm.duckdb")
    os.environ["STUDIO_DB"] = str(warm)
    AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).run()     # imports, as a running server

    with Store(db, read_only=True) as s:
        t = time.perf_counter()
        n = len(s.list_series())
        ref = time.perf_counter() - t
    print(f"{db}: {n} series; reference list_series {ref:.2f} s")
    os.environ["STUDIO_DB"] = str(db)
    out: dict[str, float] = {}
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=7200)
    _timed("first render", at.run, out)
    _timed("re-render", at.run, out)
    _timed("filter *checkout*", lambda: at.text_input(key="ovw.glob").input("*checkout*").run(), out)
    _timed("filter cleared", lambda: at.text_input(key="ovw.glob").input("").run(), out)
    if args.compute != "none":
        _timed("compute quality and alerts", lambda: at.button(key="ovw.fast").click().run(), out)
        _timed("re-render after it", at.run, out)
    if args.compute == "all":
        _timed("compute everything", lambda: at.button(key="ovw.all").click().run(), out)
        _timed("re-render after everything", at.run, out)
    print(f"first render / reference: {out['first render'] / max(ref, 1e-9):.1f}x")
    worst_rerun = max(v for k, v in out.items() if k.startswith(("re-render", "filter")))
    ok = out["first render"] <= args.budget_first and worst_rerun <= args.budget_rerun
    print(f"budgets: first {out['first render']:.2f} <= {args.budget_first} s, re-render {worst_rerun:.2f} <= "
          f"{args.budget_rerun} s: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
