"""One call that runs every analysis stage for one series and times each stage (wall and CPU).

:func:`analyse_range` reports on a range ``[start, end]`` of a series and uses the points before
``start`` as causal context; :func:`analyse` is the same pipeline over the whole series. Values are
aggregated once to hourly medians of the raw points (shared by seasonality, trend, change points,
forecast and backtest). The stages, in order:

``prepare``
    counters become per-second rates (:func:`core.analysis.baseline.counter_to_rate`); hourly medians.
``quality``
    :func:`core.data.quality.assess_series` on the raw points.
``detect``
    the default detector ensemble (:mod:`core.analysis.detect`), **causal** and validated out of sample: it is
    fitted on the ``train_days`` (7) just before the range when they hold at least
    ``MIN_TRAIN_POINTS`` (200) points, and every point of the range is scored; otherwise on the first
    ``min(train_days, span / 4)`` of the range, which is then never scored (a model is not judged on
    the data it was fitted on). Incident, ``mask`` and stuck-value points are left out of training
    as missing. Every scored point uses only itself and earlier points.
    Scores then go through the same alarm rule as ``python -m core detect`` and the NAB evaluation
    (:class:`core.analysis.detect.AlarmRule`: a threshold or a target false-alarm rate per week, and a
    refractory span): ``anomalies`` are the alarms (one row per alarm, at the point that opened it,
    with the detector's ``explain()`` columns); ``flagged`` every point at or above the threshold.
``outages``
    detected outages (definition below), left out of the baseline when ``exclude_outages``.
``baseline``
    :func:`core.analysis.baseline.compute_baseline` of the range without incident windows, ``mask`` points and
    outages.
``band``
    the causal seasonal band at hourly steps (:func:`core.analysis.seasonality.hourly_band`): pools of the
    same hour in earlier weeks (or days), reaching back before ``start``, without incident and
    outage points; its 95% range is withheld where a pool holds fewer than 39 points (hourly data).
    Causal in the values (an hour's pool holds only points of cycles that ended
    before it); the exclusion mask is a description of history (an outage's extent is known from
    flags up to ``OUTAGE_MERGE_STEPS`` points after a pooled point, and a stuck run from its end).
``change_points``, ``seasonality``, ``trend``
    of the range: level shifts (:func:`core.analysis.trend.change_points`); MSTL seasonality of the hourly
    medians with those shifts undone (a step left in would be smeared by MSTL's trend into ramps
    that hide a weekly pattern: on the benchmark's svc-099, weekly strength 0.00 with its two
    shifts left in, 0.76 with them undone); trend of the hourly medians with the fixed daily and
    weekly hour-of-cycle indices removed (:func:`core.analysis.seasonality.classical_seasonal`, estimated
    with the shifts undone; shifts stay in the tested series: a shift is a change; the summary
    gives the slope between shifts).
``forecast``, ``backtest``
    ETS forecast from ``end`` of the hourly medians of every point up to ``end``, with intervals
    calibrated per horizon by split conformal prediction on rolling origins, and its rolling-origin
    backtest (``run_backtest=False`` skips the second fit). The forecaster's
    seasonal indices are estimated with detected level shifts undone (see
    :class:`core.analysis.forecast.SeasonalETSForecaster`); the backtest finds them on its training part only.

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
  :mod:`core.data.quality`) identical consecutive values with no gap, in a series whose values otherwise
  repeat from one point to the next at most ``STUCK_MAX_REPEAT`` (1%) of the time. A continuous
  measurement that freezes is a broken exporter; a quantised series (error counts, replica numbers)
  repeats values normally and its flat runs are kept.

Both rules may describe the same stretch (a dead exporter reporting 0 is flat *and* flagged); the
outage table then has a row per cause and the mask is their union. Gaps hold no points, so they
cannot bias a baseline; they are reported by the quality stage and never
filled. Incident windows, ``mask`` and outages exclude points from the baseline, the band's pools and
the detector training only; trend, seasonality and forecast describe the series as recorded (an
incident is part of its history).

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

from core.analysis.baseline import (
    Baseline,
    _as_series,
    _check_kind,
    compute_baseline,
    counter_to_rate,
    exclusion_mask,
)
from core.analysis.forecast import Backtest, Forecast, backtest, forecast, single_thread_blas
from core.analysis.seasonality import (
    BAND_COLUMNS,
    Seasonality,
    analyse_seasonality,
    classical_seasonal,
    hourly,
    hourly_band,
)
from core.analysis.trend import ChangePoints, Trend, change_points, trend_test
from core.errors import InsufficientDataError

STAGES = ("prepare", "quality", "detect", "outages", "baseline", "band", "change_points", "seasonality",
          "trend", "forecast", "backtest")
TRAIN_DAYS = 7.0            # detector training window, days (within the data: at most a quarter of it)
MIN_TRAIN_POINTS = 200      # finite points the training window before a range needs (else: train within)
OUTAGE_MIN_FLAGS = 3        # flagged points that make an anomaly episode an outage
OUTAGE_MERGE_STEPS = 5      # flagged points at most this many sampling steps apart share an episode
FLAT_MIN_POINTS = 30        # identical consecutive values that make a flat run (as core.data.quality)
STUCK_MAX_REPEAT = 0.01     # share of repeated consecutive values (outside flat runs) of a continuous series
OUTAGE_COLUMNS = ["start", "end", "points", "cause"]


@dataclass
class Detections:
    """Result of the ``detect`` stage.

    ``anomalies`` holds one row per alarm, at the point that opened it (``ts, value, score, detectors,
    expected, lower, upper, confidence``, see :meth:`core.analysis.detect.Detector.explain`, plus
    ``alarm_id``, ``end``: its last point at or above the threshold, and ``points``: how many there
    were); ``flagged`` holds every point at or above the threshold (``explain()`` rows and
    ``alarm_id``); ``alarms_per_week`` is the number of alarms per week of scored time (the alert load
    this sensitivity gives on this history) and ``false_alarms_per_week`` the same without alarms that
    open inside a labelled incident (the false-alarm rate measured on this history); ``rule`` is the
    alarm rule; ``train_start``/``train_end``
    bound the training window (never scored); ``n_scored`` counts the finite points scored after it.
    ``scope`` is "before" when the window lies before the reported range (every point of the range
    is scored) and "within" when it is the start of the data (not scored); ``note`` says so in words.
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
    scope: str = "within"
    note: str = ""
    flagged: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    rule: Any = None
    scored_days: float = 0.0
    alarms_per_week: float = float("nan")
    false_alarms_per_week: float = float("nan")

    def summary(self) -> str:
        if not self.sufficient:
            return f"no anomaly detection: {self.reason}"
        return (f"{len(self.anomalies)} alarm(s) ({len(self.flagged)} point(s) at score >= {self.threshold:g}) "
                f"among {self.n_scored} scored ({self.detector}, trained on {self.train_start} to "
                f"{self.train_end})")


@dataclass
class Analysis:
    """Everything :func:`analyse` found for one series.

    ``timings`` holds wall-clock seconds per stage and ``total``; ``cpu_timings`` the process CPU
    seconds (``time.process_time``, all threads) of the same stages. ``values`` is the analysed
    series over the range (per-second rate for counters); ``outages`` lists detected outages that
    overlap the range and ``outage_mask`` marks their points (aligned with ``values``). ``band`` is the
    causal seasonal band at hourly steps (:func:`core.analysis.seasonality.hourly_band`) over the range and
    ``incidents`` the incident windows overlapping it. ``excluded`` counts the finite points of the
    range left out of the baseline: ``incidents`` (incident windows and ``mask``) and ``outages``
    (detected outages not already inside an incident); they add up to ``baseline.n_excluded``.
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
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    band: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=BAND_COLUMNS), repr=False)
    incidents: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["start", "end"]), repr=False)
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def anomaly_note(self) -> str:
        """How the detectors were trained (before the range, or on its start), in words."""
        return "" if self.detections is None else self.detections.note

    @property
    def anomalies(self) -> pd.DataFrame:
        """The alarms of the ``detect`` stage, one row per alarm (empty when it did not run)."""
        if self.detections is None or not self.detections.sufficient:
            return pd.DataFrame(columns=["ts", "value", "score", "detectors", "expected", "lower", "upper",
                                         "confidence", "alarm_id", "end", "points"])
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
        from core.data.quality import assess_series
    except ImportError:
        return None
    return assess_series(values, kind)


# ---------------------------------------------------------------------------- detection and outages
def _span_text(index: pd.DatetimeIndex) -> str:
    """Length of a span of timestamps in words ("6.0 days", "18.0 hours")."""
    if len(index) < 2:
        return f"{len(index)} point(s)"
    d = (index[-1] - index[0]).total_seconds()
    return f"{d / 86400:.1f} days" if d >= 86400 else f"{d / 3600:.1f} hours"


def detect(values: pd.Series, *, detector: Any = "ensemble", threshold: float | None = None,
           train_days: float = TRAIN_DAYS, exclude: np.ndarray | None = None,
           score_from: pd.Timestamp | None = None, min_train_points: int = MIN_TRAIN_POINTS) -> Detections:
    """Causal anomaly detection on one series: fitted on earlier points, scored on later ones.

    Parameters
    ----------
    values : pandas.Series
        Values on a sorted UTC DatetimeIndex (NaN = missing).
    detector : str or core.analysis.detect.Detector
        Registry name (default ``"ensemble"``) or an unfitted detector instance.
    threshold : float or core.analysis.detect.AlarmRule, optional
        Score at or above which a point is flagged (default
        :data:`core.analysis.detect.DEFAULT_THRESHOLD`), or a whole alarm rule (a threshold or a target
        false-alarm rate per week, and a refractory span).
    train_days : float
        Training window, days.
    exclude : array of bool, optional
        Points (aligned with ``values``) left out of the training history as missing (incidents,
        outages).
    score_from : Timestamp, optional
        Score every point at or after it, training on the ``train_days`` just before it (scope
        ``"before"``), provided that window holds at least ``min_train_points`` finite points.
        Otherwise (and without ``score_from``) the first ``min(train_days, span / 4)`` of the points
        from ``score_from`` (or of the series) trains and is never scored (scope ``"within"``).
    min_train_points : int
        Finite points a training window before ``score_from`` needs.

    Returns
    -------
    Detections
        ``sufficient=False`` with the reason when the training part is too thin to calibrate.
    """
    from core.analysis.detect import AlarmRule, alarm_ids, alarm_starts, make_detector, typical_step_s

    rule = threshold if isinstance(threshold, AlarmRule) else (
        AlarmRule() if threshold is None else AlarmRule(float(threshold)))
    thr = rule.threshold
    det = make_detector(detector) if isinstance(detector, str) else detector
    name = getattr(det, "name", type(det).__name__)
    s = values.where(~exclude) if exclude is not None and exclude.any() else values
    idx = s.index
    scope, n_before = "within", 0
    if score_from is not None:
        t1 = pd.Timestamp(score_from)
        before = np.asarray((idx < t1) & (idx >= t1 - pd.Timedelta(days=float(train_days))))
        n_before = int(np.isfinite(s.to_numpy()[before]).sum())
        if n_before >= min_train_points:
            scope = "before"
            train, scored = s[before], values[np.asarray(idx >= t1)]
            t0, cut = train.index[0], t1
        else:
            s, values = s[np.asarray(idx >= t1)], values[np.asarray(idx >= t1)]
    if scope == "within":
        if len(s) < 2:
            return Detections(False, f"only {len(s)} point(s); nothing to train on and score", name, thr)
        t0 = s.index[0]
        cut = t0 + min(pd.Timedelta(days=float(train_days)), (s.index[-1] - t0) / 4)
        is_train = np.asarray(s.index < cut)
        train, scored = s[is_train], values[~is_train]
    n_train = int(np.isfinite(train.to_numpy()).sum())
    n_scored = int(np.isfinite(scored.to_numpy()).sum())
    thr = rule.threshold_for(typical_step_s(train.index))      # from the training window: causal
    base = Detections(False, "", name, thr, t0, cut, n_train, n_scored, scope=scope, rule=rule)
    if score_from is not None and scope == "within":
        why = ("no history before the range" if n_before == 0 else
               f"too little history before the range ({n_before} points; {min_train_points} needed)")
        base.note = f"{why}: the first {_span_text(train.index)} of it trained the detectors and is not scored"
    elif scope == "before":
        base.note = (f"detectors trained on the {_span_text(train.index)} before the range ({n_train:,} "
                     "points); every point in the range is scored")
    else:
        base.note = f"the first {_span_text(train.index)} trained the detectors and is not scored"
    if not len(scored):
        base.reason = "nothing left to score after the training window"
        return base
    try:
        det.fit(train)
        flagged = det.explain(scored, thr).reset_index(drop=True)
    except InsufficientDataError as exc:
        base.reason = f"training window {t0} to {cut} ({n_train} points): {exc}"
        return base
    # the alarm rule on the flagged points gives the same alarms as on every score (points below the
    # threshold never open one and an alarm's span is measured in time)
    ids = alarm_ids(pd.DatetimeIndex(flagged["ts"]), flagged["score"].to_numpy(dtype=np.float64),
                    AlarmRule(thr, rule.refractory_s))
    flagged["alarm_id"] = ids
    g = flagged.groupby("alarm_id")["ts"]
    alarms = flagged[alarm_starts(ids)].reset_index(drop=True)
    alarms["end"] = g.max().reindex(alarms["alarm_id"]).to_numpy()
    alarms["points"] = g.size().reindex(alarms["alarm_id"]).to_numpy()
    base.flagged, base.anomalies = flagged, alarms
    base.scored_days = (scored.index[-1] - scored.index[0]).total_seconds() / 86400.0 if len(scored) > 1 else 0.0
    if base.scored_days > 0:
        base.alarms_per_week = len(alarms) / (base.scored_days / 7.0)
    base.sufficient = True
    base.skipped = dict(getattr(det, "skipped_", {}) or {})
    return base


def _runs(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the runs of True in a boolean array."""
    d = np.diff(np.r_[0, flags.astype(np.int8), 0])
    starts = np.flatnonzero(d == 1)
    return starts, np.flatnonzero(d == -1) - starts


def _episodes(values: pd.Series, anomalies: pd.DataFrame | None, min_flags: int, merge_steps: int
              ) -> tuple[list[tuple[pd.Timestamp, pd.Timestamp, int, str]], np.ndarray]:
    """Anomaly episodes (rule in the module notes): outage rows and their point mask."""
    n = len(values)
    mask = np.zeros(n, dtype=bool)
    rows: list[tuple[pd.Timestamp, pd.Timestamp, int, str]] = []
    idx = values.index
    if anomalies is None or len(anomalies) < min_flags:
        return rows, mask
    pos = np.unique(idx.get_indexer(pd.DatetimeIndex(anomalies["ts"])))
    pos = pos[pos >= 0]
    if pos.size < min_flags:
        return rows, mask
    brk = np.r_[True, np.diff(pos) > merge_steps]
    count = np.bincount(np.cumsum(brk) - 1)
    first = pos[brk]
    last = np.r_[pos[np.flatnonzero(brk)[1:] - 1], pos[-1]]
    for a, b, c in zip(first, last, count, strict=True):
        if c >= min_flags:
            mask[a:b + 1] = True
            rows.append((idx[a], idx[b], int(b - a + 1), "detector"))
    return rows, mask


def _flat_runs(values: pd.Series, flat_min_points: int, stuck_max_repeat: float
               ) -> tuple[list[tuple[pd.Timestamp, pd.Timestamp, int, str]], np.ndarray]:
    """Stuck values (rule in the module notes): outage rows and their point mask."""
    n = len(values)
    mask = np.zeros(n, dtype=bool)
    rows: list[tuple[pd.Timestamp, pd.Timestamp, int, str]] = []
    if n <= flat_min_points:
        return rows, mask
    idx = values.index
    v = values.to_numpy(dtype=np.float64)
    dt = np.diff(idx.as_unit("ns").asi8)
    step = np.median(dt) if dt.size else 0
    fin = np.isfinite(v)
    same = (v[1:] == v[:-1]) & fin[1:] & fin[:-1] & (dt <= 1.5 * step)
    starts, lengths = _runs(same)                       # runs of equal *pairs*: points = pairs + 1
    flat = lengths + 1 >= flat_min_points
    if not flat.any():
        return rows, mask
    in_flat = np.zeros(n - 1, dtype=bool)
    for a, m in zip(starts[flat], lengths[flat], strict=True):
        in_flat[a:a + m] = True
    pairs = fin[1:] & fin[:-1] & ~in_flat
    repeat = float(same[pairs].mean()) if pairs.any() else 1.0
    if repeat <= stuck_max_repeat:
        for a, m in zip(starts[flat], lengths[flat], strict=True):
            mask[a:a + m + 1] = True
            rows.append((idx[a], idx[a + m], int(m + 1), "flat"))
    return rows, mask


def _outage_frame(rows: list[tuple[pd.Timestamp, pd.Timestamp, int, str]]) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=OUTAGE_COLUMNS).sort_values("start", kind="stable")
    return out.reset_index(drop=True)


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
    r1, m1 = _episodes(values, anomalies, min_flags, merge_steps)
    r2, m2 = _flat_runs(values, flat_min_points, stuck_max_repeat)
    return _outage_frame(r1 + r2), m1 | m2


# ---------------------------------------------------------------------------- the pipeline
def analyse(values: pd.Series, kind: str = "gauge", incidents: pd.DataFrame | None = None, *,
            mask: np.ndarray | pd.Series | None = None, series: str | None = None, unit: str = "",
            horizon_days: float = 7, holdout_days: float | None = None, run_backtest: bool = True,
            detector: Any = "ensemble", threshold: float | None = None, train_days: float = TRAIN_DAYS,
            exclude_incidents: bool = True, exclude_outages: bool = True) -> Analysis:
    """Run every analysis stage on one whole series and time them (see the module notes).

    Parameters
    ----------
    values : pandas.Series
        Raw values indexed by UTC timestamps (NaN = missing).
    kind : str
        ``gauge``, ``counter`` (analysed as a per-second rate), ``rate`` or ``histogram_quantile``
        (never averaged: medians and percentiles of raw points only).
    incidents : pandas.DataFrame, optional
        ``start``/``end`` (and optionally ``series``) windows left out of the baseline, the band's
        pools and the detector training when ``exclude_incidents``.
    mask : array of bool, optional
        Further points to leave out of the baseline and the detector training, aligned with ``values``.
    series : str, optional
        Series key, to pick this series' rows of ``incidents``.
    unit : str
        Unit for verdicts ("ms" -> "rising 2.1 ms/day").
    horizon_days : float
        Forecast horizon (at most 7 days, and at most half the history).
    holdout_days : float, optional
        Evaluation stretch of the rolling-origin backtest, days (default: horizon + 7 days when
        the history allows, see :func:`core.analysis.forecast.backtest`).
    run_backtest : bool
        Fit the forecaster a second time on the history before the evaluation stretch and score its
        forecasts from every hour of that stretch (rolling origins).
    detector : str, core.analysis.detect.Detector or None
        Detector of the ``detect`` stage (default the ensemble); None skips detection.
    threshold : float, optional
        Anomaly score threshold (default :data:`core.analysis.detect.DEFAULT_THRESHOLD`).
    train_days : float
        Detector training window, days (at most a quarter of the span; never scored).
    exclude_incidents, exclude_outages : bool
        Leave incident points / detected outages out of the baseline (both on by default).

    Returns
    -------
    Analysis
    """
    return analyse_range(values, kind=kind, incidents=incidents, mask=mask, series=series, unit=unit,
                         horizon_days=horizon_days, holdout_days=holdout_days, run_backtest=run_backtest,
                         detector=detector, threshold=threshold, train_days=train_days,
                         exclude_incidents=exclude_incidents, exclude_outages=exclude_outages)


def analyse_range(values: pd.Series, *, start: Any = None, end: Any = None, kind: str = "gauge",
                  unit: str = "", incidents: pd.DataFrame | None = None, series: str | None = None,
                  exclude_incidents: bool = True, exclude_outages: bool = True,
                  horizon_days: float | None = 2.0, holdout_days: float | None = None,
                  run_backtest: bool = True, mask: np.ndarray | pd.Series | None = None,
                  detector: Any = "ensemble", threshold: float | None = None,
                  train_days: float = TRAIN_DAYS) -> Analysis:
    """Every analysis stage of one series over the range ``[start, end]`` (UTC, inclusive).

    Points before ``start`` are causal context only: the detectors train on the ``train_days``
    before it (scope "before"; with under :data:`MIN_TRAIN_POINTS` there, the first part of the range
    trains and is not scored), stuck values there are found, and the band's pools reach back into
    them. Quality, baseline, trend, change points and seasonality describe the range alone (not
    causal). The forecast and its backtest use every point up to ``end`` and start at ``end``.
    Points after ``end`` are never used. :func:`analyse` is this function over the whole series.

    Parameters
    ----------
    values : pandas.Series
        Raw values of one series on UTC timestamps (all of its history, or at least the context).
    start, end : timestamp-like, optional
        The reported range; default the first / last point.
    kind, unit, incidents, series, mask, detector, threshold, train_days
        As in :func:`analyse`.
    exclude_incidents, exclude_outages : bool
        Leave incident points / detected outages out of the baseline, the band's pools and the
        detector training (both on by default).
    horizon_days : float or None
        Forecast horizon in days (at most 7, at most half the history); None skips the forecast
        and the backtest (see :func:`forecast_from` to compute them apart).
    holdout_days : float, optional
        Evaluation stretch of the rolling-origin backtest (default: see
        :func:`core.analysis.forecast.backtest`).

    Returns
    -------
    Analysis
        With ``start``, ``end``, the hourly ``band`` of the range and the ``incidents`` overlapping it.

    Raises
    ------
    InsufficientDataError
        When the series has no point in the range.
    """
    _check_kind(kind)
    with single_thread_blas():      # tiny BLAS calls only: threads would spin, not help (see there)
        return _analyse(values, kind, incidents, mask, series, unit, horizon_days, holdout_days, run_backtest,
                        detector, threshold, train_days, exclude_incidents, exclude_outages, start, end)


def _utc(x: Any) -> pd.Timestamp:
    ts = pd.Timestamp(x)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def _horizon(n_hours: int, horizon_days: float) -> float:
    """The forecast horizon: as asked, at most half the history (at least 1 day)."""
    return min(float(horizon_days), max(1.0, float(n_hours // 48)))


def _forecast_stage(hv: pd.Series, horizon_days: float | None, shifts: ChangePoints | None = None) -> Forecast:
    if horizon_days is None:
        return Forecast(False, "not computed")
    n_hours = int(np.isfinite(hv.to_numpy()).sum())
    return forecast(hourly_values=hv, horizon_days=_horizon(n_hours, horizon_days), shifts=shifts)


def _backtest_stage(hv: pd.Series, horizon_days: float | None, holdout_days: float | None) -> Backtest:
    n_hours = int(np.isfinite(hv.to_numpy()).sum())
    return backtest(hourly_values=hv, horizon_days=_horizon(n_hours, horizon_days or 2.0), holdout_days=holdout_days)


def forecast_from(values: pd.Series, *, end: Any = None, kind: str = "gauge", horizon_days: float = 2.0,
                  holdout_days: float | None = None, run_backtest: bool = True
                  ) -> tuple[Forecast, Backtest | None]:
    """The ``forecast`` and ``backtest`` stages alone: hourly medians of every point up to ``end``,
    forecast ``horizon_days`` from ``end`` (as :func:`analyse_range`, which runs the same code) and
    its rolling-origin backtest over the last ``holdout_days`` (default: see
    :func:`core.analysis.forecast.backtest`)."""
    _check_kind(kind)
    s = _as_series(values)
    if end is not None:
        s = s[s.index <= _utc(end)]
    if kind == "counter":
        s = counter_to_rate(s)
    hv = hourly(s.where(np.isfinite(s.to_numpy())), "gauge" if kind == "counter" else kind)
    with single_thread_blas():
        fc = _forecast_stage(hv, horizon_days)
        bt = _backtest_stage(hv, horizon_days, holdout_days) if run_backtest else None
    return fc, bt


def _overlapping(frame: pd.DataFrame | None, start: pd.Timestamp, end: pd.Timestamp,
                 series: str | None = None) -> pd.DataFrame:
    """Rows of a ``start, end`` frame (incidents, outages) that overlap ``[start, end]``."""
    if frame is None or not len(frame):
        return pd.DataFrame(columns=["start", "end"]) if frame is None else frame.reset_index(drop=True)
    f = frame
    if series is not None and "series" in f.columns:
        f = f[f["series"].isna() | (f["series"] == series)]
    a, b = pd.to_datetime(f["start"], utc=True), pd.to_datetime(f["end"], utc=True)
    return f[(b >= start) & (a <= end)].reset_index(drop=True)


def _periods_text(periods: tuple[int, ...]) -> str:
    names = {24: "daily", 168: "weekly"}
    if not periods:
        return "none"
    return (" and ".join(names[p] for p in periods) + " pattern removed first (fixed hour-of-cycle indices, "
            "classical decomposition, level shifts undone)")


def _analyse(values: pd.Series, kind: str, incidents: pd.DataFrame | None, mask: Any, series: str | None,
             unit: str, horizon_days: float | None, holdout_days: float | None, run_backtest: bool,
             detector: Any, threshold: float | None, train_days: float, exclude_incidents: bool,
             exclude_outages: bool, start: Any, end: Any) -> Analysis:
    clock = _Clock()
    w_all, c_all = time.perf_counter(), time.process_time()

    with clock.stage("prepare"):
        raw_all = _as_series(values)
        name = series if series is not None else raw_all.name
        if not len(raw_all):
            raise InsufficientDataError(f"series {name!r} has no points" if name else "the series has no points")
        mk = None if mask is None else np.asarray(mask, dtype=bool)
        if end is not None:
            keep = np.asarray(raw_all.index <= _utc(end))
            raw_all = raw_all[keep]
            mk = None if mk is None or mk.shape != keep.shape else mk[keep]
        t_start = raw_all.index[0] if start is None or not len(raw_all) else _utc(start)
        t_end = raw_all.index[-1] if end is None or not len(raw_all) else _utc(end)
        in_rng = np.asarray(raw_all.index >= t_start)
        if not in_rng.any():
            raise InsufficientDataError(f"series {name!r} has no points between {t_start} and {t_end}")
        s_all = counter_to_rate(raw_all) if kind == "counter" else raw_all
        s_all = s_all.where(np.isfinite(s_all.to_numpy()))   # +/-inf is a broken value: missing here
        raw, s = raw_all[in_rng], s_all[in_rng]
        hkind = "gauge" if kind == "counter" else kind
        hv = hourly(s, hkind)
        hv_all = hourly(s_all, hkind) if not in_rng.all() else hv
        excl_all = exclusion_mask(s_all.index, incidents if exclude_incidents else None, mk, series)

    with clock.stage("quality"):
        quality = _quality(raw, kind)

    detections = flat = None
    if detector is not None:
        with clock.stage("detect"):
            flat = _flat_runs(s_all, FLAT_MIN_POINTS, STUCK_MAX_REPEAT)   # stuck values stay out of training
            train_excl = excl_all | flat[1] if exclude_outages else excl_all
            detections = detect(s_all, detector=detector, threshold=threshold, train_days=train_days,
                                exclude=train_excl, score_from=None if start is None else t_start)

    if detections is not None and detections.sufficient and detections.scored_days > 0:
        pos = s_all.index.get_indexer(pd.DatetimeIndex(detections.anomalies["ts"]))
        in_incident = excl_all[pos[pos >= 0]].sum() if len(pos) else 0
        detections.false_alarms_per_week = (len(detections.anomalies) - int(in_incident)) / (
            detections.scored_days / 7.0)

    with clock.stage("outages"):
        flat_rows, flat_mask = flat if flat is not None else _flat_runs(s_all, FLAT_MIN_POINTS, STUCK_MAX_REPEAT)
        flagged = detections.flagged if detections is not None and detections.sufficient else None
        ep_rows, ep_mask = _episodes(s_all, flagged, OUTAGE_MIN_FLAGS, OUTAGE_MERGE_STEPS)
        out_all = ep_mask | flat_mask
        outages = _overlapping(_outage_frame(ep_rows + flat_rows), t_start, t_end)
        drop_all = excl_all | out_all if exclude_outages else excl_all

    with clock.stage("baseline"):
        base = compute_baseline(s, "rate" if kind == "counter" else kind, mask=drop_all[in_rng])
        base.kind = kind
        fin = np.isfinite(s.to_numpy())
        excluded = {"incidents": int((excl_all[in_rng] & fin).sum()),
                    "outages": int((drop_all[in_rng] & ~excl_all[in_rng] & fin).sum())}

    with clock.stage("band"):
        band = hourly_band(s_all.where(~drop_all))
        band = band[(band["ts"] >= t_start.floor("h")) & (band["ts"] <= t_end)].reset_index(drop=True)

    with clock.stage("change_points"):
        cps = change_points(hourly_values=hv)

    with clock.stage("seasonality"):
        seas = analyse_seasonality(s, hourly_values=cps.remove_shifts(hv))
        if seas.sufficient and cps.sufficient and cps.points:
            seas.reason = "; ".join(filter(None, [seas.reason, f"measured with the {len(cps.points)} level "
                                                  "shift(s) undone"]))

    with clock.stage("trend"):
        # fixed slot indices (classical decomposition), not MSTL's evolving component: removing an
        # evolving component can add a trend (see core.analysis.seasonality.classical_seasonal)
        seasonal, periods, absorbed = classical_seasonal(cps.remove_shifts(hv))
        tr = trend_test(hourly_values=hv, seasonal=seasonal if periods else None, unit=unit,
                        seasonality_removed=_periods_text(periods), seasonal_noise=absorbed)

    with clock.stage("forecast"):
        # the range is the whole history: its level shifts are the forecaster's (saves a detection)
        fc = _forecast_stage(hv_all, horizon_days, cps if hv_all is hv else None)

    bt = None
    if run_backtest and horizon_days is not None:
        with clock.stage("backtest"):
            bt = _backtest_stage(hv_all, horizon_days, holdout_days)

    timings, cpu = clock.wall, clock.cpu
    timings["total"] = time.perf_counter() - w_all
    cpu["total"] = time.process_time() - c_all
    return Analysis(kind, unit, int(len(raw)), s, hv, quality, base, seas, tr, cps, fc, bt, detections,
                    outages, out_all[in_rng], timings, cpu, start=t_start, end=t_end, band=band,
                    incidents=_overlapping(incidents, t_start, t_end, series), excluded=excluded)
