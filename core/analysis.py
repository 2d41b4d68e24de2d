"""One call that runs every analysis stage for one series and times each stage (wall and CPU).

:func:`analyse` aggregates once to hourly medians of the raw points (shared by seasonality, trend,
change points, forecast and backtest) and runs, in order:

``prepare``
    counters become per-second rates (:func:`core.baseline.counter_to_rate`); hourly medians.
``quality``
    :func:`core.quality.assess_series` on the raw points.
``detect``
    the default detector ensemble (:mod:`core.detect`), **causal** and validated out of sample: it is
    fitted on the first ``min(train_days, span / 4)`` of the series (incident and ``mask`` points left
    out as missing) and every later point is scored using only itself and earlier points. Points in
    the training part are never scored (a model is not judged on the data it was fitted on).
    ``anomalies`` are the detector's ``explain()`` rows at or above the threshold
    (:data:`core.detect.DEFAULT_THRESHOLD` unless given).
``outages``
    detected outages (definition below), left out of the baseline when ``exclude_outages``.
``baseline``
    :func:`core.baseline.compute_baseline` without incident windows, ``mask`` points and outages.
``seasonality``, ``trend``, ``change_points``, ``forecast``, ``backtest``
    MSTL seasonality; trend on the deseasonalised hourly medians; change points; ETS forecast and its
    time-ordered hold-out backtest (``run_backtest=False`` skips the second fit).

Detected outages
----------------
An *outage* is a stretch where the series did not behave as the metric normally does, found without
looking at the baseline it is removed from (so the exclusion cannot chase its own tail):

* **anomaly episode** (cause ``"detector"``): at least ``OUTAGE_MIN_FLAGS`` (3) detector-flagged
  points, each within ``OUTAGE_MERGE_STEPS`` (5) sampling steps of the previous flagged one. The
  outage runs from the first to the last flagged point and every point in between is excluded.
  Isolated flagged points are *not* outages: a lone spike is part of what a threshold must tolerate
  and stays in the baseline. Only the scored part can hold such episodes (the training part is
  never scored; label incidents there to exclude them).
* **stuck value** (cause ``"flat"``): a run of at least ``FLAT_MIN_POINTS`` (30, as in
  :mod:`core.quality`) identical consecutive values with no gap, in a series whose values otherwise
  repeat from one point to the next at most ``STUCK_MAX_REPEAT`` (1%) of the time. A continuous
  measurement that freezes is a broken exporter; a quantised series (error counts, replica numbers)
  repeats values normally and its flat runs are kept.

Both rules may describe the same stretch (a dead exporter reporting 0 is flat *and* flagged); the
outage table then has a row per cause and the mask is their union. Gaps hold no points, so they
cannot bias a baseline; they are reported by the quality stage and never
filled. Incident windows and ``mask`` exclude points from the baseline and the detector training only;
trend, seasonality and forecast describe the series as recorded (an incident is part of its history).

Thin data never yields a confident number: each stage returns its own result with
``sufficient=False`` and a reason, and the other stages still run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.baseline import Baseline, _as_series, _check_kind, compute_baseline, counter_to_rate, exclusion_mask
from core.errors import InsufficientDataError
from core.forecast import Backtest, Forecast, backtest, forecast, single_thread_blas
from core.seasonality import Seasonality, analyse_seasonality, hourly
from core.trend import ChangePoints, Trend, change_points, trend_test

STAGES = ("prepare", "quality", "detect", "outages", "baseline", "seasonality", "trend", "change_points",
          "forecast", "backtest")
TRAIN_DAYS = 7.0            # detector training window (at most a quarter of the series), days
OUTAGE_MIN_FLAGS = 3        # flagged points that make an anomaly episode an outage
OUTAGE_MERGE_STEPS = 5      # flagged points at most this many sampling steps apart share an episode
FLAT_MIN_POINTS = 30        # identical consecutive values that make a flat run (as core.quality)
STUCK_MAX_REPEAT = 0.01     # share of repeated consecutive values (outside flat runs) of a continuous series
OUTAGE_COLUMNS = ["start", "end", "points", "cause"]


@dataclass
class Detections:
    """Result of the ``detect`` stage.

    ``anomalies`` holds one row per flagged point (``ts, value, score, detectors, expected, lower,
    upper, confidence``, see :meth:`core.detect.Detector.explain`); ``train_start``/``train_end``
    bound the training window (never scored); ``n_scored`` counts the finite points scored after it.
    """

    sufficient: bool
    reason: str = ""
    detector: str = ""
    threshold: float = float("nan")
    train_start: pd.Timestamp | None = None
    train_end: pd.Timestamp | None = None
    n_train: int = 0
    n_scored: int = 0
    anomalies: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        if not self.sufficient:
            return f"no anomaly detection: {self.reason}"
        return (f"{len(self.anomalies)} anomalous point(s) among {self.n_scored} scored at score >= "
                f"{self.threshold:g} ({self.detector}, trained on {self.train_start} to {self.train_end})")


@dataclass
class Analysis:
    """Everything :func:`analyse` found for one series.

    ``timings`` holds wall-clock seconds per stage and ``total``; ``cpu_timings`` the process CPU
    seconds (``time.process_time``, all threads) of the same stages. ``values`` is the analysed
    series (per-second rate for counters); ``outages`` lists detected outages and ``outage_mask``
    marks their points (aligned with ``values``).
    """

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
    detections: Detections | None = None
    outages: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=OUTAGE_COLUMNS), repr=False)
    outage_mask: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool), repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    cpu_timings: dict[str, float] = field(default_factory=dict)

    @property
    def anomalies(self) -> pd.DataFrame:
        """The flagged points of the ``detect`` stage (empty when it did not run)."""
        if self.detections is None or not self.detections.sufficient:
            return pd.DataFrame(columns=["ts", "value", "score", "detectors", "expected", "lower", "upper",
                                         "confidence"])
        return self.detections.anomalies

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
                         + (f"; {b.n_excluded} point(s) excluded" if b.n_excluded else "")
                         if b.sufficient and b.median is not None and np.isfinite(b.median.lower)
                         else (b.reason or "no confidence interval")),
            "trend": trend,
            "change_points": len(self.change_points.points) if self.change_points.sufficient
            else self.change_points.reason,
            "seasonality": self.seasonality.verdict or self.seasonality.reason,
            "anomalies": self.detections.summary() if self.detections is not None else "not run",
            "outages": f"{len(self.outages)} detected ({int(self.outage_mask.sum())} points)",
            "forecast": (f"{self.forecast.horizon_hours} h ahead ({self.forecast.method})"
                         if self.forecast.sufficient else self.forecast.reason),
            "backtest": self.backtest.summary() if self.backtest is not None else "not run",
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "cpu_s": {k: round(v, 4) for k, v in self.cpu_timings.items()},
        }


class _Clock:
    """Wall-clock and process CPU seconds per named stage."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] = time.perf_counter() - w0
            self.cpu[name] = time.process_time() - c0


def _quality(values: pd.Series, kind: str) -> Any | None:
    try:
        from core.quality import assess_series
    except ImportError:
        return None
    return assess_series(values, kind)


# ---------------------------------------------------------------------------- detection and outages
def detect(values: pd.Series, *, detector: Any = "ensemble", threshold: float | None = None,
           train_days: float = TRAIN_DAYS, exclude: np.ndarray | None = None) -> Detections:
    """Causal anomaly detection on one series, fitted on its first part and scored on the rest.

    Parameters
    ----------
    values : pandas.Series
        Values on a sorted UTC DatetimeIndex (NaN = missing).
    detector : str or core.detect.Detector
        Registry name (default ``"ensemble"``) or an unfitted detector instance.
    threshold : float, optional
        Score at or above which a point is flagged; default :data:`core.detect.DEFAULT_THRESHOLD`.
    train_days : float
        Training window in days, at most a quarter of the series' span; it is never scored.
    exclude : array of bool, optional
        Points (aligned with ``values``) left out of the training history as missing (incidents).

    Returns
    -------
    Detections
        ``sufficient=False`` with the reason when the training part is too thin to calibrate.
    """
    from core.detect import DEFAULT_THRESHOLD, make_detector

    thr = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    det = make_detector(detector) if isinstance(detector, str) else detector
    name = getattr(det, "name", type(det).__name__)
    s = values
    if len(s) < 2:
        return Detections(False, f"only {len(s)} point(s); nothing to train on and score", name, thr)
    t0 = s.index[0]
    cut = t0 + min(pd.Timedelta(days=float(train_days)), (s.index[-1] - t0) / 4)
    is_train = np.asarray(s.index < cut)
    train, scored = s[is_train], s[~is_train]
    if exclude is not None and exclude.any():
        train = train.where(~exclude[is_train])
    n_train = int(np.isfinite(train.to_numpy()).sum())
    n_scored = int(np.isfinite(scored.to_numpy()).sum())
    base = Detections(False, "", name, thr, t0, cut, n_train, n_scored)
    try:
        det.fit(train)
        base.anomalies = det.explain(scored, thr).reset_index(drop=True)
    except InsufficientDataError as exc:
        base.reason = f"training window {t0} to {cut} ({n_train} points): {exc}"
        return base
    base.sufficient = True
    base.skipped = dict(getattr(det, "skipped_", {}) or {})
    return base


def _runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the runs of True in a boolean array."""
    d = np.diff(np.r_[0, flags.astype(np.int8), 0])
    starts = np.flatnonzero(d == 1)
    return starts, np.flatnonzero(d == -1) - starts


def detected_outages(values: pd.Series, anomalies: pd.DataFrame | None = None, *,
                     min_flags: int = OUTAGE_MIN_FLAGS, merge_steps: int = OUTAGE_MERGE_STEPS,
                     flat_min_points: int = FLAT_MIN_POINTS,
                     stuck_max_repeat: float = STUCK_MAX_REPEAT) -> tuple[pd.DataFrame, np.ndarray]:
    """Detected outages of one series (see the module notes): anomaly episodes and stuck values.

    Parameters
    ----------
    values : pandas.Series
        The analysed values on a sorted UTC DatetimeIndex.
    anomalies : pandas.DataFrame, optional
        Flagged points with a ``ts`` column (the ``detect`` stage's ``anomalies``).
    min_flags, merge_steps
        An episode needs ``min_flags`` flagged points, each at most ``merge_steps`` points after the
        previous flagged one.
    flat_min_points, stuck_max_repeat
        Length of a flat run, and the largest share of repeated consecutive values (outside flat runs)
        of a series whose flat runs count as stuck.

    Returns
    -------
    (pandas.DataFrame, numpy.ndarray)
        Outages ``start, end, points, cause`` (``end`` inclusive, ``cause`` "detector" or "flat"),
        and a boolean mask of their points aligned with ``values``. Not causal (a description of the
        history); the flags it uses are.
    """
    n = len(values)
    mask = np.zeros(n, dtype=bool)
    rows: list[tuple[pd.Timestamp, pd.Timestamp, int, str]] = []
    idx = values.index
    if anomalies is not None and len(anomalies) >= min_flags:
        pos = np.unique(idx.get_indexer(pd.DatetimeIndex(anomalies["ts"])))
        pos = pos[pos >= 0]
        if pos.size >= min_flags:
            brk = np.r_[True, np.diff(pos) > merge_steps]
            gid = np.cumsum(brk) - 1
            count = np.bincount(gid)
            first = pos[brk]
            last = np.r_[pos[np.flatnonzero(brk)[1:] - 1], pos[-1]]
            for a, b, c in zip(first, last, count, strict=True):
                if c >= min_flags:
                    mask[a:b + 1] = True
                    rows.append((idx[a], idx[b], int(b - a + 1), "detector"))
    v = values.to_numpy(dtype=np.float64)
    if n > flat_min_points:
        t = idx.as_unit("ns").asi8
        dt = np.diff(t)
        step = np.median(dt) if dt.size else 0
        fin = np.isfinite(v)
        same = (v[1:] == v[:-1]) & fin[1:] & fin[:-1] & (dt <= 1.5 * step)
        starts, lengths = _runs(same)                       # runs of equal *pairs*: points = pairs + 1
        flat = lengths + 1 >= flat_min_points
        in_flat = np.zeros(n - 1, dtype=bool)
        for a, m in zip(starts[flat], lengths[flat], strict=True):
            in_flat[a:a + m] = True
        pairs = fin[1:] & fin[:-1] & ~in_flat
        repeat = float(same[pairs].mean()) if pairs.any() else 1.0
        if flat.any() and repeat <= stuck_max_repeat:
            for a, m in zip(starts[flat], lengths[flat], strict=True):
                mask[a:a + m + 1] = True
                rows.append((idx[a], idx[a + m], int(m + 1), "flat"))
    out = pd.DataFrame(rows, columns=OUTAGE_COLUMNS).sort_values("start", kind="stable")
    return out.reset_index(drop=True), mask


# ---------------------------------------------------------------------------- the pipeline
def analyse(values: pd.Series, kind: str = "gauge", incidents: pd.DataFrame | None = None, *,
            mask: np.ndarray | pd.Series | None = None, series: str | None = None, unit: str = "",
            horizon_days: float = 7, holdout_days: float = 3, run_backtest: bool = True,
            detector: Any = "ensemble", threshold: float | None = None, train_days: float = TRAIN_DAYS,
            exclude_incidents: bool = True, exclude_outages: bool = True) -> Analysis:
    """Run every analysis stage on one series and time them (see the module notes).

    Parameters
    ----------
    values : pandas.Series
        Raw values indexed by UTC timestamps (NaN = missing).
    kind : str
        ``gauge``, ``counter`` (analysed as a per-second rate), ``rate`` or ``histogram_quantile``
        (never averaged: medians and percentiles of raw points only).
    incidents : pandas.DataFrame, optional
        ``start``/``end`` (and optionally ``series``) windows left out of the baseline and of the
        detector training when ``exclude_incidents``.
    mask : array of bool, optional
        Further points to leave out of the baseline and the detector training, aligned with ``values``.
    series : str, optional
        Series key, to pick this series' rows of ``incidents``.
    unit : str
        Unit for verdicts ("ms" -> "rising 2.1 ms/day").
    horizon_days : float
        Forecast horizon (at most 7 days, and at most half the history).
    holdout_days : float
        Hold-out tail of the backtest, days.
    run_backtest : bool
        Fit the forecaster a second time on the history without its tail and score the tail.
    detector : str, core.detect.Detector or None
        Detector of the ``detect`` stage (default the ensemble); None skips detection.
    threshold : float, optional
        Anomaly score threshold (default :data:`core.detect.DEFAULT_THRESHOLD`).
    train_days : float
        Detector training window, days (at most a quarter of the span; never scored).
    exclude_incidents, exclude_outages : bool
        Leave incident points / detected outages out of the baseline (both on by default).

    Returns
    -------
    Analysis
    """
    _check_kind(kind)
    with single_thread_blas():      # tiny BLAS calls only: threads would spin, not help (see there)
        return _analyse(values, kind, incidents, mask, series, unit, horizon_days, holdout_days, run_backtest,
                        detector, threshold, train_days, exclude_incidents, exclude_outages)


def _analyse(values: pd.Series, kind: str, incidents: pd.DataFrame | None, mask: Any, series: str | None,
             unit: str, horizon_days: float, holdout_days: float, run_backtest: bool, detector: Any,
             threshold: float | None, train_days: float, exclude_incidents: bool,
             exclude_outages: bool) -> Analysis:
    clock = _Clock()
    w_all, c_all = time.perf_counter(), time.process_time()

    with clock.stage("prepare"):
        raw = _as_series(values)
        s = counter_to_rate(raw) if kind == "counter" else raw
        hv = hourly(s, "gauge" if kind == "counter" else kind)
        excl = exclusion_mask(s.index, incidents if exclude_incidents else None, mask, series)

    with clock.stage("quality"):
        quality = _quality(raw, kind)

    detections = None
    if detector is not None:
        with clock.stage("detect"):
            detections = detect(s, detector=detector, threshold=threshold, train_days=train_days, exclude=excl)

    with clock.stage("outages"):
        flagged = detections.anomalies if detections is not None and detections.sufficient else None
        outages, out_mask = detected_outages(s, flagged)

    with clock.stage("baseline"):
        base_mask = excl | out_mask if exclude_outages else excl
        base = compute_baseline(s, "rate" if kind == "counter" else kind, mask=base_mask)
        base.kind = kind

    with clock.stage("seasonality"):
        seas = analyse_seasonality(s, hourly_values=hv)
        seasonal = None
        if seas.sufficient and seas.decomposition is not None:
            seasonal = seas.decomposition.seasonal_total()

    with clock.stage("trend"):
        tr = trend_test(hourly_values=hv, seasonal=seasonal, unit=unit)

    with clock.stage("change_points"):
        cps = change_points(hourly_values=hv)

    with clock.stage("forecast"):
        n_hours = int(np.isfinite(hv.to_numpy()).sum())
        horizon = min(float(horizon_days), max(1.0, float(n_hours // 48)))
        fc = forecast(hourly_values=hv, horizon_days=horizon)

    bt = None
    if run_backtest:
        with clock.stage("backtest"):
            bt = backtest(hourly_values=hv, holdout_days=holdout_days)

    timings, cpu = clock.wall, clock.cpu
    timings["total"] = time.perf_counter() - w_all
    cpu["total"] = time.process_time() - c_all
    return Analysis(kind, unit, int(len(raw)), s, hv, quality, base, seas, tr, cps, fc, bt, detections,
                    outages, out_mask, timings, cpu)
