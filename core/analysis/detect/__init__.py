"""Causal anomaly detectors behind one estimator interface.

``fit(history)`` learns and calibrates on a training history; ``score(series)`` returns a score in
[0, 1] per point (``1 -`` tail probability against the training history), NaN where the value is
missing or there is not yet enough earlier data. Every score uses only the point and earlier points.

>>> det = make_detector("ensemble").fit(history)          # doctest: +SKIP
>>> alerts = det.score(series) >= DEFAULT_THRESHOLD       # doctest: +SKIP
"""

from __future__ import annotations

from core.analysis.detect.alarms import (
    DEFAULT_REFRACTORY_S,
    AlarmRule,
    alarm_ids,
    alarm_starts,
    alarm_table,
    typical_step_s,
)
from core.analysis.detect.base import DEFAULT_THRESHOLD, Detector, TailCalibrator
from core.analysis.detect.catalog import (
    DEFAULT_DETECTOR,
    DETECTORS,
    ENSEMBLE_DESIGNS,
    PRESETS,
    detector_names,
    make_detector,
    user_detector_names,
)
from core.analysis.detect.cusum import CusumDetector
from core.analysis.detect.discord import MatrixProfileDiscord
from core.analysis.detect.drift import DriftZScore
from core.analysis.detect.ensemble import DEFAULT_MEMBERS, EnsembleDetector
from core.analysis.detect.entropy import DistributionChange
from core.analysis.detect.forecast import EwmaResidual
from core.analysis.detect.iforest import IsolationForestDetector
from core.analysis.detect.monitor import (
           DetectionRun,
           alarms_from_scores,
           run_detection,
           score_online,
           train_rows,
)
from core.analysis.detect.seasonal import SeasonalZScore

__all__ = ["DETECTORS", "ENSEMBLE_DESIGNS", "PRESETS", "detector_names", "user_detector_names", "DEFAULT_DETECTOR", "DEFAULT_MEMBERS", "DEFAULT_THRESHOLD", "Detector",
           "TailCalibrator", "make_detector", "score_online", "SeasonalZScore", "CusumDetector",
           "EwmaResidual", "IsolationForestDetector", "DriftZScore", "DistributionChange", "MatrixProfileDiscord",
           "EnsembleDetector", "AlarmRule", "DEFAULT_REFRACTORY_S", "alarm_ids", "alarm_starts",
           "alarm_table", "typical_step_s", "DetectionRun", "alarms_from_scores", "run_detection", "train_rows"]
