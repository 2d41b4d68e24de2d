"""The default detector: several causal detectors whose calibrated tail probabilities are combined
with Simes' rule, and the fixed default alert threshold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import erfc

from core.analysis.detect.base import DEFAULT_THRESHOLD, Detector, TailCalibrator, as_series, infer_step_s
from core.analysis.detect.registry import make_member
from core.errors import InsufficientDataError, ValidationError

#: Default members. ``iforest`` is registered but not a default member: calibrated on the few hundred
#: held-out training points it rarely gives tail probabilities much below 1e-3, so inside Simes' rule
#: it adds little (nested NAB standard / reward_low_FP, discord without smoothing: 66.7 / 50.1 with it,
#: 66.1 / 56.9 without) for
#: most of the CPU time.
#: ``drift_z`` (level against the previous week) and ``dist_change`` (histogram of the last two hours
#: against the week before) catch slow and shape changes the point detectors adapt to; ``mp_discord``
#: (the last two hours' shape against its nearest match in the three days before) catches new shapes
#: and rarely fires on a burst the series has shown before (nested leave-one-category-out NAB
#: standard score, plain Simes, 68.7 with it, its window chosen per fold among 30 min, 1 h and 2 h; 62.5 without;
#: README).
DEFAULT_MEMBERS = ("seasonal_z", "cusum", "ewma_residual", "drift_z", "dist_change", "mp_discord")
#: Default member weights for weighted Simes: the discord member counts double and the EWMA forecast
#: member half (the others 1). ``core.eval nab --loco`` chooses the weighting per fold among EWMA
#: {1, 0.5} x discord {1, 2} (with the discord window); every fold chose these (nested NAB
#: 69.4 / 59.0 / 75.5 against 68.7 / 57.1 / 75.0 for plain Simes; README).
DEFAULT_WEIGHTS: Mapping[str, float] = {"ewma_residual": 0.5, "mp_discord": 2.0}
MIN_SMOOTH_BASELINE = 200   # points the surprise-level baseline needs before it is used


def surprise_level(p: np.ndarray, short: int, baseline: int) -> np.ndarray:
    """Causal tail probability of the recent surprise level (see :class:`EnsembleDetector`).

    ``x = -log10 p`` (p clipped to [1e-12, 1]; NaN stays missing), ``m`` its mean over the last
    ``short`` points, ``mu, sd`` its mean and standard deviation over the ``baseline`` points before
    those; returns ``P(Z >= (m - mu) / sd)`` for a standard normal ``Z`` (NaN while the baseline holds
    fewer than :data:`MIN_SMOOTH_BASELINE` finite points).
    """
    x = pd.Series(-np.log10(np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0)))
    m = x.rolling(short, min_periods=1).mean()
    past = x.shift(short).rolling(baseline, min_periods=MIN_SMOOTH_BASELINE)
    z = ((m - past.mean()) / np.maximum(past.std(), 1e-3)).to_numpy()
    out = np.full(z.size, np.nan)
    ok = np.isfinite(z)
    out[ok] = 0.5 * erfc(z[ok] / np.sqrt(2.0))
    return out



MemberSpec = str | tuple[str, Mapping[str, Any]] | Detector


def member_from_spec(spec: MemberSpec) -> Detector:
    """A member detector from a registry name, a ``(name, parameters)`` pair (a new detector each
    call, so presets never share fitted state) or a detector instance (used as it is)."""
    if isinstance(spec, str):
        return make_member(spec)
    if isinstance(spec, tuple):
        name, params = spec
        return make_member(name, **dict(params))
    return spec


class EnsembleDetector(Detector):
    """Combine member detectors' tail probabilities with Simes' rule.

    With the ``m`` members that score a point sorted by tail probability ``p_(1) <= ... <= p_(m)``, the
    combined probability is ``p = min_i m p_(i) / i`` (capped at 1). Simes' combination is a valid
    tail probability when members are independent or positively dependent (as detectors looking at
    the same residuals are) and is never more than Bonferroni's ``m p_(1)``, so one member is enough
    to flag a point while agreement between members strengthens it. Score ``1 - p``. Members that
    cannot be fitted on too short a history are left out (``skipped_`` says which and why); if none
    can, :class:`InsufficientDataError`.

    With ``smooth_points > 0`` the combined probability also passes a *surprise-level* test (in the
    spirit of Numenta's anomaly likelihood), for bursty series whose rare points come in clusters:
    ``x = -log10 p`` is averaged over the last ``smooth_points`` points (the point included) and
    compared with the mean and standard deviation of ``x`` over the ``smooth_baseline`` points before
    that short window; the Gaussian tail probability of that z-score is ``p_level`` and the final
    probability is ``max(p, p_level)``: a point is flagged only if it is rare on its own *and* the
    recent level of surprise is unusual for this series. Causal (earlier points only); where the
    baseline holds fewer than ``MIN_SMOOTH_BASELINE`` points, ``p`` is used alone.

    Parameters
    ----------
    members : sequence of str, (str, dict) or Detector
        Registry names (see :data:`core.analysis.detect.DETECTORS`), ``(name, constructor
        parameters)`` pairs, or detector instances.
    smooth_points : int
        Short window of the surprise-level test, points (0 = off).
    smooth_baseline : int
        Baseline window of the surprise-level test, points.
    weights : mapping of member name to float, optional
        Weighted Simes (Benjamini & Hochberg's weighted form): each member's tail probability is
        divided by its weight before the combination, the weights of the members scoring a point
        rescaled to average 1 there, so the combination stays a valid tail probability. Unlisted
        members weigh 1; ``None``, ``{}`` or all-equal weights is plain Simes. Default
        :data:`DEFAULT_WEIGHTS`.
    name : str, optional
        Registry name of this configuration (shown in explanations).
    """

    name = "ensemble"

    def __init__(self, members: Sequence[MemberSpec] = DEFAULT_MEMBERS, smooth_points: int = 0,
                 smooth_baseline: int = 2016, weights: Mapping[str, float] | None = DEFAULT_WEIGHTS,
                 name: str | None = None) -> None:
        super().__init__()
        self.weights = dict(weights or {})
        if any(not (np.isfinite(w) and w > 0) for w in self.weights.values()):
            raise ValidationError(f"member weights must be positive, got {self.weights}", path="weights")
        self.members = tuple(members)
        self.smooth_points = int(smooth_points)
        self.smooth_baseline = int(smooth_baseline)
        if name:
            self.name = name

    def fit(self, history: pd.Series) -> EnsembleDetector:
        h = as_series(history, "history")
        self.history_ = h
        self.step_s_ = infer_step_s(h.index)
        fitted, skipped = [], {}
        for m in self.members:
            det = member_from_spec(m)
            try:
                det.fit(h)
            except InsufficientDataError as exc:
                skipped[det.name] = str(exc)
                continue
            det.history_ = h            # one shared history: members score with one joined context
            fitted.append(det)
        if not fitted:
            raise InsufficientDataError("no detector could be fitted: " + "; ".join(
                f"{k}: {v}" for k, v in skipped.items()))
        self.fitted_ = fitted
        self.skipped_ = skipped
        self.calibrator_ = True     # marks the ensemble as fitted
        return self

    def member_pvalues(self, series: pd.Series) -> pd.DataFrame:
        """Each fitted member's tail probability per point (columns named after the members)."""
        return self._member_outputs(as_series(series))[0]

    def _member_outputs(self, s: pd.Series) -> tuple[pd.DataFrame, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Members' tail probabilities and their ``(expected, scale)`` per point, each member's raw
        statistic computed once, on one history-plus-series context shared by all members."""
        self._check_fitted()
        full = k = None
        pv: dict[str, np.ndarray] = {}
        bands: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for d in self.fitted_:
            if not isinstance(d.calibrator_, TailCalibrator):      # e.g. a nested ensemble
                pv[d.name] = d.pvalue(s)
                continue
            if d.history_ is self.history_:
                if full is None:
                    full, k = self._with_context(s)
                raw, exp, scale = d._raw_after(full, k)
            else:                                                  # a member fitted elsewhere
                raw, exp, scale = d.raw(s)
            pv[d.name] = d.calibrator_.pvalue(raw)
            bands[d.name] = (exp, scale)
        return pd.DataFrame(pv, index=s.index), bands

    @staticmethod
    def combine(p: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Simes combination of a (points x members) array of tail probabilities (NaN = no score);
        with ``weights`` (one per column, positive) the weighted form: per point the weights of the
        scoring members are rescaled to average 1 and each probability is divided by its weight."""
        p = EnsembleDetector.weighted(p, weights)
        fin = np.isfinite(p)
        m = fin.sum(axis=1)
        srt = np.sort(np.where(fin, p, np.inf), axis=1)            # missing members sort last
        rank = np.arange(1, p.shape[1] + 1)[None, :]
        with np.errstate(invalid="ignore"):
            simes = np.where(np.isfinite(srt), m[:, None] * srt / rank, np.inf).min(axis=1)
        return np.where(m > 0, np.minimum(1.0, simes), np.nan)

    @staticmethod
    def weighted(p: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        """``p / w`` with the weights ``w`` of the members scoring each point rescaled to average 1
        there (NaN stays missing); ``p`` itself when ``weights`` is None."""
        p = np.asarray(p, dtype=np.float64)
        if weights is None:
            return p
        fin = np.isfinite(p)
        w = np.where(fin, np.asarray(weights, dtype=np.float64)[None, :], 0.0)
        total = w.sum(axis=1, keepdims=True)
        w = w * fin.sum(axis=1, keepdims=True) / np.where(total > 0, total, 1.0)
        return np.where(fin, p / np.where(w > 0, w, 1.0), np.nan)

    def _weight_vector(self, names: Sequence[str]) -> np.ndarray | None:
        """Member weights in column order (None when no weights are set)."""
        return np.array([self.weights.get(n, 1.0) for n in names]) if self.weights else None

    def _combined(self, pv: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """(Weighted) Simes' combination, then the surprise-level test when ``smooth_points > 0``."""
        p = self.combine(pv, self._weight_vector(names))
        if self.smooth_points <= 0:
            return p
        lvl = surprise_level(p, self.smooth_points, self.smooth_baseline)
        return np.where(np.isfinite(lvl), np.maximum(p, lvl), p)      # a missing point stays NaN

    def pvalue(self, series: pd.Series) -> np.ndarray:
        pv = self.member_pvalues(series)
        return self._combined(pv.to_numpy(), list(pv.columns))

    def raw(self, series: pd.Series):
        p = self.pvalue(series)
        nan = np.full(p.size, np.nan)
        return -np.log10(p), nan, nan

    def explain(self, series: pd.Series, threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
        """One row per flagged point: ``ts, value, score, detectors, expected, lower, upper, confidence``.

        ``detectors`` lists the members whose own tail probability (divided by its weight) is at most
        ``1 - threshold`` (with Simes' rule at least one member does, for every flagged point); ``expected``/``lower``/
        ``upper`` is the band of values the seasonal member would not flag at that level (the
        forecast member's band where it agrees and the seasonal member does not); ``confidence`` is
        ``1 - p`` for the combined tail probability ``p``. Each member's raw statistic is computed
        once and serves both its tail probability and its band.
        """
        if not 0.0 < threshold < 1.0:
            raise ValidationError(f"threshold must be in (0, 1), got {threshold}", path="threshold")
        s = as_series(series)
        pv, bands = self._member_outputs(s)
        p = self._combined(pv.to_numpy(), list(pv.columns))
        score = 1.0 - p
        hit = np.flatnonzero(score >= threshold)
        # weighted: a flagged point has a member with p / w <= 1 - threshold
        agree = self.weighted(pv.to_numpy(), self._weight_vector(list(pv.columns))) <= (1.0 - threshold)
        names = np.array(pv.columns)
        cols = list(pv.columns)
        by_name = {d.name: d for d in self.fitted_}
        # band: from the seasonal member, or from the forecast member where it agrees and the
        # seasonal member does not (and where the seasonal member has no band)
        nan = np.full(len(s), np.nan)
        exp, lo, hi = nan, nan, nan
        if "ewma_residual" in bands:
            own = agree[:, cols.index("ewma_residual")]
            other = agree[:, cols.index("seasonal_z")] if "seasonal_z" in cols else np.zeros_like(own)
            use = own & ~other
            e, lo_, hi_ = by_name["ewma_residual"].band_from(*bands["ewma_residual"], threshold)
            exp, lo, hi = np.where(use, e, nan), np.where(use, lo_, nan), np.where(use, hi_, nan)
        if "seasonal_z" in bands:
            use = ~np.isfinite(exp)
            e, lo_, hi_ = by_name["seasonal_z"].band_from(*bands["seasonal_z"], threshold)
            exp, lo, hi = np.where(use, e, exp), np.where(use, lo_, lo), np.where(use, hi_, hi)
        return pd.DataFrame({
            "ts": s.index[hit],
            "value": s.to_numpy()[hit],
            "score": score[hit],
            "detectors": [",".join(names[agree[i]]) for i in hit],
            "expected": exp[hit], "lower": lo[hit], "upper": hi[hit],
            "confidence": score[hit],
        })
