"""Distribution-change detector: has the histogram of the last few points moved away from the
histogram of the history before them? A G-test (relative entropy) over quantile bins, in the spirit
of NAB's "relative entropy" baseline. It fires at the onset of a change in level *or* shape (a new
spread, a new mode, a flat line) that no single point reveals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.analysis.detect.base import Detector, step_or_default


def _rolling_counts(onehot_cum: np.ndarray, end: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Counts per bin of the rows ``[end - length, end)`` from a cumulative one-hot table whose row
    ``i`` holds the counts of rows ``< i`` (so row 0 is all zeros)."""
    lo = np.clip(end - length, 0, None)
    return onehot_cum[end] - onehot_cum[lo]


class DistributionChange(Detector):
    """Causal histogram-change (G-test) detector.

    Bins: ``bins`` equal-probability bins whose interior edges are quantiles of the training
    history (ties merged, so quantised data gets fewer bins). For point ``t`` the *recent* window is
    the ``w`` points ending at ``t`` (``w`` = points in ``window_s`` seconds, at least
    ``min_points``); the *reference* is the ``r`` points before that window (``r`` = points in
    ``reference_s`` seconds, at least ``4 w``). Raw statistic: the G statistic
    ``2 sum_b O_b ln(O_b / E_b)`` with ``O`` the recent counts and ``E = n_recent * q`` where ``q``
    is the reference share of each bin (add-half smoothing, so an empty reference bin is unusual but
    not infinitely so). Missing values are in neither count; the point's raw value is NaN when it is
    missing or fewer than ``w / 2`` recent or ``w`` reference points are present. The statistic is
    calibrated against the training history like every detector (windows overlap, so its null
    distribution is not the textbook chi-square; the empirical calibration accounts for that).

    Parameters
    ----------
    window_s : float
        Length of the recent window, seconds (default two hours).
    min_points : int
        Smallest recent window, points (for coarse data).
    reference_s : float
        Length of the reference history before the recent window, seconds (default seven days).
    bins : int
        Number of quantile bins (at most; ties merge bins).
    """

    name = "dist_change"

    def __init__(self, window_s: float = 7200.0, min_points: int = 24, reference_s: float = 7 * 86400.0,
                 bins: int = 8) -> None:
        super().__init__()
        self.window_s = window_s
        self.min_points = min_points
        self.reference_s = reference_s
        self.bins = bins

    def _fit_model(self, history: pd.Series) -> None:
        x = history.to_numpy()
        fin = x[np.isfinite(x)]
        if fin.size == 0:
            self.edges_ = np.empty(0)
            return
        qs = np.quantile(fin, np.arange(1, self.bins) / self.bins)
        self.edges_ = np.unique(qs)

    def _raw(self, s: pd.Series, start: int = 0):
        x = s.to_numpy()
        n = x.size
        step = step_or_default(self.step_s_)
        w = max(self.min_points, int(round(self.window_s / step)))
        r = max(4 * w, int(round(self.reference_s / step)))
        ok = np.isfinite(x)
        nb = self.edges_.size + 1
        b = np.searchsorted(self.edges_, np.where(ok, x, 0.0), side="right")
        onehot = np.zeros((n + 1, nb), dtype=np.int64)
        onehot[np.flatnonzero(ok) + 1, b[ok]] = 1
        cum = np.cumsum(onehot, axis=0)                   # row i: counts of rows < i
        end = np.arange(1, n + 1)                         # recent window ends at (and includes) t
        recent = _rolling_counts(cum, end, np.full(n, w))
        n_rec = recent.sum(axis=1)
        ref = _rolling_counts(cum, np.clip(end - w, 0, None), np.full(n, r))
        n_ref = ref.sum(axis=1)
        g = self._g(recent, n_rec, ref)
        g[(n_rec < max(2, w // 2)) | (n_ref < w) | ~ok] = np.nan
        nan = np.full(n, np.nan)
        return g, nan, nan

    @staticmethod
    def _g(recent: np.ndarray, n_rec: np.ndarray, ref: np.ndarray) -> np.ndarray:
        nb = recent.shape[1]
        q = (ref + 0.5) / (ref.sum(axis=1)[:, None] + 0.5 * nb)
        e = n_rec[:, None] * q
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(recent > 0, recent * np.log(recent / e), 0.0)
        return 2.0 * terms.sum(axis=1)
