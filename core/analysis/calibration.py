"""Simulation checks of the forecast intervals and the trend test (seeded, reproducible).

Used by the test suite (small run counts) and ``bench/calibration.py`` (large ones): empirical
coverage of the 80% / 95% forecast intervals per 24-hour horizon band, and the false-positive rate
(size) and power of the trend test, on synthetic hourly series with known structure: level 50,
daily sine (amplitude ``daily``), weekly sine (``weekly``), a linear trend (``slope`` per day) and
AR(1) noise with coefficient ``phi`` and innovation sd ``sd``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import signal

from core.analysis.forecast import BAND_HOURS, forecast
from core.analysis.seasonality import classical_seasonal
from core.analysis.trend import trend_test

START = "2026-01-05"


def ar1(n: int, phi: float, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Stationary AR(1) noise: ``x_t = phi x_(t-1) + e_t``, ``e ~ N(0, sd)``, started from its
    stationary distribution (``scipy.signal.lfilter``, no Python loop)."""
    e = rng.normal(0, sd, n)
    x0 = rng.normal(0, sd / np.sqrt(1 - phi * phi)) if abs(phi) < 1 else 0.0
    y, _ = signal.lfilter([1.0], [1.0, -phi], e, zi=[phi * x0])
    return y


def seasonal_series(hours: int, *, seed: int, phi: float = 0.6, sd: float = 1.0, daily: float = 5.0,
                    weekly: float = 2.0, slope: float = 0.0, start: str = START) -> pd.Series:
    """Hourly synthetic series (see the module notes) on a UTC index starting ``start``."""
    rng = np.random.default_rng(seed)
    t = np.arange(hours) / 24.0
    y = (50 + daily * np.sin(2 * np.pi * t) + weekly * np.sin(2 * np.pi * t / 7) + slope * t
         + ar1(hours, phi, sd, rng))
    return pd.Series(y, index=pd.date_range(start, periods=hours, freq="1h", tz="UTC"))


@dataclass
class Coverage:
    """Pooled coverage per horizon band: ``inside80[b] / scored[b]``; ``runs`` forecasts behind it."""

    runs: int = 0
    scored: dict[str, int] = field(default_factory=dict)
    inside80: dict[str, int] = field(default_factory=dict)
    inside95: dict[str, int] = field(default_factory=dict)

    def add(self, frame: pd.DataFrame, actual: np.ndarray) -> None:
        self.runs += 1
        a = np.asarray(actual, dtype=np.float64)
        for s in range(0, len(frame), BAND_HOURS):
            f, y = frame.iloc[s:s + BAND_HOURS], a[s:s + BAND_HOURS]
            ok = np.isfinite(y)
            key = f"{s + 1}-{s + len(f)}"
            self.scored[key] = self.scored.get(key, 0) + int(ok.sum())
            for lv, store in (("80", self.inside80), ("95", self.inside95)):
                hit = (y >= f["lo" + lv].to_numpy()) & (y <= f["hi" + lv].to_numpy()) & ok
                store[key] = store.get(key, 0) + int(hit.sum())

    def table(self) -> dict[str, dict[str, float]]:
        """``{band: {"coverage80", "coverage95", "scored"}}``."""
        return {k: {"coverage80": self.inside80[k] / n, "coverage95": self.inside95[k] / n, "scored": n}
                for k, n in self.scored.items() if n}

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "bands": self.table()}


def simulated_coverage(runs: int, *, history_hours: int = 672, horizon_hours: int = 72, seed: int = 0,
                       **series: Any) -> Coverage:
    """Fit the default forecaster on ``history_hours`` of a fresh series per run, score the next
    ``horizon_hours`` (never seen)."""
    cov = Coverage()
    for r in range(runs):
        s = seasonal_series(history_hours + horizon_hours, seed=seed + r, **series)
        fc = forecast(hourly_values=s.iloc[:history_hours], horizon_days=horizon_hours / 24)
        if fc.sufficient:
            cov.add(fc.frame, s.iloc[history_hours:].to_numpy())
    return cov


def rolling_coverage(h: pd.Series, *, horizon_hours: int = 72, min_history_hours: int = 672,
                     max_history_hours: int = 1344, step_hours: int = 24, cov: Coverage | None = None) -> Coverage:
    """Rolling origins over one real hourly series: every ``step_hours`` from ``min_history_hours``
    on, fit on the hours before the origin (at most the last ``max_history_hours``, 8 weeks: an
    upload's worth, and it bounds the cost) and score the next ``horizon_hours``."""
    cov = cov if cov is not None else Coverage()
    for end in range(min_history_hours, len(h) - horizon_hours + 1, step_hours):
        fc = forecast(hourly_values=h.iloc[max(0, end - max_history_hours):end], horizon_days=horizon_hours / 24)
        if fc.sufficient:
            cov.add(fc.frame, h.iloc[end:end + horizon_hours].to_numpy())
    return cov


def trend_rejections(runs: int, *, phi: float, slope: float = 0.0, days: int = 30, seed: int = 0,
                     sd: float = 1.0, alpha: float = 0.05, daily: float = 5.0, weekly: float = 2.0) -> tuple[int, int]:
    """Rejections of the trend test at level ``alpha`` among ``runs`` hourly series of ``days``
    (:func:`seasonal_series`: daily and weekly cycle, AR(1) noise ``phi``, true slope ``slope`` per
    day), the seasonal component removed first as the analysis does
    (:func:`core.analysis.seasonality.classical_seasonal`): (rejected, runs)."""
    k = 0
    for r in range(runs):
        s = seasonal_series(days * 24, seed=seed + r, phi=phi, sd=sd, daily=daily, weekly=weekly, slope=slope)
        seasonal, periods, absorbed = classical_seasonal(s)
        k += bool(trend_test(hourly_values=s, seasonal=seasonal if periods else None, alpha=alpha,
                             seasonal_noise=absorbed).significant)
    return k, runs
