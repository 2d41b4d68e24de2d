"""Benchmark: calibration of the forecast intervals and size/power of the trend test, by simulation.

Forecast intervals (the default forecaster as the Trends page uses it, 72 hours ahead): share of
never-seen hours inside the 80% and 95% intervals per horizon band (1-24, 25-48, 49-72 h), pooled
over the runs, on

* ``stationary``: hourly, 4 weeks of history, daily (amplitude 5) and weekly (2) cycle plus AR(1)
  noise with phi 0.6 (innovation sd 1), one fresh seeded series per run;
* ``trend``: the same plus a trend of +0.3 per day;
* ``nab``: the real NAB series of ``$STUDIO_NAB`` (default ``../shared/nab``) with at least 31 days of hourly medians
  (rolling origins every ``--nab-step`` hours from day 28 on; each origin fits on the 8 weeks before it).

Trend test (Mann-Kendall with the autocorrelation correction, seasonality removed first as the
analysis does): false-positive rate at 5% on trend-free 30-day hourly series with the same daily and
weekly cycle and AR(1) noise phi 0 / 0.5 / 0.9, and power against a trend of ``--slope`` per day
times the noise's long-run sd ``1 / (1 - phi)``.

Run: ``python bench/calibration.py [--runs 200] [--trend-runs 500] [--nab-step 72] [--only PART] [--quick]``
(about 30 minutes of one core in all).
Exits 1 when a coverage is more than 5 points from nominal or a size exceeds 6%.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.analysis.calibration import Coverage, rolling_coverage, simulated_coverage, trend_rejections  # noqa: E402
from core.analysis.forecast import _grid  # noqa: E402
from core.analysis.seasonality import hourly  # noqa: E402
from core.data.ingest import load_metrics  # noqa: E402

NAB = Path(os.environ.get("STUDIO_NAB", Path(__file__).resolve().parents[1].parent / "shared" / "nab"))
MIN_NAB_HOURS = 31 * 24


def nab_hourly(root: Path = NAB, min_hours: int = MIN_NAB_HOURS) -> dict[str, pd.Series]:
    """Hourly medians of every NAB file with at least ``min_hours`` hours (gaps kept as NaN)."""
    out = {}
    for f in sorted((root / "data").glob("*/*.csv")):
        p = load_metrics(f).points
        h = _grid(hourly(pd.Series(p["value"].to_numpy(np.float64), index=pd.DatetimeIndex(p["ts"])), "gauge"))
        if len(h) >= min_hours:
            out[f.stem] = h
    return out


def _row(name: str, cov: Coverage, unit: str = "runs") -> tuple[str, bool]:
    ok = True
    cells = []
    for band, v in cov.table().items():
        for lv, nominal in (("coverage80", 0.80), ("coverage95", 0.95)):
            ok &= abs(v[lv] - nominal) <= 0.05
        cells.append(f"{band} h: {v['coverage80']:.1%} / {v['coverage95']:.1%}")
    return f"  {name:<11} ({cov.runs} {unit}) " + "; ".join(cells), ok


def _merge(into: Coverage, one: Coverage) -> None:
    into.runs += one.runs
    for k in one.scored:
        into.scored[k] = into.scored.get(k, 0) + one.scored[k]
        into.inside80[k] = into.inside80.get(k, 0) + one.inside80[k]
        into.inside95[k] = into.inside95.get(k, 0) + one.inside95[k]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="simulated forecasts per set")
    ap.add_argument("--trend-runs", type=int, default=500, help="simulated series per phi")
    ap.add_argument("--nab-step", type=int, default=72, help="hours between NAB rolling origins")
    ap.add_argument("--slope", type=float, default=0.02, help="power: true slope per day, in long-run sd")
    ap.add_argument("--quick", action="store_true", help="40 runs, 200 trend runs, NAB step 72 h")
    ap.add_argument("--nab", default=str(NAB), help="NAB directory (default $STUDIO_NAB or ../shared/nab)")
    ap.add_argument("--only", choices=("simulated", "nab", "trend"), default=None, help="run one part only")
    args = ap.parse_args(argv)
    if args.quick:
        args.runs, args.trend_runs, args.nab_step = 40, 200, 72
    ok = True
    t0 = time.perf_counter()
    part = args.only
    if part in (None, "simulated", "nab"):
        print("forecast interval coverage, 80% / 95% nominal, per horizon band (hours never seen):")
    if part in (None, "simulated"):
        for name, kw in (("stationary", {}), ("trend", {"slope": 0.3})):
            line, good = _row(name, simulated_coverage(args.runs, seed=10_000, **kw))
            print(line, flush=True)
            ok &= good
    if part in (None, "nab"):
        series = nab_hourly(Path(args.nab))
        if not series:
            print(f"  no NAB series of {MIN_NAB_HOURS} hours under {args.nab}")
            return 1
        cov = Coverage()
        for name, h in series.items():
            one = rolling_coverage(h, step_hours=args.nab_step)
            print(_row(name, one, "origins")[0], flush=True)
            _merge(cov, one)
        line, good = _row("nab", cov, f"origins on {len(series)} series")
        print(line, flush=True)
        ok &= good
    if part not in (None, "trend"):
        print(f"{time.perf_counter() - t0:.0f} s; {'PASS' if ok else 'FAIL'} (coverage within 5 points)")
        return 0 if ok else 1
    print(f"trend test at 5%: false-positive rate (size) and power (slope {args.slope:g} long-run sd/day), "
          f"{args.trend_runs} series per phi:")
    for phi in (0.0, 0.5, 0.9):
        k, n = trend_rejections(args.trend_runs, phi=phi, seed=20_000)
        kp, n_p = trend_rejections(args.trend_runs, phi=phi, seed=30_000, slope=args.slope / (1 - phi))
        print(f"  phi {phi:.1f}: size {k / n:.1%} ({k}/{n}), power {kp / n_p:.1%} ({kp}/{n_p})", flush=True)
        ok &= k / n <= 0.06
    print(f"{time.perf_counter() - t0:.0f} s; {'PASS' if ok else 'FAIL'} (coverage within 5 points, size <= 6%)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
