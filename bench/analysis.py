"""Benchmark: the full analysis (quality, anomaly detection, outages, baseline, seasonality, trend,
change points, forecast, backtest) of one seeded 30-day one-minute series (43,200 points).

The series: level 200 ms, daily sine (amplitude 40), weekly sine (amplitude 15), trend +1.5 ms/day,
a +25 ms level shift at day 20 00:00 UTC, Gaussian noise (sd 8) and 0.5% missing points.

Each of ``--runs`` runs analyses a fresh series (seeds ``seed, seed+1, ...``) so no run is helped by
results memoised from an earlier one; one warm-up run first pays for imports. Printed: the median
wall-clock and process CPU seconds (``time.process_time``, every thread of the process) per stage and
in total, and the same for a same-process *reference pass* over the same series: the cheapest useful
look at it (pandas hourly medians plus numpy p50/p90/p95/p99 of the raw points). The ratio
analysis / reference puts the figures in machine-independent terms. Wall-clock time inflates when
other jobs share the cores; CPU time is the budgeted figure.

Run: ``python bench/analysis.py [--runs 7] [--no-backtest]``. Budget (issue 4): total <= 1 s on a
2-core machine; the script exits 1 when the median total CPU exceeds ``--budget``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.analysis.pipeline import analyse  # noqa: E402

SHIFT_AT = pd.Timestamp("2026-01-21", tz="UTC")   # day 20 of a series starting 2026-01-01


def make_series(seed: int = 42, days: int = 30) -> pd.Series:
    """The seeded benchmark series described in the module docstring (values in ms)."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    idx = pd.date_range("2026-01-01", periods=n, freq="1min", tz="UTC")
    t_days = np.arange(n) / 1440.0
    y = (200 + 40 * np.sin(2 * np.pi * t_days) + 15 * np.sin(2 * np.pi * t_days / 7) + 1.5 * t_days
         + rng.normal(0, 8, n))
    y[idx >= SHIFT_AT] += 25
    y[rng.random(n) < 0.005] = np.nan
    return pd.Series(y, index=idx, name='latency_ms{service="bench"}')


def reference_pass(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """The reference workload: hourly medians (pandas resample) and p50/p90/p95/p99 of raw points."""
    hourly = s.resample("1h").median()
    v = s.to_numpy()
    return hourly, np.quantile(v[np.isfinite(v)], [0.5, 0.9, 0.95, 0.99])


def _timed(fn, *args, **kw) -> tuple[object, float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return out, time.perf_counter() - w0, time.process_time() - c0


def measure(runs: int = 7, seed: int = 42, run_backtest: bool = True) -> dict[str, object]:
    """Median wall/CPU seconds per stage over ``runs`` fresh series, plus the reference pass.

    Returns ``{"stages": {stage: (wall, cpu)}, "reference": (wall, cpu), "analyses": [...]}``.
    """
    analyse(make_series(seed - 1), unit="ms", run_backtest=run_backtest)    # warm-up
    analyses, ref_wall, ref_cpu = [], [], []
    for i in range(runs):
        s = make_series(seed + i)
        analyses.append(analyse(s, unit="ms", run_backtest=run_backtest))
        best_w, best_c = [], []
        for _ in range(5):                       # the reference is short: take its median of 5
            _, w, c = _timed(reference_pass, s)
            best_w.append(w)
            best_c.append(c)
        ref_wall.append(statistics.median(best_w))
        ref_cpu.append(statistics.median(best_c))
    stages = {st: (statistics.median(a.timings[st] for a in analyses),
                   statistics.median(a.cpu_timings[st] for a in analyses))
              for st in analyses[0].timings}
    return {"stages": stages, "reference": (statistics.median(ref_wall), statistics.median(ref_cpu)),
            "analyses": analyses}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-backtest", action="store_true", help="the page path: one forecast fit, no backtest")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds of CPU allowed for the whole analysis")
    args = ap.parse_args(argv)
    m = measure(args.runs, args.seed, not args.no_backtest)
    stages, (ref_w, ref_c) = m["stages"], m["reference"]
    print(f"series: 43,200 points, 30 days at 1 min; median of {args.runs} runs (fresh seeded series each)")
    print(f"  {'stage':<14} {'wall s':>8} {'CPU s':>8}")
    for st, (w, c) in stages.items():
        if st != "total":
            print(f"  {st:<14} {w:8.4f} {c:8.4f}")
    tw, tc = stages["total"]
    print(f"  {'total':<14} {tw:8.4f} {tc:8.4f}")
    if "backtest" in stages:
        bw, bc = stages["backtest"]
        print(f"  {'without backtest':<14} {tw - bw:6.4f} {tc - bc:8.4f}   (page path: one forecast fit)")
    print(f"  {'reference':<14} {ref_w:8.4f} {ref_c:8.4f}   (pandas hourly medians + numpy percentiles)")
    print(f"  ratio analysis / reference: wall {tw / ref_w:.0f}x, CPU {tc / max(ref_c, 1e-9):.0f}x")
    if hasattr(os, "getloadavg"):
        print(f"  load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    ok = tc <= args.budget
    print(f"  budget: total CPU {tc:.3f} s {'<=' if ok else '>'} {args.budget:g} s -> {'PASS' if ok else 'FAIL'}")
    a = m["analyses"][0]
    print(f"findings for seed {args.seed} (truth: trend +1.5 ms/day plus a +25 ms shift at 2026-01-21 00:00):")
    for k, v in a.summary().items():
        if k not in ("timings_s", "cpu_s"):
            print(f"  {k}: {v}")
    for cp in a.change_points.points:
        print(f"  change point {cp.ts}: {cp.level_before:.1f} -> {cp.level_after:.1f} ms ({cp.change:+.1f})")
    print(f"  slope after removing shifts (change-point model): {a.change_points.slope_per_day:.2f} ms/day")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
