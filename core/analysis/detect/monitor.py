"""One pipeline from a series to alerts: fit on the series' first points, score causally, post-process
into alarms. ``python -m core detect``, the NAB evaluation (``python -m core.eval nab``) and the Trends
page all call :func:`run_detection` / :func:`alarms_from_scores`, so what is evaluated is what users get.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.analysis.detect.alarms import AlarmRule, alarm_ids, alarm_starts, typical_step_s
from core.analysis.detect.base import Detector
from core.analysis.detect.catalog import DEFAULT_DETECTOR, make_detector
from core.errors import InsufficientDataError

TRAIN_FRAC = 0.15      # share of a series that trains the detector when nothing else is known
MAX_TRAIN = 750        # ... at most this many points (NAB's probationary period has the same rule)
MIN_TRAIN = 100        # ... at least this many


def train_rows(n: int, train_frac: float = TRAIN_FRAC, max_train: int = MAX_TRAIN,
               min_train: int = MIN_TRAIN) -> int:
    """Points of an ``n``-point series that train the detector (and get no score):
    ``min(floor(train_frac n), max_train)``, at least ``min_train``."""
    return int(max(min(np.floor(train_frac * n), max_train), min_train))


def score_online(series: pd.Series, detector: str | Detector = DEFAULT_DETECTOR, *,
                 train_frac: float = TRAIN_FRAC, max_train: int = MAX_TRAIN,
                 min_train: int = MIN_TRAIN) -> np.ndarray:
    """Score one series with nothing but itself: fit on its first points, score the rest.

    The first :func:`train_rows` points are the training window and get NaN (a model is never judged
    on the data it was fitted on); every later point is scored causally. Causal as a whole: appending
    points never changes earlier scores as long as the training window is the same. A training window
    too thin to calibrate gives all-NaN scores (no alarm) rather than an error.
    """
    det = make_detector(detector) if isinstance(detector, str) else detector
    n = len(series)
    k = train_rows(n, train_frac, max_train, min_train)
    out = np.full(n, np.nan)
    if n <= k:
        return out
    try:
        det.fit(series.iloc[:k])
    except InsufficientDataError:
        return out
    out[k:] = det.score(series.iloc[k:])
    return out


def alarms_from_scores(ts: pd.DatetimeIndex, score: np.ndarray, rule: AlarmRule = AlarmRule(),
                       train: int | None = None) -> np.ndarray:
    """Alarm id per point (0 = none) from causal scores; a false-alarm-rate rule takes the sampling
    step from the first ``train`` points (default :func:`train_rows`), so the threshold is causal too."""
    k = train_rows(len(ts)) if train is None else train
    return alarm_ids(ts, score, rule, step_s=typical_step_s(ts[: max(k, 2)]))


@dataclass
class DetectionRun:
    """Scores and alarms of one series. ``alarm_id`` is 0 outside alarms; ``alert`` marks alarm starts."""

    ts: pd.DatetimeIndex
    values: np.ndarray
    score: np.ndarray
    alarm_id: np.ndarray
    rule: AlarmRule
    threshold: float
    train: int
    detector: str
    extra: dict = field(default_factory=dict)

    @property
    def alert(self) -> np.ndarray:
        return alarm_starts(self.alarm_id)

    def frame(self) -> pd.DataFrame:
        """``timestamp, value, score, alert, alarm_id`` (the ``detect`` command's output)."""
        return pd.DataFrame({"timestamp": self.ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": self.values,
                             "score": self.score, "alert": self.alert.astype(np.int64),
                             "alarm_id": self.alarm_id})


def run_detection(series: pd.Series, detector: str | Detector = DEFAULT_DETECTOR,
                  rule: AlarmRule = AlarmRule()) -> DetectionRun:
    """Causal scores and alarms of one series (values on a sorted, duplicate-free UTC DatetimeIndex)."""
    name = detector if isinstance(detector, str) else detector.name
    score = score_online(series, detector)
    k = train_rows(len(series))
    ids = alarms_from_scores(series.index, score, rule, train=k)
    thr = rule.threshold_for(typical_step_s(series.index[: max(k, 2)]))
    return DetectionRun(series.index, series.to_numpy(dtype=np.float64), score, ids, rule, thr, k, name)
