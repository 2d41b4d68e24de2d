"""Robust seasonal z-score: how far a point lies from the median of the same time of day (or of the
week) on earlier days (weeks), in units of a robust spread of recent residuals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.analysis.detect.base import (
    Detector,
    grouped_lagged_median,
    lagged_rolling_median,
    robust_scale,
    step_or_default,
)

DAY_S = 86400.0
WEEK_S = 7 * DAY_S


class SeasonalZScore(Detector):
    """Causal robust seasonal z-score.

    Three candidate baselines, each from *earlier* points only:

    * weekly: median of the same slot of the week (slot = sampling step, e.g. Tuesday 09:05) over the
      previous ``periods`` weeks;
    * daily: the same slot of the day over the previous ``periods`` days;
    * flat: median of the previous ``window_s`` seconds.

    Each baseline's spread is ``1.4826 x`` the median absolute residual over the previous
    ``window_s`` seconds (a scaled MAD, at least half the data's resolution). At each point the most
    specific baseline that has ``min_periods`` periods of history *and* cuts the flat spread by at
    least the factor ``gain`` is used, so seasonality is assumed only where there is enough history
    and the data shows it. Raw statistic: ``|x - median| / spread`` (two-sided, robust sigmas);
    :meth:`signed_z` gives the signed value.

    Parameters
    ----------
    periods : int
        Earlier days/weeks whose same-slot values form a seasonal baseline.
    min_periods : int
        Days/weeks of history needed before a seasonal baseline is used.
    window_s : float
        Flat baseline and spread window, seconds.
    gain : float
        A seasonal baseline is used only where its spread is below ``gain`` x the flat one.
    """

    name = "seasonal_z"

    def __init__(self, periods: int = 4, min_periods: int = 2, window_s: float = DAY_S,
                 gain: float = 0.8, slot_s: float = 900.0) -> None:
        super().__init__()
        self.periods = periods
        self.min_periods = min_periods
        self.window_s = window_s
        self.gain = gain
        self.slot_s = slot_s
        self.warmup_s = 0.0

    def signed_z(self, s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(z, expected, spread)`` per point of ``s`` (causal; NaN while history is too short)."""
        x = s.to_numpy()
        step = step_or_default(self.step_s_)
        w = max(10, int(round(self.window_s / step)))
        floor = 0.5 * self.resolution_
        med = lagged_rolling_median(x, w, max(10, w // 4))
        scale = robust_scale(np.abs(x - med), w, floor)
        secs = (s.index.as_unit("ns").asi8 // 1_000_000_000).astype(np.int64)
        span = (secs[-1] - secs[0]) if secs.size else 0
        for period in (DAY_S, WEEK_S):
            if span < self.min_periods * period:
                break
            slots = (secs % int(period) + (3 * 86400 if period == WEEK_S else 0)) % int(period)
            per_slot = max(1, int(round(self.slot_s / step)))      # points per slot per period
            groups = slots // (per_slot * max(1, int(round(step))))
            m, _ = grouped_lagged_median(x, groups, self.periods * per_slot, self.min_periods * per_slot)
            sc = robust_scale(np.abs(x - m), w, floor)
            sc[~np.isfinite(m)] = np.nan
            better = np.isfinite(sc) & (~np.isfinite(scale) | (sc < self.gain * scale))
            med = np.where(better, m, med)
            scale = np.where(better, sc, scale)
        return (x - med) / scale, med, scale

    def _raw(self, s: pd.Series, start: int = 0):
        z, med, scale = self.signed_z(s)
        return np.abs(z), med, scale
