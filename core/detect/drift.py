"""Slow-drift detector: how far a point lies from the level of the previous week, in units of that
week's robust spread. Catches excursions too slow for the one-day baselines, which adapt to them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.detect.base import Detector, lagged_rolling_median, step_or_default

MAD_TO_SIGMA = 1.4826


class DriftZScore(Detector):
    """Causal long-window robust z-score.

    Raw statistic ``|x - m| / (1.4826 * MAD)`` where the median ``m`` and the MAD (median absolute
    deviation from ``m``'s running value) come from the ``window_s`` seconds *before* the point; NaN
    until ``min_share`` of that window is available.

    Parameters
    ----------
    window_s : float
        Reference window, seconds (default 7 days).
    min_share : float
        Share of the window that must hold earlier points before scoring.
    """

    name = "drift_z"

    def __init__(self, window_s: float = 7 * 86400.0, min_share: float = 0.125) -> None:
        super().__init__()
        self.window_s = window_s
        self.min_share = min_share

    def _raw(self, s: pd.Series, start: int = 0):
        x = s.to_numpy()
        w = max(20, int(round(self.window_s / step_or_default(self.step_s_))))
        mp = max(20, int(w * self.min_share))
        med = lagged_rolling_median(x, w, mp)
        mad = lagged_rolling_median(np.abs(x - med), w, mp)
        scale = np.maximum(MAD_TO_SIGMA * mad, 0.5 * self.resolution_ + 1e-12)
        return np.abs(x - med) / scale, med, scale
