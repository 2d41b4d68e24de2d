"""Level-shift detector: a CUSUM of robust seasonal z-scores over a sliding window, so it catches
shifts that no single point reveals while forgetting the past after a fixed time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.analysis.detect.base import Detector, step_or_default
from core.analysis.detect.seasonal import SeasonalZScore


class CusumDetector(Detector):
    """Causal sliding-window CUSUM level-shift detector.

    Each value becomes a robust z-score against the causal baseline of
    :class:`~core.analysis.detect.seasonal.SeasonalZScore` (same slot of earlier days/weeks, or the previous
    day), clipped to ``+/- clip`` so one spike cannot trigger it alone. Raw statistic: the absolute
    sum of the last ``m`` clipped z-scores divided by ``sqrt(m)`` (for independent noise about a
    standard normal; a shift of ``d`` sigmas lasting ``m`` points gives about ``d sqrt(m)``), with
    ``m`` the points in ``window_s`` seconds (at least ``min_points``). Memory is finite, so the
    statistic stays comparable over time and is calibrated like the other detectors. Missing values
    contribute nothing and are not scored.

    Parameters
    ----------
    window_s : float
        Length of the accumulation window, seconds (default three hours).
    min_points : int
        Smallest window in points (for coarse data).
    clip : float
        Limit on each point's standardised contribution.
    """

    name = "cusum"

    def __init__(self, window_s: float = 10800.0, min_points: int = 6, clip: float = 4.0) -> None:
        super().__init__()
        self.window_s = window_s
        self.min_points = min_points
        self.clip = clip
        self.warmup_s = 2 * 86400.0          # the seasonal baseline needs two days to warm up

    def _fit_model(self, history: pd.Series) -> None:
        self.base_ = SeasonalZScore()
        self.base_.step_s_, self.base_.resolution_ = self.step_s_, self.resolution_

    def _raw(self, s: pd.Series, start: int = 0):
        z, med, _ = self.base_.signed_z(s)
        m = max(self.min_points, int(round(self.window_s / step_or_default(self.step_s_))))
        zc = pd.Series(np.clip(z, -self.clip, self.clip))
        total = zc.rolling(m, min_periods=max(2, m // 2)).sum().to_numpy()
        cnt = zc.rolling(m, min_periods=1).count().to_numpy()
        raw = np.abs(total) / np.sqrt(np.maximum(cnt, 1))
        raw[~np.isfinite(z)] = np.nan
        return raw, med, np.full(z.size, np.nan)
