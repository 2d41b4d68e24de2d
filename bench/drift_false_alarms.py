"""Drift check false alarms: the issue-14 story data and a stationary simulation with daily and weekly
cycles where the recent window is 2-4 days and the baseline 2-3 weeks.

``python -m bench.drift_false_alarms [--runs 200]`` prints, for the story (the 14-day demo of
``tests/story_util.py`` and its 3-day newer export, two starts), the verdict of every series, and for the
simulation the false-alarm rate on stationary data and the detection rate of a +1 sd level shift and a
variance doubling. The drift watch's own split is used (``baseline_split``; the story's applied series
is measured from the demo's end, as after the journey's change).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from core.analysis.drift import drift
from core.policy.drift_watch import baseline_split
from data.generate import continue_fleet, generate_fleet

STARTS = ["2026-10-01T00:00:00Z", "2026-11-22T13:00:00Z"]


def story(start: str) -> dict[str, str]:
    from tests.story_util import APPLIED, CONTINUE_DAYS, DEMO

    demo, _ = generate_fleet(**DEMO, start=start)
    newer = continue_fleet(**DEMO, start=start, continue_days=CONTINUE_DAYS)
    end = demo["ts"].max()
    allp = pd.concat([demo, newer])
    out = {}
    for key, g in allp.groupby("series", sort=True):
        s = pd.Series(g["value"].to_numpy(float), index=pd.DatetimeIndex(g["ts"]))
        since = end + pd.Timedelta(minutes=1) if key == APPLIED else baseline_split(s.index)
        r = drift(s[s.index < since], s[s.index >= since])
        out[str(key)] = f"{r.verdict}: {r.reason}"
    return out


def seasonal(seed: int, base_days: int, recent_days: int, *, shift: float = 0.0, scale: float = 1.0,
             phi: float = 0.8, step_min: int = 5, start: str = "2026-01-01") -> tuple[pd.Series, pd.Series]:
    """5-minute AR(1) (unit variance) + a unit daily sine + a weekend drop of 1 (weekly cycle); the
    recent window (``recent_days``) starts at a random hour after ``base_days``; ``shift`` is in the
    whole baseline's sd, ``scale`` multiplies the recent noise."""
    rng = np.random.default_rng(seed)
    per_h = 60 // step_min
    off = int(rng.integers(0, 7 * 24))          # any hour of the week
    n = (base_days + recent_days) * 24 * per_h + off * per_h
    idx = pd.date_range(start, periods=n, freq=f"{step_min}min", tz="UTC")
    noise = lfilter([1.0], [1.0, -phi], rng.normal(0.0, np.sqrt(1 - phi ** 2), n))
    cycle = np.sin(2 * np.pi * (idx.hour + idx.minute / 60) / 24.0) - 1.0 * (idx.day_of_week >= 5)
    cut = off * per_h + base_days * 24 * per_h
    y = np.asarray(cycle) + noise
    sd = float(np.std(y[off * per_h:cut]))
    y[cut:] = cycle[cut:] + noise[cut:] * scale + shift * sd
    s = pd.Series(y, index=idx)
    return s.iloc[off * per_h:cut], s.iloc[cut:]


def rate(runs: int, **kw: float) -> tuple[int, int]:
    rng = np.random.default_rng(0)
    hits = 0
    for i in range(runs):
        bd, rd = int(rng.integers(14, 22)), int(rng.integers(2, 5))
        hits += drift(*seasonal(5000 + i, bd, rd, **kw)).verdict == "drift"
    return hits, runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    a = ap.parse_args(argv)
    for start in STARTS:
        got = story(start)
        flagged = [k for k, v in got.items() if v.startswith("drift")]
        print(f"story start {start}: {len(flagged)} of {len(got)} series drifted")
        for k, v in got.items():
            print(f"  {k}: {v}")
    for name, kw in (("stationary", {}), ("level +1 sd", {"shift": 1.0}), ("variance x2", {"scale": np.sqrt(2)})):
        h, n = rate(a.runs, **kw)
        print(f"seasonal sim (baseline 14-21 d, recent 2-4 d, daily+weekly cycle) {name}: {h}/{n} drift")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
