"""Slow-drift detector: how far a point lies from the level of the previous week, in units of that
week's robust spread. Catches excursions too slow for the one-day baselines, which adapt to them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.analysis.detect.base import Detector, lagged_rolling_median, step_or_default

MAD_TO_SIGMA = 1.4826
IDR_TO_SIGMA = 2.5631      # 10-90% range of a normal distribution, in sigmas


class DriftZScore(Detector):
    """Causal long-window robust z-score.

    Raw statistic ``|x - m| / sigma`` where the median ``m`` and the robust spread ``sigma`` come
    from the ``window_s`` seconds *before* the point: ``sigma`` is the larger of ``1.4826 * MAD``
    (median absolute deviation from ``m``'s running value) and the 10-90% range ``/ 2.5631`` (both
    equal the standard deviation for normal noise; the second keeps a window dominated by one level
    from getting a near-zero spread). NaN until ``min_share`` of that window is available.

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
        # a second robust sigma from the 10-90% range, so a week dominated by one level (a square
        # wave, a mostly idle host) does not get a near-zero MAD and turn every return to the other
        # level into a hundred-sigma event; both agree (= sigma) on normal noise
        roll = pd.Series(x).shift(1).rolling(w, min_periods=mp)
        spread = (roll.quantile(0.9).to_numpy() - roll.quantile(0.1).to_numpy()) / IDR_TO_SIGMA
        scale = np.maximum(np.fmax(MAD_TO_SIGMA * mad, spread), 0.5 * self.resolution_ + 1e-12)
        return np.abs(x - med) / scale, med, scale
