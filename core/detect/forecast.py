"""Forecast-residual detector: one-step-ahead exponential smoothing forecast, and how surprising the
actual value is relative to recent forecast errors."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.detect.base import Detector, robust_scale

ALPHAS = (0.05, 0.1, 0.2, 0.4, 0.7, 1.0)


def ewma_forecast(x: np.ndarray, alpha: float) -> np.ndarray:
    """One-step-ahead simple exponential smoothing forecast: ``f_t`` uses ``x_0..x_{t-1}`` only
    (missing values are skipped, not filled)."""
    level = pd.Series(x).ewm(alpha=alpha, adjust=False, ignore_na=True).mean()
    return level.shift(1).to_numpy()


class EwmaResidual(Detector):
    """Causal EWMA forecast-residual detector.

    The smoothing constant ``alpha`` is chosen on the training history (smallest median absolute
    one-step error over a small grid) unless given. Raw statistic: ``|x_t - f_t| / spread_t`` where
    ``spread_t`` is the scaled median absolute forecast error over the ``window_s`` seconds before t.

    Parameters
    ----------
    alpha : float or None
        Smoothing constant in (0, 1]; None picks one on the history.
    window_s : float
        Length of the error-spread window, seconds.
    """

    name = "ewma_residual"

    def __init__(self, alpha: float | None = None, window_s: float = 86400.0) -> None:
        super().__init__()
        self.alpha = alpha
        self.window_s = window_s

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
        f = ewma_forecast(x, self.alpha_)
        err = np.abs(x - f)
        scale = robust_scale(err, w, 0.5 * self.resolution_)
        return err / scale, f, scale
