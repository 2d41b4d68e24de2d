"""Print a data-quality table of the stored series (gaps, duplicates, NaN/inf, flat lines, score)."""

from __future__ import annotations

import argparse
import fnmatch

import pandas as pd

from core.data.quality import quality_report
from core.data.store import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--series", default=None, help="only series whose key matches this glob pattern")
    parser.add_argument("--now", default=None,
                        help="reference time for staleness (ISO 8601; default: not assessed)")
    parser.add_argument("--issues", action="store_true", help="also list each series' issues")


def _num(x: object, fmt: str) -> str:
    if x is None or pd.isna(x):
        return "-"
    return format(x, fmt)


def format_report(rep: pd.DataFrame, *, issues: bool = False, empty: str = "no series stored") -> str:
    """The quality report as a plain-text table (one line per series); ``empty`` when it has none."""
    if rep.empty:
        return empty
    width = max(6, min(60, int(rep["series"].str.len().max())))
    head = (f"{'series':<{width}} {'points':>8} {'res_s':>6} {'gaps':>5} {'miss%':>6} {'dups':>5} "
            f"{'nan':>5} {'inf':>4} {'flat%':>6} {'resets':>6} {'stale_s':>9} {'score':>6} grade")
    lines = [head, "-" * len(head)]
    for r in rep.itertuples(index=False):
        lines.append(
            f"{r.series[:width]:<{width}} {r.points:>8} {_num(r.resolution_s, '.0f'):>6} {r.gaps:>5} "
            f"{_num(r.missing_pct, '.2f'):>6} {r.duplicates:>5} {r.nan:>5} {r.inf:>4} "
            f"{_num(r.flat_pct, '.1f'):>6} {_num(r.counter_resets, 'd'):>6} {_num(r.staleness_s, '.0f'):>9} "
            f"{_num(r.score, '.1f'):>6} {r.grade}")
    if issues:
        for r in rep.itertuples(index=False):
            for text in r.issues:
                lines.append(f"  {r.series}: {text}")
    counts = rep["grade"].value_counts()
    lines.append("grades: " + ", ".join(f"{g} {int(counts[g])}" for g in [*"ABCDF", "insufficient"]
                                        if g in counts))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    store = Store(args.db, read_only=True) if args.db else Store(read_only=True)
    try:
        meta = store.list_series()
        keys = meta["key"].tolist()
        stored = len(keys)
        if args.series:
            keys = [k for k in keys if fnmatch.fnmatchcase(k, args.series)]
        pts = store.get_points(keys) if keys else store.get_points([])
        kinds = dict(zip(meta["key"], meta["kind"], strict=True))
    finally:
        store.close()
    rep = quality_report(pts, kinds=kinds, now=args.now)
    empty = (f"no series matches {args.series!r} ({stored} stored)" if args.series and stored
             else "no series stored")
    print(format_report(rep, issues=args.issues, empty=empty))
    return 0
