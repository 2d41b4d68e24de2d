"""Sweep a rule over levels x pending periods (`for`): alert load and incidents caught in every cell.

"When would this have fired, at every level and every ``for``?" Each cell holds what
``python -m core replay`` reports in ``summary.any`` for a rule with that one level and that ``for``
(and the same other options). The file is read as ``python -m core ingest`` reads it (its report and
warnings go to standard error); without a file, ``--series KEY`` sweeps the series stored in
``--db``. Example::

    python -m core sweep latency.csv --comparator '>' --auto 40 --for 0s,1m,5m,15m \\
        --incidents incidents.csv --json
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from core.alerting.rules import COMPARATORS, MISSING_MODES, format_duration, parse_duration
from core.commands._source import add_incident_arguments, add_source_arguments, load_incidents, load_series
from core.errors import ValidationError

#: JSON cell field -> column of :attr:`core.alerting.sweep.SweepGrid.cells`
CELL_FIELDS = {"level": "level", "for_seconds": "for_s", "episodes": "episodes",
               "episodes_per_week": "episodes_per_week", "time_in_alert_pct": "time_in_alert_pct"}
INCIDENT_FIELDS = {"recall": "recall", "precision": "precision", "false_alarms_per_week": "false_alarms_per_week",
                   "median_detection_delay_s": "detection_delay_s"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser, what="sweep")
    parser.add_argument("--comparator", required=True, choices=COMPARATORS, help="alert when value <cmp> level")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--levels", help="comma-separated levels, e.g. 200,250,300")
    which.add_argument("--auto", type=int, metavar="N",
                       help="N levels spread over the series' own quantiles, dense in the tail the comparator "
                            "points at")
    parser.add_argument("--for", dest="for_", required=True, help="comma-separated pending periods, e.g. 0s,1m,5m")
    parser.add_argument("--keep-firing-for", default="0s", help="keep firing after the condition clears")
    parser.add_argument("--recovery-offset", type=float,
                        help="hysteresis: resolve only this far past each level (> 0)")
    parser.add_argument("--consecutive", type=int, default=1, help="breaching evaluations needed (default 1)")
    parser.add_argument("--missing", default="nodata", choices=MISSING_MODES, help="missing-data behaviour")
    parser.add_argument("--interval", help="evaluation interval, e.g. 1m (default: the series resolution)")
    parser.add_argument("--lookback", help="the export's lookback (default 10m): how long keep_last carries a value")
    add_incident_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _floats(text: str, path: str) -> list[float]:
    out = []
    for part in text.split(","):
        try:
            x = float(part)
        except ValueError:
            raise ValidationError(f"{part.strip()!r} is not a number; expected comma-separated numbers such as "
                                  "200,250,300", path=path) from None
        if not math.isfinite(x):
            raise ValidationError(f"{part.strip()!r} is not a finite number", path=path)
        out.append(x)
    return out


def _durations(text: str) -> list[float]:
    parts = [p.strip() for p in text.split(",")]
    if not all(parts):
        raise ValidationError(f"{text!r}: expected comma-separated durations such as 0s,1m,5m", path="--for")
    return [parse_duration(p, path="--for") for p in parts]


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def cell_records(cells: pd.DataFrame, with_incidents: bool) -> list[dict[str, Any]]:
    """The grid's cells as the JSON records ``python -m core sweep --json`` prints (NaN -> None)."""
    fields = {**CELL_FIELDS, **(INCIDENT_FIELDS if with_incidents else {})}
    cols = {f: cells[c].to_numpy() for f, c in fields.items()}
    return [{f: _plain(cols[f][i]) for f in fields} for i in range(len(cells))]


def _table(grid: Any, column: str, fmt: Any) -> str:
    t = grid.pivot(column)
    head = f"{'level':>12} " + " ".join(f"{format_duration(f):>9}" for f in t.columns)
    rows = [f"{lv:>12.6g} " + " ".join(f"{fmt(v):>9}" for v in t.loc[lv].to_numpy()) for lv in t.index]
    return "\n".join([head, *rows])


def run(args: argparse.Namespace) -> int:
    from core.alerting.sweep import auto_levels, sweep_grid

    fors = _durations(args.for_)
    levels = _floats(args.levels, "--levels") if args.levels is not None else None
    keep = parse_duration(args.keep_firing_for, path="--keep-firing-for")
    early = parse_duration(args.early, path="--early")
    interval = parse_duration(args.interval, path="--interval") if args.interval else None
    lookback = parse_duration(args.lookback, path="--lookback") if args.lookback else None
    key, points = load_series(args)
    if levels is None:
        levels = auto_levels(points, args.comparator, args.auto)
    incidents = load_incidents(args, key)
    grid = sweep_grid(points, args.comparator, levels, fors, keep_firing_for_s=keep,
                      recovery_offset=args.recovery_offset, consecutive=args.consecutive, missing=args.missing,
                      interval_s=interval, series=key, incidents=incidents, early_s=early, lookback_s=lookback)
    if args.json:
        out = {"series": key, "comparator": args.comparator, "interval_s": grid.interval_s, "span_s": grid.span_s,
               "cells": cell_records(grid.cells, incidents is not None)}
        print(json.dumps(out, indent=2))
        return 0
    print(f"series {key}: {args.comparator} level, keep firing {format_duration(keep)}, "
          f"consecutive {args.consecutive}, missing data: {args.missing}; evaluated every "
          f"{format_duration(grid.interval_s)} over {format_duration(grid.span_s)} (in-sample)")
    print("\nepisodes per week (rows: level, columns: for)")
    print(_table(grid, "episodes_per_week", lambda v: "n/a" if not math.isfinite(v) else f"{v:.2f}"))
    print("\ntime in alert (%)")
    print(_table(grid, "time_in_alert_pct", lambda v: "n/a" if not math.isfinite(v) else f"{v:.2f}"))
    if incidents is not None:
        n_inc = int(grid.cells["incidents"].iloc[0])
        print(f"\nincidents caught (of {n_inc})")
        print(_table(grid, "caught", lambda v: f"{int(v)}"))
        print("\nmedian detection delay (incident start to first alert)")
        print(_table(grid, "detection_delay_s",
                     lambda v: "-" if not math.isfinite(v) else ("-" if v < 0 else "") + format_duration(abs(v))))
        print("\nfalse alarms per week")
        print(_table(grid, "false_alarms_per_week", lambda v: "n/a" if not math.isfinite(v) else f"{v:.2f}"))
    return 0
