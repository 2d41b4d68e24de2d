"""Benchmark: fleet recommendations over the 4.32M-row benchmark set against a bare numpy percentile pass.

The data are those of ``bench/ingest.py`` (100 series x 43,200 one-minute points, seeded: series i is
``50 + 10 i + 5 N(0, 1)``), built in memory here with the same recipe rather than read from its CSV,
so the figures time the recommendations, not CSV parsing. Times (wall seconds, best of ``--repeat``):

* ``numpy``: ``np.quantile(values, [0.99, 0.999])`` per series (the bare percentile pass);
* ``fleet``: :func:`core.alerting.recommend.fleet.recommend_fleet` of all 100 series (balanced preset,
  every strategy scored, bootstrap, held-out validation) in a local process pool of ``--workers``;
* ``one``: one series with its full preview: :func:`core.alerting.recommend.recommend` with a rule
  in force (candidates table, constraints, validation, confidence, before/after comparison).

Goals: fleet <= 10 s on this 2-core machine, one series <= 1 s; the ratio fleet / numpy is printed.
CPU seconds (this process and the pool's workers) are printed beside each wall time: on a shared
machine the wall time grows with other jobs' load, the CPU seconds do not; the bench test
(``pytest -m bench``) judges the CPU seconds (fleet <= 10 s, one series <= 1 s).
Run as ``python bench/recommend.py [--repeat 2] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.alerting.recommend import recommend  # noqa: E402
from core.alerting.recommend.fleet import recommend_fleet, split_points  # noqa: E402
from core.alerting.rules import Rule  # noqa: E402

N_SERIES = 100
N_POINTS = 43_200
GOAL_FLEET_S = 10.0
GOAL_ONE_S = 1.0


def bench_points(n_series: int = N_SERIES, n_points: int = N_POINTS, seed: int = 42) -> pd.DataFrame:
    """The benchmark set of ``bench/ingest.py`` as a points frame ``series, ts, value``."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-01-01", periods=n_points, freq="1min", tz="UTC")
    frames = []
    for i in range(n_series):
        vals = np.round(50.0 + 10.0 * i + 5.0 * rng.standard_normal(n_points), 4)
        frames.append(pd.DataFrame({"series": f'svc_latency_ms{{host="h{i:03d}"}}', "ts": ts, "value": vals}))
    return pd.concat(frames, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    points = bench_points()
    items = split_points(points)
    print(f"{len(points):,} points, {len(items)} series, {args.workers} worker(s)")

    def numpy_pass() -> None:
        for _, _, v, *_ in items:
            np.quantile(v[np.isfinite(v)], [0.99, 0.999])

    key, t, v = items[0][:3]
    one = pd.Series(v, index=pd.DatetimeIndex(t.astype("datetime64[ns]")).tz_localize("UTC"), name=key)
    rule = Rule(name="h0", series=key, warning=60.0, critical=70.0, for_s=60)

    cpu: dict[str, float] = {}

    def cpu_s() -> float:
        a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    def timed(fn, name: str) -> float:  # noqa: ANN001
        best = float("inf")
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), cpu_s()
            fn()
            wall = time.perf_counter() - t0
            if wall < best:
                best, cpu[name] = wall, cpu_s() - c0
        return best

    t_np = timed(numpy_pass, "numpy")
    results: list = []
    t_fleet = timed(lambda: results.__setitem__(slice(None), recommend_fleet(items, workers=args.workers)), "fleet")
    t_one = timed(lambda: recommend(one, current=rule), "one")
    ok = sum(1 for r in results if not r.get("insufficient"))
    load = os.getloadavg()[0]
    print(f"load average (1 min) {load:.1f} on {os.cpu_count()} cores; CPU seconds in brackets")
    print(f"numpy percentile pass : {t_np:8.3f} s  [{cpu['numpy']:.2f}]")
    print(f"fleet recommendations : {t_fleet:8.3f} s  [{cpu['fleet']:.2f}]  ({ok}/{len(results)} recommended; goal <= {GOAL_FLEET_S:g} s)"
          f"  ratio fleet/numpy = {t_fleet / t_np:.0f}x wall, {cpu['fleet'] / max(cpu['numpy'], 1e-9):.0f}x CPU")
    print(f"one series + preview  : {t_one:8.3f} s  [{cpu['one']:.2f}]  (goal <= {GOAL_ONE_S:g} s)")
    met = t_fleet <= GOAL_FLEET_S and t_one <= GOAL_ONE_S
    print("wall-clock goals met" if met else "wall-clock goals NOT met (see the load average)")
    print(f"cpu_fleet_s={cpu['fleet']:.3f} cpu_one_s={cpu['one']:.3f} wall_fleet_s={t_fleet:.3f} wall_one_s={t_one:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
