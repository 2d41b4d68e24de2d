"""Replay a threshold rule over a metric file or a stored series: alert episodes, alert load and accuracy.

The file is read as ``python -m core ingest`` reads it (its report and warnings go to standard
error); without a file, ``--series KEY`` replays the series stored in ``--db``. Example::

    python -m core replay latency.csv --comparator '>' --threshold 250 --for 5m \\
        --keep-firing-for 10m --recovery 200 --incidents incidents.csv --json
"""

from __future__ import annotations

import argparse
import json

from core.alerting.rules import COMPARATORS, MISSING_MODES, SEVERITIES, Rule, format_duration, parse_duration
from core.commands._source import add_incident_arguments, add_source_arguments, load_incidents, load_series
from core.errors import ValidationError
from core.fmt import json_safe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_arguments(parser, what="replay")
    parser.add_argument("--comparator", default=">", choices=COMPARATORS, help="alert when value <cmp> threshold")
    parser.add_argument("--threshold", type=float, help="trigger value of the level named by --severity")
    parser.add_argument("--severity", default="critical", choices=SEVERITIES,
                        help="level --threshold sets (default critical)")
    parser.add_argument("--warning", type=float, help="warning threshold (with or instead of --threshold)")
    parser.add_argument("--critical", type=float, help="critical threshold (with or instead of --threshold)")
    parser.add_argument("--for", dest="for_", default="0s", help="pending period, e.g. 5m (default 0s)")
    parser.add_argument("--keep-firing-for", default="0s", help="keep firing after the condition clears")
    parser.add_argument("--recovery", type=float, help="hysteresis: resolve only when the value crosses this")
    parser.add_argument("--consecutive", type=int, default=1, help="breaching evaluations needed (default 1)")
    parser.add_argument("--missing", default="nodata", choices=MISSING_MODES, help="missing-data behaviour")
    parser.add_argument("--interval", help="evaluation interval, e.g. 1m (default: the series resolution)")
    parser.add_argument("--lookback", help="the export's lookback (default 10m): how long keep_last carries a "
                                           "value and how long a gap lasts before it is a no-data episode")
    add_incident_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _fmt2(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _rule(args: argparse.Namespace, key: str) -> Rule:
    levels = {"warning": args.warning, "critical": args.critical}
    if args.threshold is not None:
        if levels[args.severity] is not None:
            raise ValidationError(f"--threshold and --{args.severity} both set the {args.severity} level; "
                                  "give one", path="--threshold")
        levels[args.severity] = args.threshold
    if levels["warning"] is None and levels["critical"] is None:
        raise ValidationError("give --threshold X (or --warning / --critical)", path="--threshold")
    return Rule(name="cli", series=key, comparator=args.comparator, warning=levels["warning"],
                critical=levels["critical"], for_s=parse_duration(args.for_, path="--for"),
                keep_firing_for_s=parse_duration(args.keep_firing_for, path="--keep-firing-for"),
                recovery=args.recovery, consecutive=args.consecutive, missing=args.missing,
                interval_s=parse_duration(args.interval, path="--interval") if args.interval else None)


def run(args: argparse.Namespace) -> int:
    from core.alerting.replay import replay

    rule = _rule(args, "*")              # bad options are reported before the file is read
    key, points = load_series(args)
    rule = _rule(args, key)
    lookback = parse_duration(args.lookback, path="--lookback") if args.lookback else None
    result = replay(rule, points, lookback_s=lookback)
    incidents = load_incidents(args, key)
    early = parse_duration(args.early, path="--early")
    summaries = {"any": result.summary(None, incidents, early)}
    if len(rule.triggers()) > 1:
        for sev in rule.triggers():
            summaries[sev] = result.summary(sev, incidents, early)
    episodes = result.episodes
    if args.json:
        out = {
            "series": key, "rule": rule.to_dict(),
            "summary": {k: {f: json_safe(v) if not isinstance(v, list) else v for f, v in s.items()}
                        for k, s in summaries.items()},
            "episodes": [{c: json_safe(v) for c, v in row.items()} for row in episodes.to_dict("records")],
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"series {key}: {rule.comparator} " + ", ".join(f"{k} {v:g}" for k, v in rule.triggers().items())
          + f", for {format_duration(rule.for_s)}, keep firing {format_duration(rule.keep_firing_for_s)}"
          + (f", recovery {rule.recovery:g}" if rule.recovery is not None else "")
          + f", missing data: {rule.missing}")
    for name, s in summaries.items():
        pct = "n/a" if s["time_in_alert_pct"] is None else f"{s['time_in_alert_pct']:.2f}%"
        rate = "n/a" if s["episodes_per_week"] is None else f"{s['episodes_per_week']:.2f}"
        med = "n/a" if s["duration_median_s"] is None else format_duration(round(s["duration_median_s"], 3))
        p95 = "n/a" if s["duration_p95_s"] is None else format_duration(round(s["duration_p95_s"], 3))
        line = (f"  [{name}] {s['episodes']} episode(s), {rate}/week, in alert "
                f"{format_duration(s['time_in_alert_s'])} ({pct}), median {med}, p95 {p95}")
        if "recall" in s:
            line += (f"; vs {s['incidents']} incident(s): precision {_fmt2(s['precision'])}, "
                     f"recall {_fmt2(s['recall'])}, median detection delay "
                     f"{'n/a' if s['detection_delay_s'] is None else format(s['detection_delay_s'], '+g') + 's'}")
        print(line)
        for note in s["notes"]:
            print(f"      note: {note}")
    alerts = episodes[episodes["severity"] != "nodata"]
    if len(alerts):
        print(alerts.to_string(index=False))
    else:
        print("  no alert episodes")
    if s["missing_evaluations"]:
        print(f"  {s['missing_evaluations']} evaluation(s) without data")
    if result.nodata_window_s is not None:
        n_nod = s["nodata_episodes"]
        print(f"  no data: {n_nod} episode(s)"
              + (f", {format_duration(round(s['nodata_s'], 3))} in all" if n_nod else "")
              + f" (gaps of at least {format_duration(result.nodata_window_s)}, when the exported NoData "
              "alert fires; --json lists them)")
    return 0
