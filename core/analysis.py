"""One call that runs every analysis stage for one series and times each stage.

:func:`analyse` aggregates once to hourly medians of the raw points (shared by seasonality, trend,
change points and forecast) and runs, in order: quality (``core.quality.assess_series`` when that
module is present), baseline, seasonality (MSTL), trend and change points (trend on the
MSTL-deseasonalised hourly medians; change points fit their own seasonal slot means with the shifts
removed), forecast and its backtest, and an
optional detector. Counters are analysed as per-second rates (:func:`core.baseline.counter_to_rate`).

Incident windows and the ``mask`` exclude points from the *baseline* only; trend, seasonality and
forecast describe the series as recorded (an incident is part of its history; excluding it would
open holes that the hourly grid would have to interpolate).

Thin data never yields a confident number: each stage returns its own result with
``sufficient=False`` and a reason, and the other stages still run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.baseline import Baseline, _as_series, _check_kind, compute_baseline, counter_to_rate
from core.forecast import Backtest, Forecast, backtest, forecast
from core.seasonality import Seasonality, analyse_seasonality, hourly
from core.trend import ChangePoints, Trend, change_points, trend_test

STAGES = ("prepare", "quality", "baseline", "seasonality", "trend", "change_points", "forecast", "backtest",
          "detector")


@dataclass
class Analysis:
    """Everything :func:`analyse` found for one series; ``timings`` holds seconds per stage and
    ``total``. ``values`` is the analysed series (per-second rate for counters)."""

    kind: str
    unit: str
    n_points: int
    values: pd.Series = field(repr=False)
    hourly: pd.Series = field(repr=False)
    quality: Any | None
    baseline: Baseline
    seasonality: Seasonality
    trend: Trend
    change_points: ChangePoints
    forecast: Forecast
    backtest: Backtest | None
    detections: Any | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Plain, JSON-friendly headline numbers and verdicts."""
        b = self.baseline
        trend = self.trend.verdict or self.trend.reason
        cps = self.change_points
        if self.trend.sufficient and cps.sufficient and cps.points:
            trend += (f" (includes {len(cps.points)} level shift(s); slope between shifts "
                      f"{cps.slope_per_day:.3g}{' ' + self.unit if self.unit else ''}/day)")
        return {
            "kind": self.kind, "points": self.n_points,
            "baseline": (f"median {b.median.value:.4g} (95% CI {b.median.lower:.4g} to {b.median.upper:.4g})"
                         if b.sufficient and b.median is not None and np.isfinite(b.median.lower)
                         else (b.reason or "no confidence interval")),
            "trend": trend,
            "change_points": len(self.change_points.points) if self.change_points.sufficient
            else self.change_points.reason,
            "seasonality": self.seasonality.verdict or self.seasonality.reason,
            "forecast": (f"{self.forecast.horizon_hours} h ahead ({self.forecast.method})"
                         if self.forecast.sufficient else self.forecast.reason),
            "backtest": self.backtest.summary() if self.backtest is not None else "not run",
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }


def _quality(values: pd.Series, kind: str) -> Any | None:
    try:
        from core.quality import assess_series
    except ImportError:
        return None
    return assess_series(values, kind)


def analyse(values: pd.Series, kind: str = "gauge", incidents: pd.DataFrame | None = None, *,
            mask: np.ndarray | pd.Series | None = None, series: str | None = None, unit: str = "",
            horizon_days: float = 7, holdout_days: float = 3, run_backtest: bool = True,
            detector: Callable[[pd.Series], Any] | Any | None = None) -> Analysis:
    """Run every analysis stage on one series and time them.

    Parameters
    ----------
    values : pandas.Series
        Raw values indexed by UTC timestamps (NaN = missing).
    kind : str
        ``gauge``, ``counter`` (analysed as a per-second rate), ``rate`` or ``histogram_quantile``
        (never averaged: medians and percentiles of raw points only).
    incidents : pandas.DataFrame, optional
        ``start``/``end`` (and optionally ``series``) windows left out of the baseline.
    mask : array of bool, optional
        Points to leave out of the baseline (e.g. detected outages), aligned with ``values``.
    unit : str
        Unit for verdicts ("ms" -> "rising 2.1 ms/day").
    horizon_days : float
        Forecast horizon (at most 7 days, and at most half the history).
    holdout_days : float
        Hold-out tail of the backtest.
    detector : callable or estimator, optional
        Hook for the anomaly detectors: called as ``detector(values)``, or ``detector.fit(values)``
        then ``detector.score(values)`` for an estimator; the result lands in ``detections``.

    Returns
    -------
    Analysis
    """
    _check_kind(kind)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    t0 = time.perf_counter()
    raw = _as_series(values)
    s = counter_to_rate(raw) if kind == "counter" else raw
    hv = hourly(s, "gauge" if kind == "counter" else kind)
    timings["prepare"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    quality = _quality(raw, kind)
    timings["quality"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    base = compute_baseline(s, "rate" if kind == "counter" else kind, incidents=incidents, mask=mask,
                            series=series)
    base.kind = kind
    timings["baseline"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    seas = analyse_seasonality(s, hourly_values=hv)
    seasonal = None
    if seas.sufficient and seas.decomposition is not None:
        seasonal = seas.decomposition.seasonal_total()
    timings["seasonality"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tr = trend_test(hourly_values=hv, seasonal=seasonal, unit=unit)
    timings["trend"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cps = change_points(hourly_values=hv)
    timings["change_points"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n_hours = int(np.isfinite(hv.to_numpy()).sum())
    horizon = min(float(horizon_days), max(1.0, float(n_hours // 48)))
    fc = forecast(hourly_values=hv, horizon_days=horizon)
    timings["forecast"] = time.perf_counter() - t0

    bt = None
    if run_backtest:
        t0 = time.perf_counter()
        bt = backtest(hourly_values=hv, holdout_days=holdout_days)
        timings["backtest"] = time.perf_counter() - t0

    detections = None
    if detector is not None:
        t0 = time.perf_counter()
        if hasattr(detector, "fit") and hasattr(detector, "score"):
            detector.fit(s)
            detections = detector.score(s)
        else:
            detections = detector(s)
        timings["detector"] = time.perf_counter() - t0

    timings["total"] = time.perf_counter() - t_all
    return Analysis(kind, unit, int(len(raw)), s, hv, quality, base, seas, tr, cps, fc, bt, detections, timings)
