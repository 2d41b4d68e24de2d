"""Alarm post-processing: from calibrated anomaly scores to alerts, the one rule users and the evaluation share.

A detector gives a causal score per point (``1 - p``, ``p`` the calibrated tail probability). Users
are not paged per point; they get *alarms*. :class:`AlarmRule` turns scores into alarms in two steps
(in the spirit of Merlion's post-rules):

1. **Calibration to a false-alarm rate.** The rule's sensitivity is either a score threshold or a
   target number of false alarms per week. A calibrated score exceeds ``1 - p`` on a fraction ``p``
   of normal points, so a series sampled every ``step_s`` seconds has about
   ``604800 / step_s * p`` over-threshold points per week when nothing is wrong; the threshold for a
   target rate ``r`` per week is therefore ``1 - r * step_s / 604800`` (see :meth:`AlarmRule.threshold_for`).
   That is an upper bound on alarms (the refractory step merges nearby points).
2. **Refractory merging.** A point at or above the threshold opens an alarm unless one is open; an
   alarm stays open for ``refractory_s`` seconds after it opened, and every point in that span
   belongs to it (its ``alarm_id``); over-threshold points inside it are repeats of the same episode
   and page nobody. The first over-threshold point after it closes opens the next alarm.

Causal: whether a point opens or belongs to an alarm depends only on that point and earlier ones, so
appending later points never changes earlier alerts or alarm ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.analysis.detect.base import DEFAULT_THRESHOLD
from core.analysis.detect.base import infer_step_s as typical_step_s  # median step, seconds
from core.errors import ValidationError

WEEK_S = 7 * 86400.0
#: Default refractory span, seconds: one alarm per 6 h episode (chosen with the threshold on NAB).
DEFAULT_REFRACTORY_S = 6 * 3600.0
#: Thresholds are never set above this (a score is ``1 - p`` and p below 1e-9 is not calibrated).
MAX_THRESHOLD = 1.0 - 1e-9


@dataclass(frozen=True)
class AlarmRule:
    """How scores become alarms: a sensitivity and a refractory span.

    Parameters
    ----------
    threshold : float
        Score at or above which a point is over threshold (in (0, 1)); used when
        ``false_alarms_per_week`` is None.
    refractory_s : float
        Seconds an alarm stays open after it opens (repeats inside are merged into it); 0 makes
        every over-threshold point its own alarm.
    false_alarms_per_week : float, optional
        Target false-alarm rate per week; when given it sets the threshold per series from the
        series' sampling step (:meth:`threshold_for`).
    """

    threshold: float = DEFAULT_THRESHOLD
    refractory_s: float = DEFAULT_REFRACTORY_S
    false_alarms_per_week: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValidationError(f"must be in (0, 1), got {self.threshold}", path="threshold")
        if not self.refractory_s >= 0:
            raise ValidationError(f"must be >= 0 seconds, got {self.refractory_s}", path="refractory_s")
        if self.false_alarms_per_week is not None and not self.false_alarms_per_week > 0:
            raise ValidationError(f"must be > 0 per week, got {self.false_alarms_per_week}",
                                  path="false_alarms_per_week")

    def threshold_for(self, step_s: float) -> float:
        """Score threshold for a series sampled every ``step_s`` seconds (the fixed ``threshold``
        unless a false-alarm rate per week is the target)."""
        if self.false_alarms_per_week is None:
            return self.threshold
        step = step_s if np.isfinite(step_s) and step_s > 0 else 60.0
        return float(np.clip(1.0 - self.false_alarms_per_week * step / WEEK_S, 1e-6, MAX_THRESHOLD))

    def describe(self) -> str:
        sens = (f"{self.false_alarms_per_week:g} expected false alarms per week"
                if self.false_alarms_per_week is not None else f"score >= {self.threshold:g}")
        return f"{sens}, one alarm per {self.refractory_s / 3600:g} h episode"


def alarm_ids(ts: pd.DatetimeIndex, score: np.ndarray, rule: AlarmRule = AlarmRule(),
              step_s: float | None = None) -> np.ndarray:
    """Alarm id per point (1, 2, ... in time order; 0 = in no alarm). Causal.

    ``step_s`` (seconds) sets the threshold of a false-alarm-rate rule; default the median step of
    ``ts``. NaN scores never open an alarm. Loops over alarm starts only, not over points.
    """
    score = np.asarray(score, dtype=np.float64)
    if score.shape != (len(ts),):
        raise ValidationError(f"{score.size} scores for {len(ts)} timestamps", path="score")
    thr = rule.threshold_for(typical_step_s(ts) if step_s is None else step_s)
    with np.errstate(invalid="ignore"):
        over = np.flatnonzero(score >= thr)
    ids = np.zeros(score.size, dtype=np.int64)
    if over.size == 0:
        return ids
    t = ts.as_unit("ns").asi8
    span = int(round(rule.refractory_s * 1e9))
    k, i, n_over = 0, 0, over.size
    while i < n_over:
        start = over[i]
        end = start + 1 if span <= 0 else int(np.searchsorted(t, t[start] + span, side="left"))
        end = max(end, start + 1)
        k += 1
        ids[start:end] = k
        i = int(np.searchsorted(over, end, side="left"))
    return ids


def alarm_starts(ids: np.ndarray) -> np.ndarray:
    """Boolean per point: the point opens an alarm (its id differs from the previous point's)."""
    ids = np.asarray(ids)
    prev = np.r_[0, ids[:-1]] if ids.size else ids
    return (ids > 0) & (ids != prev)


def alarm_table(ts: pd.DatetimeIndex, ids: np.ndarray) -> pd.DataFrame:
    """One row per alarm: ``alarm_id, start, end, points`` (``end`` = last point it covers)."""
    ids = np.asarray(ids)
    on = ids > 0
    if not on.any():
        return pd.DataFrame({"alarm_id": pd.Series(dtype="int64"), "start": pd.Series(dtype="datetime64[ns, UTC]"),
                             "end": pd.Series(dtype="datetime64[ns, UTC]"), "points": pd.Series(dtype="int64")})
    df = pd.DataFrame({"alarm_id": ids[on], "ts": ts[on]})
    g = df.groupby("alarm_id")["ts"]
    out = pd.DataFrame({"start": g.min(), "end": g.max(), "points": g.size()}).reset_index()
    return out
