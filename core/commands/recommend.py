"""Recommend warning/critical thresholds per series, validated on held-out history.

Examples::

    python -m core recommend latency.csv --strategy balanced --incidents incidents.csv --json
    python -m core recommend data/demo/*.csv --policy data/demo_policy.yaml --jsonl
    python -m core recommend --db data/studio.duckdb --scheduler tcp://10.0.0.5:8786 --parquet-dir /mnt/shared --json

With FILE(s) it reads them the way an upload would store them (``core.data.ingest.load_metrics``) and
never touches the database; without, it reads every series, the labelled incidents and the policy
in force from the database. ``--json`` prints a JSON array, ``--jsonl`` one object per line; each
object has ``series, comparator, warning, critical, for_seconds, predicted_episodes_per_week,
predicted_interval, validation{actual_episodes_per_week, relative_error, ...}, confidence, risk,
rationale`` (``insufficient`` with the reason, and null levels, when the data cannot support one).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import pandas as pd

from core.alerting.recommend.fleet import recommend_fleet, split_points
from core.alerting.recommend.strategies import PRESETS
from core.alerting.rules import COMPARATORS, Rule
from core.errors import ValidationError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILE", help="metric exports (default: the database's series)")
    parser.add_argument("--strategy", default="balanced", choices=sorted(PRESETS), help="preset (default balanced)")
    parser.add_argument("--train-fraction", type=float, default=0.7,
                        help="share of each series' time span to fit on; the rest validates (default 0.7)")
    parser.add_argument("--incidents", help="incident windows (CSV series,start,end or NAB windows.json)")
    parser.add_argument("--policy", help="policy YAML whose rules are in force (comparison, constraints)")
    parser.add_argument("--comparator", default=">", choices=COMPARATORS,
                        help="comparator for series without a rule in force (default >)")
    parser.add_argument("--max-change", type=float, default=0.2,
                        help="largest relative change per apply for a rule in force (default 0.2 = 20%%)")
    parser.add_argument("--keep-outages", action="store_true",
                        help="keep detected outages in the fit (default: the default detector's outages in "
                             "each fit period are left out)")
    parser.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786): run on that cluster")
    parser.add_argument("--parquet-dir",
                        help="with --scheduler: a directory every Dask worker can read (shared filesystem); the "
                             "points are exported there as Parquet partitions (default: a temporary directory on "
                             "this machine, enough for workers on this machine only)")
    parser.add_argument("--workers", type=int, default=None, help="local processes (default: CPU count)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print a JSON array")
    out.add_argument("--jsonl", action="store_true", help="print one JSON object per line")


def _current(rules: list[Rule], keys: list[str]) -> dict[str, Rule]:
    out: dict[str, Rule] = {}
    for r in rules:
        for k in r.matching(keys):
            out.setdefault(k, r)
    return out


def _inputs(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame | None, list[Rule], dict[str, Any],
                                               list[tuple[Any, list[dict[str, Any]]]]]:
    incidents = None
    if args.incidents:
        from core.data.incidents import read_incidents

        incidents = read_incidents(args.incidents)
    rules: list[Rule] = []
    bounds: dict[str, Any] = {}
    if args.policy:
        from core.policy.policy_yaml import policy_from_yaml

        with open(args.policy, encoding="utf-8") as fh:
            rules, meta = policy_from_yaml(fh.read(), source=args.policy)
        bounds = dict(meta.get("bounds") or {})
    if args.files:
        from core.data.ingest import load_metrics

        frames = [load_metrics(f).points for f in args.files]
        points = pd.concat(frames, ignore_index=True)
        dup = points.duplicated(["series", "ts"], keep="last")
        if dup.any():
            points = points[~dup]
        return points, incidents, rules, bounds, []
    from core.data.store import Store
    from core.policy.versions import active_version, history

    with (Store(args.db, read_only=True) if args.db else Store(read_only=True)) as store:
        points = store.get_points()
        if incidents is None:
            incidents = store.list_incidents()
        if not args.policy:
            v = active_version(store)
            if v is not None:
                rules, bounds = v.rules(), dict(v.meta.get("bounds") or {})
        live = [] if args.policy else sorted((h for h in history(store) if h.in_force_from is not None),
                                             key=lambda h: h.in_force_from)
    return points, incidents, rules, bounds, [(h.in_force_from, h.rule_dicts) for h in live]


def run(args: argparse.Namespace) -> int:
    if not 0 < args.train_fraction < 1:
        raise ValidationError(f"--train-fraction must lie strictly between 0 and 1, got {args.train_fraction}",
                              path="--train-fraction")
    points, incidents, rules, bounds, hist = _inputs(args)
    if len(points) == 0:
        raise ValidationError("no points to recommend thresholds for", path="FILE")
    keys = [str(k) for k in pd.unique(points["series"])]
    items = split_points(points, incidents, _current(rules, keys), bounds, hist)
    if args.parquet_dir and not args.scheduler:
        raise ValidationError("--parquet-dir is only used with --scheduler (a Dask cluster)", path="--parquet-dir")
    out = recommend_fleet(items, workers=args.workers, scheduler=args.scheduler, parquet_dir=args.parquet_dir,
                          preset=args.strategy,
                          train_fraction=args.train_fraction, comparator=args.comparator, max_change=args.max_change,
                          exclude_outages=not args.keep_outages)
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    elif args.jsonl:
        for o in out:
            print(json.dumps(o))
    else:
        for o in out:
            if o.get("insufficient"):
                print(f"{o['series']}: insufficient: {o['insufficient']}")
                continue
            iv = o["predicted_interval"] or [None, None]
            val = o["validation"]
            err = "insufficient" if not val["sufficient"] else (
                "n/a" if val["relative_error"] is None else f"{val['relative_error']:+.0%}")
            crit = "-" if o["critical"] is None else f"{o['critical']:.4g}"
            print(f"{o['series']}: {o['comparator']} warning {o['warning']:.4g}, critical {crit} "
                  f"({o['strategy']}); predicted {o['predicted_episodes_per_week']:.2f}/week "
                  f"[{iv[0]:.2f}, {iv[1]:.2f}], held-out {val['actual_episodes_per_week']:.2f} ({err}); risk {o['risk']}")
    return 0
