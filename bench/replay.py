"""Benchmark rule replay and threshold sweeps: ``python bench/replay.py [--quick]``.

Prints the timings against the speed goals (one rule over 1M points <= 50 ms; 200 thresholds over a
43,200-point series <= 200 ms, also when each threshold is scored against incident windows; a grid of
200 levels x 8 ``for`` periods over the same month, scored against incidents, <= 500 ms, printed beside
the single replay of one of its cells and the loop of one-``for`` sweeps it replaces) and, for
scale, the ratio to baselines timed in the same process: a bare numpy comparison ``values > threshold``
over the same array(s), the plain reference loop (:func:`core.alerting.replay.replay_reference`) on a slice,
extrapolated per point, and the per-threshold path for incident scoring (replay each threshold, score
its episodes with ``Replay.summary(incidents=...)``) on a subset of thresholds, extrapolated.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.alerting.replay import replay, replay_reference  # noqa: E402
from core.alerting.rules import Rule  # noqa: E402
from core.alerting.sweep import auto_levels, sweep, sweep_grid  # noqa: E402

N_INCIDENTS = 20

GOAL_REPLAY_MS = 50.0
GOAL_SWEEP_MS = 200.0
GOAL_GRID_MS = 500.0
FORS = ["0s", "1m", "2m", "5m", "10m", "15m", "30m", "1h"]


def series(n: int, seed: int = 0, nan_share: float = 0.001) -> pd.Series:
    """A bursty latency-like series at 1-minute steps with a few NaN values."""
    rng = np.random.default_rng(seed)
    base = 100 + np.cumsum(rng.standard_normal(n)) * 0.05
    bursts = (rng.random(n) < 0.002).astype(float)
    spikes = np.convolve(bursts, np.ones(30), mode="same") * 40
    v = base + rng.gamma(2.0, 5.0, n) + spikes
    v[rng.random(n) < nan_share] = np.nan
    ts = pd.date_range("2025-01-01", periods=n, freq="1min", tz="UTC")
    return pd.Series(v, index=ts, name='latency_p95_ms{service="api"}')


def incidents(s: pd.Series, k: int = N_INCIDENTS, seed: int = 1) -> pd.DataFrame:
    """``k`` 30-minute incident windows at seeded random places in the series."""
    rng = np.random.default_rng(seed)
    at = np.sort(rng.choice(np.arange(100, len(s) - 100), k, replace=False))
    return pd.DataFrame({"start": s.index[at], "end": s.index[at] + pd.Timedelta("30min")})


def best_ms(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return min(out)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--points", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    repeat = 3 if args.quick else 7

    s = series(args.points)
    v = s.to_numpy()
    rule = Rule("api latency", 'latency_p95_ms{service="*"}', ">", warning=140, critical=160, for_s="5m",
                keep_firing_for_s="10m", recovery=125, consecutive=2, missing="nodata")
    replay(rule, s)  # warm up
    t_replay = best_ms(lambda: replay(rule, s), repeat)
    t_bare = best_ms(lambda: (v > 140.0).sum(), repeat)
    ref_n = 20_000
    t_ref = best_ms(lambda: replay_reference(rule, s.iloc[:ref_n]), 1) * (len(s) / ref_n)
    n_eps = len(replay(rule, s).episodes)

    s2 = s.iloc[:43_200]
    v2 = s2.to_numpy()
    thr = np.linspace(100, 200, 200)
    sweep(s2, ">", thr, for_s="5m", keep_firing_for_s="10m", recovery_offset=10)
    t_sweep = best_ms(lambda: sweep(s2, ">", thr, for_s="5m", keep_firing_for_s="10m", recovery_offset=10),
                      repeat)
    t_sweep_plain = best_ms(lambda: sweep(s2, ">", thr), repeat)
    t_bare2 = best_ms(lambda: (v2[None, :] > thr[:, None]).sum(axis=1), repeat)
    inc = incidents(s2)
    shape = dict(for_s="5m", keep_firing_for_s="10m")
    t_sweep_inc = best_ms(lambda: sweep(s2, ">", thr, recovery_offset=10, incidents=inc, **shape), repeat)

    def per_threshold(ts: np.ndarray) -> None:
        for t in ts:
            replay(Rule("x", "m", ">", critical=t, recovery=t - 10, **shape), s2).summary(incidents=inc)

    sub = thr[::10]
    t_loop_inc = best_ms(lambda: per_threshold(sub), 1) * (thr.size / sub.size)

    # the level x for grid: 200 levels from the series' quantiles x 8 pending periods, scored
    levels = auto_levels(v2, ">", 200)
    grid_kw = dict(keep_firing_for_s="10m", recovery_offset=10, incidents=inc)
    sweep_grid(s2, ">", levels, FORS, **grid_kw)
    t_grid = best_ms(lambda: sweep_grid(s2, ">", levels, FORS, **grid_kw), repeat)
    t_grid_plain = best_ms(lambda: sweep_grid(s2, ">", levels, FORS), repeat)
    t_grid_sweeps = best_ms(lambda: [sweep(s2, ">", levels, for_s=f, **grid_kw) for f in FORS], repeat)
    one = Rule("x", "m", ">", critical=float(levels[100]), recovery=float(levels[100]) - 10, for_s="5m",
               keep_firing_for_s="10m")
    t_one = best_ms(lambda: replay(one, s2).summary(incidents=inc), repeat)
    n_cells = levels.size * len(FORS)

    print(f"replay, 2 levels, {len(s):,} points ({n_eps} episodes): {t_replay:8.1f} ms "
          f"(goal <= {GOAL_REPLAY_MS:.0f} ms) {'OK' if t_replay <= GOAL_REPLAY_MS else 'SLOW'}")
    print(f"  baseline bare numpy `values > t` + sum: {t_bare:8.2f} ms  -> replay is {t_replay / t_bare:6.1f}x")
    print(f"  baseline replay_reference loop (from {ref_n:,} pts, extrapolated): {t_ref:8.0f} ms  "
          f"-> replay is {t_ref / t_replay:6.0f}x faster")
    print(f"sweep, 200 thresholds x {len(s2):,} points, for/keep/recovery: {t_sweep:8.1f} ms "
          f"(goal <= {GOAL_SWEEP_MS:.0f} ms) {'OK' if t_sweep <= GOAL_SWEEP_MS else 'SLOW'}")
    print(f"sweep, 200 thresholds, plain (no for/keep/recovery): {t_sweep_plain:8.1f} ms")
    print(f"  baseline bare numpy 200 x `values > t` + sum: {t_bare2:8.2f} ms  -> sweep is "
          f"{t_sweep / t_bare2:6.1f}x")
    print(f"sweep, 200 thresholds, for/keep/recovery + {len(inc)} incidents scored: {t_sweep_inc:8.1f} ms "
          f"(goal <= {GOAL_SWEEP_MS:.0f} ms) {'OK' if t_sweep_inc <= GOAL_SWEEP_MS else 'SLOW'}")
    print(f"  baseline bare numpy 200 x `values > t` + sum: {t_bare2:8.2f} ms  -> sweep is "
          f"{t_sweep_inc / t_bare2:6.1f}x")
    print(f"  baseline per-threshold replay + score_events (from {sub.size}, extrapolated): {t_loop_inc:8.0f} ms  "
          f"-> sweep is {t_loop_inc / t_sweep_inc:6.1f}x faster")
    print(f"grid, {levels.size} levels x {len(FORS)} for x {len(s2):,} points, keep/recovery + {len(inc)} "
          f"incidents scored: {t_grid:8.1f} ms (goal <= {GOAL_GRID_MS:.0f} ms) "
          f"{'OK' if t_grid <= GOAL_GRID_MS else 'SLOW'}; plain {t_grid_plain:.1f} ms")
    print(f"  baseline one replay + summary of a single cell: {t_one:8.2f} ms  -> the grid of {n_cells:,} cells "
          f"costs {t_grid / t_one:5.1f} single replays ({n_cells * t_one / t_grid:6.0f}x faster than replaying "
          "each cell)")
    print(f"  baseline {len(FORS)} one-for sweeps (same options): {t_grid_sweeps:8.1f} ms  -> grid is "
          f"{t_grid_sweeps / t_grid:5.1f}x faster")
    print(f"  baseline bare numpy 200 x `values > t` + sum: {t_bare2:8.2f} ms  -> grid is {t_grid / t_bare2:6.1f}x")
    return {"replay_ms": t_replay, "grid_ms": t_grid, "grid_plain_ms": t_grid_plain, "one_replay_ms": t_one,
            "grid_sweeps_ms": t_grid_sweeps, "bare_ms": t_bare, "reference_ms": t_ref, "sweep_ms": t_sweep,
            "sweep_plain_ms": t_sweep_plain, "bare_sweep_ms": t_bare2, "sweep_incidents_ms": t_sweep_inc,
            "per_threshold_incidents_ms": t_loop_inc}


if __name__ == "__main__":
    main()
