"""Discord detector: how far the last hours' shape lies from its nearest match in the days before it.

A causal *left matrix profile*: for each point, the subsequence of the last ``m`` points (the point
included) is compared with every earlier subsequence of the same length that ends at least ``m``
points before it and lies within the reference span; the raw statistic is the distance to the
nearest one. A pattern the series has shown before (a daily peak, a recurring burst) finds a close
match and scores low; a shape or level never seen in the reference span (a discord) scores high.
The distances are plain (not z-normalised) root-mean-square differences in the series' units, so a
new level counts as much as a new shape. Idea from the matrix-profile literature (Yeh et al., 2016;
discords as anomalies), written here in numpy over a bounded window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.analysis.detect.base import Detector, step_or_default

MIN_GRID_S = 300.0      # faster data is averaged over trailing blocks of at least this many seconds


def left_discord(x: np.ndarray, m: int, max_lag: int) -> np.ndarray:
    """Causal left matrix profile of ``x`` (plain Euclidean distance, RMS per point).

    For each position ``t >= 2 m - 1``: ``min over d in [m, max_lag]`` of
    ``sqrt(mean_j (x[t - j] - x[t - d - j])^2)`` for ``j = 0 .. m - 1``, i.e. the distance from the
    subsequence ending at ``t`` to the nearest earlier one that does not overlap it, at most
    ``max_lag`` points back. A pair with a missing value in either subsequence is not a match; NaN
    where no pair qualifies. Causal: position ``t`` reads ``x[: t + 1]`` only.

    Parameters
    ----------
    x : array of float
        Values in time order (NaN = missing).
    m : int
        Subsequence length, points (at least 1).
    max_lag : int
        Farthest earlier subsequence end compared, points back.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    best = np.full(n, np.inf)
    hi = min(int(max_lag), n - m)
    if m < 1 or hi < m:
        return np.full(n, np.nan)
    bad = ~np.isfinite(x)
    xf = np.where(bad, 0.0, x)
    # wb[t]: the subsequence ending at t holds a missing value (so no pair with it is a match)
    wb = np.convolve(bad, np.ones(m), mode="full")[:n] > 0 if bad.any() else None
    c = np.empty(n + 1)
    c[0] = 0.0
    for d in range(m, hi + 1):                  # one vectorised pass per lag (a few hundred lags)
        sq = xf[d:] - xf[:-d]
        sq *= sq
        cs = c[: sq.size + 1]
        np.cumsum(sq, out=cs[1:])
        win = cs[m:] - cs[:-m]                   # sum over the m pairs ending at position d + m - 1 ...
        if wb is not None:
            win[wb[d + m - 1:] | wb[m - 1: n - d]] = np.inf
        seg = best[d + m - 1:]
        np.minimum(seg, win, out=seg)
    best[~np.isfinite(best)] = np.nan
    np.maximum(best, 0.0, out=best)             # rounding in the running sums never goes below 0
    return np.sqrt(best / m)


class MatrixProfileDiscord(Detector):
    """Causal matrix-profile discord detector (see the module notes).

    Series sampled faster than every ``MIN_GRID_S`` seconds are first averaged over trailing blocks of
    ``g`` points (``g = round(MIN_GRID_S / step)``), on block ends fixed from the start of the data,
    and every point takes the distance of the last completed block end at or before it, so the cost
    stays bounded (about ``n / g`` positions times ``reference / (g step)`` lags) and nothing later
    than the point is read.

    Parameters
    ----------
    window_s : float
        Subsequence length, seconds (default two hours; at least ``min_points`` points).
    min_points : int
        Smallest subsequence, points of the (averaged) grid.
    reference_s : float
        How far back a match is searched, seconds (default three days).
    smooth : int
        Trailing median over this many (grid) points before matching, so a lone spike, which the
        point detectors judge, does not make every subsequence that holds it a discord for the next
        hour (1 = off).
    """

    name = "mp_discord"

    def __init__(self, window_s: float = 7200.0, min_points: int = 4, reference_s: float = 3 * 86400.0,
                 smooth: int = 3) -> None:
        super().__init__()
        self.window_s = window_s
        self.min_points = min_points
        self.reference_s = reference_s
        self.smooth = int(smooth)

    def _raw(self, s: pd.Series, start: int = 0):
        x = s.to_numpy()
        n = x.size
        step = step_or_default(self.step_s_)
        g = max(1, int(round(MIN_GRID_S / step)))
        nan = np.full(n, np.nan)
        if g == 1:
            y, ends = x, np.arange(n)
        else:
            means = pd.Series(x).rolling(g, min_periods=1).mean().to_numpy()
            ends = np.arange(g - 1, n, g)                   # block ends, counted from the first point
            y = means[ends]
        if self.smooth > 1:                                 # a lone spike is not a new shape
            med = pd.Series(y).rolling(self.smooth, min_periods=1).median().to_numpy()
            y = np.where(np.isfinite(y), med, np.nan)      # missing stays missing
        gstep = step * g
        m = max(self.min_points, int(round(self.window_s / gstep)))
        lag = max(4 * m, int(round(self.reference_s / gstep)))
        d = left_discord(y, m, lag)
        if g == 1:
            return d, nan, nan.copy()
        if d.size == 0:                                     # fewer points than one block: no score
            return nan.copy(), nan, nan.copy()
        k = np.searchsorted(ends, np.arange(n), side="right") - 1   # last block end at or before t
        raw = np.where(k >= 0, d[np.clip(k, 0, None)], np.nan)
        return raw, nan, nan.copy()
