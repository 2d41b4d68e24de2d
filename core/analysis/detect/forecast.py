"""Forecast-residual detector: one-step-ahead exponential smoothing forecast, and how surprising the
actual value is relative to recent forecast errors.

The level is *robust* to isolated outliers: before a value updates the level it is capped to the
forecast plus or minus ``cap`` robust spreads, so a lone spike does not drag the next forecasts
towards it (which would make the following normal points look anomalous, an "echo"). A value that
is the ``persist``-th or later consecutive one outside the cap on the same side updates the level
uncapped: a lasting change is followed at the ordinary smoothing rate, not resisted.
"""

from __future__ import annotations

import math
from bisect import bisect_left

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from core.analysis.detect.base import Detector, robust_scale

ALPHAS = (0.05, 0.1, 0.2, 0.4, 0.7, 1.0)
CAP_K = 4.0        # robust spreads from the forecast beyond which a value is capped before smoothing
PERSIST = 3        # consecutive same-side values beyond the cap that are taken as a lasting change
_MAX_BLOCK = 4096  # longest stretch examined in one vectorised step


def ewma_forecast(x: np.ndarray, alpha: float) -> np.ndarray:
    """One-step-ahead simple exponential smoothing forecast: ``f_t`` uses ``x_0..x_{t-1}`` only
    (missing values are skipped, not filled). Causal."""
    level = pd.Series(x).ewm(alpha=alpha, adjust=False, ignore_na=True).mean()
    return level.shift(1).to_numpy()


def capped_ewma_forecast(x: np.ndarray, alpha: float, cap: np.ndarray,
                         persist: int = PERSIST) -> np.ndarray:
    """One-step-ahead exponential smoothing forecast whose level is fed capped values. Causal.

    With forecast ``f_t`` (the level after the last finite value before t), a finite ``x_t`` updates
    the level to ``f_t + alpha * (c_t - f_t)`` where ``c_t`` is ``x_t`` clipped to ``f_t +/- cap_t``,
    except that the ``persist``-th and later of consecutive finite values beyond the cap on the same
    side are used as they are (a lasting change). Missing values are skipped, never filled; the
    forecast at a missing point is the level so far. ``cap`` NaN or inf means no cap; with no cap
    at all this equals :func:`ewma_forecast`.

    Vectorised: smoothing is linear, so the capped level is the plain EWMA level plus the EWMA of
    sparse corrections ``alpha * (c_t - x_t)`` at the capped points. Only those points, and the few
    hundred points after each where its correction has not yet decayed, are examined one block at
    a time; elsewhere the plain forecast's decisions hold.

    Parameters
    ----------
    x : array of float
        Values in time order (NaN = missing).
    alpha : float
        Smoothing constant in (0, 1].
    cap : array of float
        Largest deviation from the forecast fed to the level, per point, in the units of ``x``
        (non-negative); it must itself be causal (computed from points before t).
    persist : int
        Consecutive same-side values beyond the cap after which values are no longer capped.
    """
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.size, np.nan)
    ok = np.flatnonzero(np.isfinite(x))
    if ok.size == 0:
        return out
    y = x[ok]
    w = np.asarray(cap, dtype=np.float64)[ok]
    w = np.where(np.isnan(w), np.inf, w)
    m, beta = y.size, 1.0 - alpha
    plain = np.empty(m)                   # plain EWMA level after each finite value
    plain[0] = y[0]                       # the first value starts the level, as pandas' ewm does
    if m > 1:
        plain[1:] = lfilter([alpha], [1.0, -beta], y[1:], zi=[beta * y[0]])[0]
    d0 = np.r_[0.0, y[1:] - plain[:-1]]   # one-step error of the plain forecast
    nz0 = np.flatnonzero(np.abs(d0) > w)  # beyond the cap while no correction is pending
    finite_w = w[np.isfinite(w)]
    if nz0.size == 0 or finite_w.size == 0:
        return _spread_levels(out, ok, plain)
    # a pending correction smaller than tol flips no decision (the levels keep it exactly)
    tol = max(1e-9 * float(np.median(finite_w)), 1e-15 * (float(np.max(np.abs(y))) + 1.0))
    log_beta = math.log(beta) if beta > 0.0 else -math.inf
    powers = beta ** np.arange(_MAX_BLOCK)
    cand, cand_d, cand_w = nz0.tolist(), d0[nz0].tolist(), w[nz0].tolist()
    deltas: dict[int, float] = {}         # level corrections alpha * (c_t - x_t) at capped points
    k, pos, corr, run, last = 0, 1, 0.0, 0, -2   # corr: pending correction of the level before pos
    while pos < m:
        if corr == 0.0:                   # the plain decisions hold: go to the next plain candidate
            k = bisect_left(cand, pos, k)
            if k == len(cand):
                break
            i, e, wi = cand[k], cand_d[k], cand_w[k]
            s = 1 if e > 0 else -1
            length = abs(run) + 1 if (last == i - 1 and (run > 0) == (s > 0)) else 1
            run, last, pos = s * length, i, i + 1
            if length < persist:
                corr = deltas[i] = alpha * (s * wi - e)
            continue
        # a correction is pending: examine every point until it has decayed below tol
        span = 1 if beta <= 0.0 else int(math.log(tol / abs(corr)) / log_beta) + 1
        end = min(m, pos + min(max(span, 1), _MAX_BLOCK))
        d = d0[pos:end] - corr * powers[:end - pos]
        event = -1
        for j in (np.abs(d) > w[pos:end]).nonzero()[0].tolist():   # points beyond the cap only
            i, e = pos + j, float(d[j])
            s = 1 if e > 0 else -1
            length = abs(run) + 1 if (last == i - 1 and (run > 0) == (s > 0)) else 1
            run, last = s * length, i
            if length < persist:
                event = j
                break
        if event < 0:
            corr *= beta ** (end - pos)
            pos = end
        else:
            i = pos + event
            deltas[i] = alpha * (s * float(w[i]) - e)
            corr = corr * float(powers[event]) * beta + deltas[i]
            pos = i + 1
        if abs(corr) < tol:
            corr = 0.0
    delta = np.zeros(m)
    if deltas:
        delta[np.fromiter(deltas.keys(), dtype=np.int64)] = np.fromiter(deltas.values(), dtype=np.float64)
    return _spread_levels(out, ok, plain + lfilter([1.0], [1.0, -beta], delta))


def _spread_levels(out: np.ndarray, ok: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Forecast at every position: the level after the last finite value before it."""
    before = np.searchsorted(ok, np.arange(out.size), side="left") - 1
    has = before >= 0
    out[has] = levels[before[has]]
    return out


class EwmaResidual(Detector):
    """Causal EWMA forecast-residual detector with an outlier-robust level.

    The smoothing constant ``alpha`` is chosen on the training history (smallest median absolute
    one-step error of the plain EWMA over a small grid; the median ignores outliers) unless given.
    ``spread_t`` is ``1.4826 *`` the median absolute error of the plain EWMA forecast over the
    ``window_s`` seconds before t (at least half the data's resolution). The forecast ``f_t`` is
    :func:`capped_ewma_forecast` with cap ``cap * spread_t``, so an isolated outlier moves the level
    by at most ``alpha * cap`` spreads. Raw statistic: ``|x_t - f_t| / spread_t``; the point's own
    score uses its raw value. Causal throughout.

    Parameters
    ----------
    alpha : float or None
        Smoothing constant in (0, 1]; None picks one on the history.
    window_s : float
        Length of the error-spread window, seconds.
    cap : float
        Spreads from the forecast beyond which a value is capped before it updates the level
        (``inf`` = plain EWMA).
    persist : int
        Consecutive same-side values beyond the cap that count as a lasting change and update the
        level uncapped.
    """

    name = "ewma_residual"

    def __init__(self, alpha: float | None = None, window_s: float = 86400.0, cap: float = CAP_K,
                 persist: int = PERSIST) -> None:
        super().__init__()
        self.alpha = alpha
        self.window_s = window_s
        self.cap = cap
        self.persist = persist

    def _fit_model(self, history: pd.Series) -> None:
        x = history.to_numpy()
        if self.alpha is not None:
            self.alpha_ = float(self.alpha)
            return
        errs = [np.nanmedian(np.abs(x - ewma_forecast(x, a))) if np.isfinite(x).sum() > 2 else np.inf
                for a in ALPHAS]
        self.alpha_ = float(ALPHAS[int(np.nanargmin(errs))]) if np.isfinite(errs).any() else 0.2

    def _raw(self, s: pd.Series, start: int = 0):
        x = s.to_numpy()
        step = self.step_s_ if np.isfinite(self.step_s_) and self.step_s_ > 0 else 60.0
        w = max(10, int(round(self.window_s / step)))
        scale = robust_scale(np.abs(x - ewma_forecast(x, self.alpha_)), w, 0.5 * self.resolution_)
        if np.isfinite(self.cap):
            f = capped_ewma_forecast(x, self.alpha_, self.cap * scale, self.persist)
        else:
            f = ewma_forecast(x, self.alpha_)
        return np.abs(x - f) / scale, f, scale
