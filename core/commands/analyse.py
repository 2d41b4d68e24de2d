"""Analyse one series of a metric file: trend, seasonality, forecast with calibrated intervals, backtest.

The file is read as an upload would store it (:func:`core.data.ingest.load_metrics`; what was read
and any warnings go to standard error). The numbers are those of the Trends page with the time range
"all" (the whole file): the trend, seasonality and level shifts of
:func:`core.analysis.pipeline.analyse_range`, and the forecast from the last point with its
rolling-origin backtest from :func:`core.analysis.pipeline.forecast_from`, the same calls the page
makes. Anomaly detection is not run here (``python -m core detect`` does that).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.alerting.rules import parse_duration
from core.analysis.pipeline import analyse_range, forecast_from
from core.data.ingest import load_metrics
from core.errors import NotFound, ValidationError

TREND_KEYS = ("sufficient", "reason", "n", "freq", "slope_per_day", "slope_lower", "slope_upper", "p_value",
              "p_value_iid", "significant", "alpha", "variance_factor", "correction", "seasonality_removed",
              "verdict")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="metric file in any supported format (as uploaded)")
    parser.add_argument("--series", default=None, help="series key to analyse when the file holds several")
    parser.add_argument("--horizon", default="48h",
                        help="forecast horizon, 1h to 7d (e.g. 72h, 3d; default 48h, the page's default)")
    parser.add_argument("--json", action="store_true", help="print the analysis as JSON")


def _clean(x: Any) -> Any:
    """JSON-safe values: NaN/inf -> None, numpy scalars -> Python, timestamps -> ISO 8601 UTC."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, pd.Timestamp):
        return x.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ") if x.tz else x.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    return x


def _pick(points: pd.DataFrame, key: str | None, file: str) -> str:
    keys = sorted(points["series"].astype(str).unique())
    if not keys:
        raise ValidationError(f"{file} holds no points", path="file")
    if key is None:
        if len(keys) != 1:
            raise ValidationError(f"{file} holds {len(keys)} series; choose one with --series (e.g. {keys[:3]})",
                                  path="--series")
        return keys[0]
    if key not in keys:
        raise NotFound(f"series {key!r} not in {file}; it holds {keys[:5]}")
    return key


def analysis_dict(values: pd.Series, *, kind: str = "gauge", unit: str = "", horizon_days: float = 2.0,
                  series: str = "") -> dict[str, Any]:
    """The analysis of one series as a JSON-friendly dict (see the module notes)."""
    a = analyse_range(values, kind=kind, unit=unit, series=series, horizon_days=None, detector=None)
    fc, bt = forecast_from(values, kind=kind, horizon_days=horizon_days)
    t = a.trend.to_dict()
    frame = fc.frame if fc.sufficient else pd.DataFrame(columns=["ts", "mean", "lo80", "hi80", "lo95", "hi95"])
    seas = a.seasonality
    return _clean({
        "series": series, "kind": kind, "unit": unit, "points": a.n_points, "start": a.start, "end": a.end,
        "trend": {k: t.get(k) for k in TREND_KEYS},
        "seasonality": {"sufficient": seas.sufficient, "reason": seas.reason, "daily_strength": seas.daily_strength,
                        "weekly_strength": seas.weekly_strength, "verdict": seas.verdict},
        "level_shifts": [p.to_dict() for p in a.change_points.points] if a.change_points.sufficient else [],
        "forecast_info": {**fc.to_dict(), "requested_hours": int(round(horizon_days * 24)),
                          "intervals": fc.interval_text() if fc.sufficient else ""},
        "forecast": frame.to_dict(orient="records"),
        "backtest": bt.to_dict() if bt is not None else None,
    })


def _text(d: dict[str, Any]) -> str:
    t, fi, bt = d["trend"], d["forecast_info"], d["backtest"]
    lines = [f"{d['series']} ({d['kind']}): {d['points']:,} points from {d['start']} to {d['end']}",
             f"trend: {t['verdict'] or t['reason']}" + (f" [{t['correction']}]" if t.get("correction") else ""),
             f"seasonality: {d['seasonality']['verdict'] or d['seasonality']['reason']}"]
    if fi["sufficient"]:
        short = (f", shortened from {fi['requested_hours']} h: at most half the history"
                 if fi["horizon_hours"] < fi["requested_hours"] else "")
        lines.append(f"forecast: {fi['horizon_hours']} h of hourly medians{short} ({fi['method']}; "
                     f"{fi['intervals']})")
        lines.append(f"  {'ts':<20} {'mean':>10} {'lo80':>10} {'hi80':>10} {'lo95':>10} {'hi95':>10}")
        for r in d["forecast"]:
            lines.append(f"  {r['ts']:<20} " + " ".join(f"{r[k]:>10.4g}" for k in ("mean", "lo80", "hi80", "lo95",
                                                                                  "hi95")))
    else:
        lines.append(f"forecast: insufficient data: {fi['reason']}")
    if bt is not None:
        if not bt["sufficient"]:
            lines.append(f"backtest: not possible: {bt['reason']}")
        else:
            lines.append(f"backtest: rolling origins over the last {bt['holdout_hours']} h, {bt['n_origins']} "
                         f"origins; MAE {bt['mae']:.4g} (seasonal naive {bt['naive_mae']:.4g})")
            for b in bt["bands"]:
                lines.append(f"  {b['hours']:>9}: 80% band {b['coverage80']:.0%} (95% CI {b['ci80'][0]:.0%}-"
                             f"{b['ci80'][1]:.0%}), 95% band {b['coverage95']:.0%} ({b['ci95'][0]:.0%}-"
                             f"{b['ci95'][1]:.0%}), {b['n_origins']} origins")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    horizon_s = parse_duration(args.horizon, path="--horizon")
    if not 3600 <= horizon_s <= 7 * 86400:
        raise ValidationError(f"must be between 1h and 7d, got {args.horizon!r}", path="--horizon")
    lm = load_metrics(Path(args.file))
    print(lm.report(), file=sys.stderr)
    for w in lm.warnings:
        print(f"warning: {w}", file=sys.stderr)
    key = _pick(lm.points, args.series, args.file)
    df = lm.points[lm.points["series"].astype(str) == key]
    values = pd.Series(pd.to_numeric(df["value"], errors="coerce").to_numpy(dtype=np.float64),
                       index=pd.DatetimeIndex(df["ts"]), name=key)
    kind = lm.kinds.get(key, "gauge") or "gauge"
    unit = lm.units.get(key, "") or ""
    d = analysis_dict(values, kind=kind, unit=unit, horizon_days=horizon_s / 86400, series=key)
    print(json.dumps(d, indent=2) if args.json else _text(d))
    return 0
