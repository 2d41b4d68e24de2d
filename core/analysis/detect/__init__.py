"""Causal anomaly detectors behind one estimator interface.

``fit(history)`` learns and calibrates on a training history; ``score(series)`` returns a score in
[0, 1] per point (``1 -`` tail probability against the training history), NaN where the value is
missing or there is not yet enough earlier data. Every score uses only the point and earlier points.

>>> det = make_detector("ensemble").fit(history)          # doctest: +SKIP
>>> alerts = det.score(series) >= DEFAULT_THRESHOLD       # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.analysis.detect.base import DEFAULT_THRESHOLD, Detector, TailCalibrator
from core.analysis.detect.cusum import CusumDetector
from core.analysis.detect.drift import DriftZScore
from core.analysis.detect.ensemble import DEFAULT_MEMBERS, EnsembleDetector
from core.analysis.detect.entropy import DistributionChange
from core.analysis.detect.forecast import EwmaResidual
from core.analysis.detect.iforest import IsolationForestDetector
from core.analysis.detect.registry import MEMBERS
from core.analysis.detect.seasonal import SeasonalZScore
from core.errors import ValidationError

DETECTORS: dict[str, type[Detector]] = {**MEMBERS, EnsembleDetector.name: EnsembleDetector}
DEFAULT_DETECTOR = "ensemble"


def make_detector(name: str = DEFAULT_DETECTOR, **params: Any) -> Detector:
    """A new detector from the registry by name, with keyword parameters for its constructor."""
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise ValidationError(f"unknown detector {name!r}; expected one of {sorted(DETECTORS)}",
                              path="detector") from None
    return cls(**params)


def score_online(series: pd.Series, detector: str | Detector = DEFAULT_DETECTOR, *,
                 train_frac: float = 0.15, max_train: int = 750, min_train: int = 100) -> np.ndarray:
    """Score one series with nothing but itself: fit on its first points, score the rest.

    The first ``min(train_frac * n, max_train)`` points (at least ``min_train``) are the training
    window and get NaN (a model is never judged on the data it was fitted on); every later point is
    scored causally. Causal as a whole: appending points never changes earlier scores as long as the
    training window is the same.
    """
    det = make_detector(detector) if isinstance(detector, str) else detector
    n = len(series)
    k = int(max(min(np.floor(train_frac * n), max_train), min_train))
    out = np.full(n, np.nan)
    if n <= k:
        return out
    det.fit(series.iloc[:k])
    out[k:] = det.score(series.iloc[k:])
    return out


__all__ = ["DETECTORS", "DEFAULT_DETECTOR", "DEFAULT_MEMBERS", "DEFAULT_THRESHOLD", "Detector",
           "TailCalibrator", "make_detector", "score_online", "SeasonalZScore", "CusumDetector",
           "EwmaResidual", "IsolationForestDetector", "DriftZScore", "DistributionChange",
           "EnsembleDetector"]
