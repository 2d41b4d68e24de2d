"""Shared machinery of the causal detectors: the estimator interface and tail calibration.

Every detector computes a *raw* statistic per point (larger = more unusual) from that point and the
points before it only, then turns it into a calibrated score ``1 - p`` where ``p`` is the tail
probability of the raw value under the distribution the detector saw on its training (``fit``)
history. So a score of 0.999 means "rarer than 99.9% of what this detector saw while fitting", the
same meaning for every detector, and no contamination rate is ever assumed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import InsufficientDataError, ValidationError

MIN_CALIBRATION = 50      # finite raw values needed on the training history to calibrate a detector
#: Default alert threshold on the ensemble score (``score >= threshold`` fires), i.e. a combined tail
#: probability of at most 2e-3. Chosen once on /work/shared/nab (``python -m core.eval nab --sweep``)
#: and fixed; ``--loco`` shows that choosing it on any five of the six labelled categories picks the
#: same value (pooled held-out standard score 70.0 with the six default members; 0.995 and 0.999 score
#: 64.1 and 59.7).
DEFAULT_THRESHOLD = 0.998

MIN_EXCEEDANCES = 20      # training values above the tail threshold u, at least (lower u if needed)


# ---------------------------------------------------------------------------- input handling
def as_series(series: pd.Series, what: str = "series") -> pd.Series:
    """Validate a detector input: float values on a sorted, tz-aware UTC DatetimeIndex."""
    if not isinstance(series, pd.Series):
        raise ValidationError(f"expected a pandas Series indexed by time, got {type(series).__name__}",
                              path=what)
    idx = series.index
    if not isinstance(idx, pd.DatetimeIndex):
        raise ValidationError("the index must be a DatetimeIndex of UTC timestamps", path=what)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    else:
        idx = idx.tz_convert("UTC")
    out = pd.Series(pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64), index=idx)
    out[~np.isfinite(out.to_numpy())] = np.nan
    if not idx.is_monotonic_increasing:
        raise ValidationError("timestamps must be sorted ascending", path=what)
    return out


def infer_step_s(index: pd.DatetimeIndex) -> float:
    """Typical sampling step in seconds: the median gap between consecutive timestamps."""
    if len(index) < 2:
        return float("nan")
    d = np.diff(index.as_unit("ns").asi8) / 1e9
    d = d[d > 0]
    return float(np.median(d)) if d.size else float("nan")


def resolution(x: np.ndarray) -> float:
    """Smallest gap between distinct finite values (the measurement resolution of quantised data)."""
    v = np.unique(x[np.isfinite(x)])
    return float(np.diff(v).min()) if v.size > 1 else 0.0


def step_or_default(step_s: float) -> float:
    return step_s if np.isfinite(step_s) and step_s > 0 else 60.0


def robust_scale(abs_dev: np.ndarray, window: int, floor: float) -> np.ndarray:
    """Causal robust spread: ``1.4826 *`` median of the previous ``window`` absolute deviations, at
    least ``floor`` (half the data's resolution, so quantised data does not get a zero spread)."""
    mad = lagged_rolling_median(abs_dev, window, max(10, window // 4))
    return np.maximum(1.4826 * mad, floor + 1e-12)


# ---------------------------------------------------------------------------- causal rolling helpers
_MEDIAN_CACHE: OrderedDict[tuple, object] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def _cache_get(key: tuple) -> object | None:
    with _CACHE_LOCK:
        hit = _MEDIAN_CACHE.get(key)
        if hit is not None:
            _MEDIAN_CACHE.move_to_end(key)
        return hit


def _cache_put(key: tuple, value: object) -> None:
    with _CACHE_LOCK:
        _MEDIAN_CACHE[key] = value
        while len(_MEDIAN_CACHE) > 16:
            _MEDIAN_CACHE.popitem(last=False)


def lagged_rolling_median(x: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    """Median of the ``window`` points *before* each point (the point itself excluded); causal.

    NaN points are skipped; NaN where fewer than ``min_periods`` finite earlier points exist.
    Results are memoised on the input's bytes (several detectors of an ensemble share the same
    baselines); callers must not modify the returned array.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    key = (hashlib.blake2b(x.tobytes(), digest_size=16).digest(), x.size, int(window), int(min_periods))
    hit = _cache_get(key)
    if hit is not None:
        return hit
    out = pd.Series(x).shift(1).rolling(window, min_periods=min_periods).median().to_numpy()
    out.flags.writeable = False
    _cache_put(key, out)
    return out


def grouped_lagged_median(x: np.ndarray, groups: np.ndarray, window: int,
                          min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-group :func:`lagged_rolling_median`: for each point, the median of the previous ``window``
    points *of the same group* (e.g. the same hour of the week), and how many finite ones there were.

    Vectorised: points are stably sorted by group (time order kept inside a group) and each group is
    preceded by ``window`` NaN pads, so one rolling pass never mixes groups.
    """
    n = x.size
    if n == 0:
        return np.empty(0), np.empty(0)
    x = np.ascontiguousarray(x, dtype=np.float64)
    groups = np.ascontiguousarray(groups, dtype=np.int64)
    key = ("grouped", hashlib.blake2b(x.tobytes() + groups.tobytes(), digest_size=16).digest(), n,
           int(window), int(min_periods))
    hit = _cache_get(key)
    if hit is not None:
        return hit
    order = np.argsort(groups, kind="stable")
    g_sorted = groups[order]
    starts = np.r_[True, g_sorted[1:] != g_sorted[:-1]]
    gid = np.cumsum(starts) - 1                          # 0..G-1 in sorted order
    pos = np.arange(n) + window * (gid + 1)              # position in the padded array
    padded = np.full(n + window * (gid[-1] + 1), np.nan)
    padded[pos] = x[order]
    s = pd.Series(padded).shift(1)
    roll = s.rolling(window, min_periods=1)
    med = roll.median().to_numpy()[pos]
    cnt = roll.count().to_numpy()[pos]
    med[cnt < min_periods] = np.nan
    out_med = np.empty(n)
    out_cnt = np.empty(n)
    out_med[order] = med
    out_cnt[order] = cnt
    out_med.flags.writeable = False
    out_cnt.flags.writeable = False
    _cache_put(key, (out_med, out_cnt))
    return out_med, out_cnt


# ---------------------------------------------------------------------------- tail calibration
@dataclass
class TailCalibrator:
    """Tail probability of a raw statistic: empirical body, exponential tail updated online.

    Body: ``p(r) = (1 + #{train >= r}) / (n + 1)`` from the training raw values, up to their
    ``tail_q`` quantile ``u``. Tail (``r > u``): peaks-over-threshold with an exponential excess
    distribution, ``p(r) = P(R > u) * exp(-(r - u) / beta)``. In :meth:`pvalue` with ``online=True``
    (the default for scoring) ``P(R > u)`` and ``beta`` (mean excess over ``u``) are re-estimated at
    every point from the training values *plus all earlier scored points*, so the calibration keeps
    up with a series whose volatility changes, while each point is still judged only by earlier ones.
    """

    tail_q: float = 0.97
    sorted_: np.ndarray | None = None
    u: float = float("nan")
    beta: float = float("nan")
    n_: int = 0
    n_exc_: int = 0
    sum_exc_: float = 0.0
    beta_floor_: float = 0.0

    def fit(self, raw: np.ndarray) -> TailCalibrator:
        r = np.sort(np.asarray(raw, dtype=np.float64)[np.isfinite(raw)])
        if r.size < MIN_CALIBRATION:
            raise InsufficientDataError(
                f"only {r.size} scorable points in the training history; need at least {MIN_CALIBRATION} "
                "to calibrate anomaly scores")
        self.sorted_ = r
        q = min(self.tail_q, 1.0 - MIN_EXCEEDANCES / r.size)     # keep enough exceedances to fit the tail
        self.u = float(np.quantile(r, q))
        exc = r[r > self.u] - self.u
        spread = float(np.quantile(r, 0.75) - np.quantile(r, 0.25))
        self.beta_floor_ = max(spread, abs(self.u), 1e-12) * 1e-3   # a degenerate tail still has a scale
        self.n_, self.n_exc_, self.sum_exc_ = int(r.size), int(exc.size), float(exc.sum())
        self.beta = max(self.sum_exc_ / max(self.n_exc_, 1), self.beta_floor_)
        return self

    def _empirical(self, r: np.ndarray) -> np.ndarray:
        n = self.sorted_.size
        ge = n - np.searchsorted(self.sorted_, r, side="left")
        return (1.0 + ge) / (n + 1.0)

    def pvalue(self, raw: np.ndarray, online: bool = True) -> np.ndarray:
        """Tail probability of each raw value (NaN stays NaN); see the class notes for ``online``."""
        raw = np.asarray(raw, dtype=np.float64)
        ok = np.isfinite(raw)
        p = np.full(raw.shape, np.nan)
        p[ok] = self._empirical(raw[ok])
        n = np.full(raw.shape, float(self.n_))
        n_exc = np.full(raw.shape, float(self.n_exc_))
        sum_exc = np.full(raw.shape, self.sum_exc_)
        if online and raw.size:
            exc = np.where(ok & (raw > self.u), raw - self.u, 0.0)
            n += np.r_[0.0, np.cumsum(ok)[:-1]]                       # earlier points only
            n_exc += np.r_[0.0, np.cumsum(exc > 0)[:-1]]
            sum_exc += np.r_[0.0, np.cumsum(exc)[:-1]]
        beta = np.maximum(sum_exc / np.maximum(n_exc, 1.0), self.beta_floor_)
        above = ok & (raw > self.u)
        p_u = (1.0 + n_exc) / (n + 1.0)
        p[above] = p_u[above] * np.exp(-(raw[above] - self.u) / beta[above])
        return p

    def raw_at(self, p: float) -> float:
        """Raw value whose (training) tail probability is ``p``: inverse of :meth:`pvalue` offline."""
        p_u = (1.0 + self.n_exc_) / (self.n_ + 1.0)
        if p < p_u:
            return self.u + self.beta * float(np.log(p_u / p))
        n = self.sorted_.size
        k = int(np.clip(np.ceil(p * (n + 1) - 1), 0, n))        # values >= r needed
        return float(self.sorted_[n - k]) if k > 0 else float(self.sorted_[-1])


# ---------------------------------------------------------------------------- detector base class
class Detector:
    """Base class of the causal detectors (scikit-learn-like: ``fit`` then ``score``).

    Subclasses implement :meth:`_raw` (a causal raw statistic, larger = more unusual, plus the expected
    value and scale used for explanations) and may override :meth:`_fit_model`.
    """

    name = "base"

    def __init__(self) -> None:
        self.history_: pd.Series | None = None
        self.step_s_: float = float("nan")
        self.resolution_: float = 0.0
        self.calibrator_: TailCalibrator | None = None

    # -- subclass hooks
    def _fit_model(self, history: pd.Series) -> None:
        """Learn model parameters from the history (default: nothing beyond calibration)."""

    def _raw(self, s: pd.Series, start: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(raw, expected, scale)`` for every point of ``s``; each point uses only earlier points.
        Points before ``start`` are context only: an implementation may leave their raw value NaN."""
        raise NotImplementedError

    # -- public API
    def fit(self, history: pd.Series) -> Detector:
        """Learn from a training history (a Series of values on a UTC DatetimeIndex) and calibrate.

        Raises :class:`InsufficientDataError` when the history is too short to calibrate honestly.
        """
        h = as_series(history, "history")
        self.history_ = h
        self.step_s_ = infer_step_s(h.index)
        self.resolution_ = resolution(h.to_numpy())
        self._fit_model(h)
        raw, _, _ = self._raw(h)
        self.calibrator_ = TailCalibrator().fit(self._calibration_part(raw, h.index))
        return self

    #: seconds at the start of a history during which the detector's baseline is still warming up
    #: (e.g. a seasonal profile needs two days); left out of calibration when enough remains after it.
    warmup_s: float = 0.0

    def _calibration_part(self, raw: np.ndarray, index: pd.DatetimeIndex) -> np.ndarray:
        """Raw history values used for calibration: those after the warm-up when at least
        ``2 * MIN_CALIBRATION`` scorable ones remain, else all (a learned model keeps a holdout)."""
        if self.warmup_s > 0 and len(index):
            late = (index >= index[0] + pd.Timedelta(seconds=self.warmup_s)) & np.isfinite(raw)
            if late.sum() >= 2 * MIN_CALIBRATION:
                return raw[late]
        return raw

    def _check_fitted(self) -> None:
        if self.calibrator_ is None:
            raise ValidationError(f"detector {self.name!r} is not fitted; call fit(history) first",
                                  path="detector")

    def _with_context(self, series: pd.Series) -> tuple[pd.Series, int]:
        """The fitted history before the series' first point, joined to the series."""
        s = as_series(series)
        h = self.history_
        if len(s):
            h = h[h.index < s.index[0]]
        return pd.concat([h, s]), len(h)

    def raw(self, series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Causal ``(raw, expected, scale)`` for the points of ``series``, using the fitted history
        before it as context."""
        self._check_fitted()
        full, k = self._with_context(series)
        return self._raw_after(full, k)

    def _raw_after(self, full: pd.Series, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(raw, expected, scale)`` of the points of ``full`` from position ``k`` on, the first ``k``
        serving as context (raw NaN where the value is missing)."""
        raw, exp, scale = self._raw(full, start=k)
        vals = full.to_numpy()[k:]
        raw = raw[k:].copy()
        raw[np.isnan(vals)] = np.nan
        return raw, exp[k:], scale[k:]

    def pvalue(self, series: pd.Series) -> np.ndarray:
        """Calibrated tail probability per point (NaN where missing or not enough history)."""
        raw, _, _ = self.raw(series)
        return self.calibrator_.pvalue(raw)

    def score(self, series: pd.Series) -> np.ndarray:
        """Anomaly score in [0, 1] per point: ``1 - p`` (NaN where the value is missing or there is not
        yet enough history). Causal: appending later points never changes earlier scores."""
        return 1.0 - self.pvalue(series)

    def band(self, series: pd.Series, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(expected, lower, upper)``: the range of values this detector would not flag at
        ``threshold`` (NaN where the detector has no notion of an expected value)."""
        _, exp, scale = self.raw(series)
        return self.band_from(exp, scale, threshold)

    def band_from(self, expected: np.ndarray, scale: np.ndarray,
                  threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`band` from an ``expected, scale`` pair :meth:`raw` already gave (no recomputation)."""
        r = self.calibrator_.raw_at(max(1.0 - threshold, 1e-300))
        return expected, expected - r * scale, expected + r * scale

    def explain(self, series: pd.Series, threshold: float | None = None) -> pd.DataFrame:
        """One row per flagged point (``score >= threshold``; default the package default):
        ``ts, value, score, detectors, expected, lower, upper, confidence`` where ``expected`` and
        ``lower``/``upper`` bound the values this detector would not flag (NaN if it has no notion
        of an expected value) and ``confidence = 1 - p`` for the point's tail probability ``p``."""
        if threshold is None:
            threshold = DEFAULT_THRESHOLD
        if not 0.0 < threshold < 1.0:
            raise ValidationError(f"threshold must be in (0, 1), got {threshold}", path="threshold")
        s = as_series(series)
        score = self.score(s)
        with np.errstate(invalid="ignore"):
            hit = np.flatnonzero(score >= threshold)
        exp, lo, hi = self.band(s, threshold)
        return pd.DataFrame({
            "ts": s.index[hit], "value": s.to_numpy()[hit], "score": score[hit],
            "detectors": [self.name] * hit.size,
            "expected": exp[hit], "lower": lo[hit], "upper": hi[hit], "confidence": score[hit],
        })

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({params})"
