"""IsolationForest on causal lag features, calibrated on a held-out part of the training window."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from core.analysis.detect.base import Detector
from core.analysis.detect.seasonal import SeasonalZScore

MAD_TO_SIGMA = 1.4826


class IsolationForestDetector(Detector):
    """scikit-learn IsolationForest over causal lag features, with no contamination rate.

    Features of point t (all from t and earlier points): its robust seasonal z-score (see
    :class:`~core.analysis.detect.seasonal.SeasonalZScore`), the one-step change, and the log spread and mean
    of the last ``lags`` changes, the changes scaled by their robust spread on the history. The forest is trained on
    the first ``1 - holdout`` of the history and its raw scores (``-score_samples``) are turned into
    tail probabilities against the held-out last part of the history, which the forest never saw.

    Parameters
    ----------
    lags : int
        Points in the short local-shape window.
    window_s : float
        Baseline/spread window of the seasonal z-score, seconds.
    n_estimators, max_samples, random_state
        Passed to :class:`sklearn.ensemble.IsolationForest` (``contamination`` is never set; the
        forest's own threshold is not used).
    holdout : float
        Share of the history (the latest part) kept out of training for calibration.
    """

    name = "iforest"

    def __init__(self, lags: int = 6, window_s: float = 86400.0, n_estimators: int = 40,
                 max_samples: int = 256, random_state: int = 0, holdout: float = 0.34) -> None:
        super().__init__()
        self.lags = lags
        self.window_s = window_s
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.holdout = holdout

    def _features(self, s: pd.Series) -> np.ndarray:
        x = s.to_numpy()
        z, _, _ = self.base_.signed_z(s)                    # seasonal residual in robust sigmas
        d = pd.Series(x).diff()
        spread = d.rolling(self.lags, min_periods=self.lags).std().to_numpy()
        drift = d.rolling(self.lags, min_periods=self.lags).mean().to_numpy()
        sd = self.diff_scale_
        return np.column_stack([z, d.to_numpy() / sd, np.log(spread / sd + 1e-3), drift / sd])

    def _fit_model(self, history: pd.Series) -> None:
        self.base_ = SeasonalZScore(window_s=self.window_s)
        self.base_.step_s_, self.base_.resolution_ = self.step_s_, self.resolution_
        x = history.to_numpy()
        fin = x[np.isfinite(x)]
        dx = np.diff(x)
        dx = np.abs(dx[np.isfinite(dx)])
        self.value_scale_ = float(max(MAD_TO_SIGMA * np.median(np.abs(fin - np.median(fin))) if fin.size
                                      else 0.0, 1e-9))
        self.diff_scale_ = float(max(MAD_TO_SIGMA * np.median(dx) if dx.size else 0.0,
                                     self.value_scale_ * 1e-3, 1e-9))
        feats = self._features(history)
        ok = np.isfinite(feats).all(axis=1)
        n_ok = int(ok.sum())
        cut = int(np.flatnonzero(ok)[int(n_ok * (1 - self.holdout))]) if n_ok > 10 else x.size
        train = feats[:cut][ok[:cut]]
        self.forest_ = IsolationForest(n_estimators=self.n_estimators,
                                       max_samples=min(self.max_samples, max(len(train), 1)),
                                       random_state=self.random_state)
        if len(train) >= 20:
            self.forest_.fit(train)
        self.calib_start_ = cut

    def _calibration_part(self, raw: np.ndarray, index: pd.DatetimeIndex) -> np.ndarray:
        return raw[self.calib_start_:]            # only the held-out latest part of the history

    def _raw(self, s: pd.Series, start: int = 0):
        feats = self._features(s)
        ok = np.isfinite(feats).all(axis=1)
        ok[:start] = False                      # context rows are not scored
        raw = np.full(len(s), np.nan)
        if ok.any() and hasattr(self.forest_, "estimators_"):
            raw[ok] = -self.forest_.score_samples(feats[ok])
        nan = np.full(len(s), np.nan)
        return raw, nan, nan
