"""Benchmark: full analysis (baseline, seasonality, trend, change points, forecast, backtest) of one
seeded 30-day one-minute series (43,200 points).

The series: level 200 ms, daily sine (amplitude 40), weekly sine (amplitude 15), trend +1.5 ms/day,
a +25 ms level shift at day 20 00:00 UTC, Gaussian noise (sd 8) and 0.5% missing points. Prints the
median wall-clock time per stage over ``--runs`` runs (after one warm-up run that pays for imports),
the median process CPU time of a whole run (wall-clock time inflates when other jobs share the
cores) and what the analysis found next to the truth.

Run: ``python bench/analysis.py [--runs 7]``. Budget: total <= about 0.6 s on a 2-core machine.
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

from core.analysis import analyse  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    s = make_series(args.seed)
    analyse(s, unit="ms")  # warm-up: imports and first-call costs
    runs, cpu = [], []
    for _ in range(args.runs):
        c0 = time.process_time()
        runs.append(analyse(s, unit="ms"))
        cpu.append(time.process_time() - c0)
    stages = list(runs[0].timings)
    print(f"series: {len(s):,} points, 30 days at 1 min; {args.runs} runs, median wall-clock seconds per stage")
    for st in stages:
        vals = [r.timings[st] for r in runs]
        print(f"  {st:<14} {statistics.median(vals):8.4f}   (min {min(vals):.4f}, max {max(vals):.4f})")
    print(f"  {'total CPU':<14} {statistics.median(cpu):8.4f}   (process CPU time; less sensitive to a busy machine)")
    if hasattr(os, "getloadavg"):
        print(f"  load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    a = runs[-1]
    print("findings (truth: trend +1.5 ms/day plus a +25 ms shift at 2026-01-21 00:00):")
    for k, v in a.summary().items():
        if k != "timings_s":
            print(f"  {k}: {v}")
    for cp in a.change_points.points:
        print(f"  change point {cp.ts}: {cp.level_before:.1f} -> {cp.level_after:.1f} ms ({cp.change:+.1f})")
    print(f"  slope after removing shifts (change-point model): {a.change_points.slope_per_day:.2f} ms/day")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
