"""Baselines of one series: location, spread and percentiles with honest 95% confidence intervals.

Every function here is a pure function of a float Series indexed by UTC timestamps (NaN = missing,
never filled). Nothing is causal in this module: a baseline describes a stretch of history as a
whole. Causal, per-point expectations live in :func:`core.analysis.seasonality.seasonal_band`.

Confidence intervals and autocorrelation
----------------------------------------
Metric points are autocorrelated, so ``n`` points carry less information than ``n`` independent
draws. We use an **effective sample size** ``n_eff = n / tau`` where ``tau`` is the integrated
autocorrelation time estimated with Geyer's initial positive sequence (sum of consecutive pairs of
sample autocorrelations while the pair sums stay positive). Then

* mean: t-interval ``mean +/- t(n_eff - 1) * s / sqrt(n_eff)``;
* median and percentiles: order-statistic interval from ``scipy.stats.binom``. With ``n_eff == n``
  (no detectable autocorrelation) it is exact and distribution-free (coverage >= 95%); otherwise the
  binomial ranks are computed at ``n_eff`` and mapped to quantile levels ``rank / (n_eff + 1)`` of
  the raw points (approximate);
* std, MAD and IQR: a **moving-block bootstrap** (blocks of ``max(n^(1/3), tau)`` consecutive points
  keep the short-range dependence). For speed, resamples have ``m = min(n, max(4096, min(20 blocks,
  8192)))`` points and the bootstrap deviations are rescaled by ``sqrt(m / n)`` (m-out-of-n
  bootstrap for root-n statistics).
  Deviations are centred on the bootstrap median (removes the small-resample bias). The seed is
  fixed, so a baseline is reproducible. MAD is reported unscaled (multiply by 1.4826 for a normal std).

Percentiles are always computed from raw points (``numpy.quantile``, linear interpolation); they are
never averaged across windows or series. A histogram-quantile series (a p95 exported per scrape) is
never averaged either: its window aggregate is the median or the max of the raw points.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from core.errors import InsufficientDataError, ValidationError

WINDOWS: dict[str, str] = {"1m": "1min", "5m": "5min", "15m": "15min", "1h": "1h", "1d": "1D"}
PERCENTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)
MIN_SAMPLES = 30        # finite points needed for a whole-history baseline
MIN_WINDOW_SAMPLES = 10  # finite points needed for one window's row in window_stats
MAD_SCALE = 1.4826       # MAD * MAD_SCALE estimates the std of a normal distribution
AGGREGATIONS = ("median", "max", "min", "mean", "p95", "count")
OUTLIER_METHODS = ("iqr", "mad")
_NO_MEAN_KINDS = ("histogram_quantile",)


# --------------------------------------------------------------------------- helpers
def _as_series(values: pd.Series, name: str = "values") -> pd.Series:
    if not isinstance(values, pd.Series):
        raise ValidationError(f"expected a pandas Series indexed by timestamp, got {type(values).__name__}",
                              path=name)
    if not isinstance(values.index, pd.DatetimeIndex):
        raise ValidationError("the Series must be indexed by timestamps (DatetimeIndex)", path=name)
    idx = values.index if values.index.tz is not None else values.index.tz_localize("UTC")
    s = pd.Series(values.to_numpy(dtype=np.float64), index=idx.tz_convert("UTC"), name=values.name)
    if not s.index.is_monotonic_increasing:
        s = s.sort_index(kind="stable")
    return s


def _check_kind(kind: str) -> None:
    kinds = ("gauge", "counter", "rate", "histogram_quantile")
    if kind not in kinds:
        raise ValidationError(f"kind must be one of {kinds}, not {kind!r}", path="kind")


def autocorrelation(x: np.ndarray, max_lag: int | None = None) -> np.ndarray:
    """Sample autocorrelation ``rho[0..max_lag]`` of a 1-D array of finite values (FFT, biased).

    The array is taken in order; missing points must be removed by the caller (gaps are then
    compressed, an approximation documented where it is used).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n < 2:
        return np.ones(1)
    max_lag = n - 1 if max_lag is None else min(max_lag, n - 1)
    d = x - x.mean()
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(d, nfft)
    acov = np.fft.irfft(f * np.conj(f), nfft)[: max_lag + 1]
    if acov[0] <= 0:
        out = np.zeros(max_lag + 1)
        out[0] = 1.0
        return out
    return acov / acov[0]


def autocorrelation_time(x: np.ndarray) -> float:
    """Integrated autocorrelation time ``tau >= 1`` (Geyer's initial positive sequence).

    ``tau = -1 + 2 * sum_m (rho[2m] + rho[2m+1])`` over the initial run of positive pair sums.
    Independent data give ``tau`` close to 1; ``n / tau`` is the effective sample size.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n < 4:
        return 1.0
    rho = autocorrelation(x, min(n - 1, 2 * (n // 2) - 1))
    if rho.size % 2:
        rho = rho[:-1]
    pairs = rho[0::2] + rho[1::2]
    bad = np.flatnonzero(pairs <= 0)
    stop = bad[0] if bad.size else pairs.size
    tau = -1.0 + 2.0 * float(pairs[:stop].sum())
    return float(min(max(tau, 1.0), n))


def effective_sample_size(x: np.ndarray) -> float:
    """``n / tau``: how many independent points ``x`` is worth (see :func:`autocorrelation_time`)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return 0.0
    return float(x.size / autocorrelation_time(x))


def order_statistic_ranks(n: float, q: float = 0.5, confidence: float = 0.95) -> tuple[int, int, float]:
    """1-based ranks ``(j, k)`` with ``P(x_(j) <= Q_q <= x_(k)) >= confidence`` for ``n`` iid points.

    Also returns the exact coverage ``F(k-1) - F(j-1)`` (``F`` the Binomial(n, q) cdf). Ranks
    outside ``1..n`` mean the sample is too small for an interval at this confidence.
    """
    n = int(np.floor(n))
    alpha = 1.0 - confidence
    dist = stats.binom(n, q)
    j = int(dist.ppf(alpha / 2))
    if j >= 1 and dist.cdf(j - 1) > alpha / 2:   # keep the lower tail at most alpha/2
        j -= 1
    k = int(dist.ppf(1 - alpha / 2)) + 1
    j_eff, k_eff = max(j, 0), min(k, n + 1)
    cover = float(dist.cdf(k_eff - 1) - (dist.cdf(j_eff - 1) if j_eff >= 1 else 0.0))
    return j, k, cover


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval (``lower``/``upper`` NaN when none is honest).

    ``method`` names how the interval was obtained; ``sufficient`` is False (with ``reason``) when
    the data are too thin for the interval.
    """

    value: float
    lower: float
    upper: float
    method: str
    sufficient: bool = True
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _quantile_ci(x_sorted: np.ndarray, q: float, n_eff: float, confidence: float) -> Estimate:
    """Order-statistic CI for the ``q`` quantile of sorted finite points ``x_sorted``."""
    n = x_sorted.size
    value = float(np.quantile(x_sorted, q))
    exact = n_eff >= n - 0.5
    ne = n if exact else max(int(np.floor(n_eff)), 1)
    j, k, cover = order_statistic_ranks(ne, q, confidence)
    method = "order statistic (binomial, exact)" if exact else f"order statistic at n_eff={ne}"
    if j < 1 or k > ne:
        need = "more points" if exact else "more effectively independent points"
        return Estimate(value, np.nan, np.nan, method, False,
                        f"{ne} {'points' if exact else 'effective points'} are too few for a "
                        f"{confidence:.0%} interval on the {q:g} quantile; {need} needed")
    if exact:
        lo, hi = float(x_sorted[j - 1]), float(x_sorted[k - 1])
    else:
        lo = float(np.quantile(x_sorted, j / (ne + 1)))
        hi = float(np.quantile(x_sorted, k / (ne + 1)))
    return Estimate(value, lo, hi, method + f", coverage {cover:.3f}")


def _mean_ci(x: np.ndarray, n_eff: float, confidence: float) -> Estimate:
    n = x.size
    m = float(x.mean())
    ne = min(float(n_eff), float(n))
    if ne < 2 or n < 2:
        return Estimate(m, np.nan, np.nan, "t-interval", False, "fewer than 2 effective points")
    s = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, ne - 1)) * s / np.sqrt(ne)
    return Estimate(m, float(m - half), float(m + half), f"t-interval at n_eff={ne:.0f}")


def _spread_stats(xs: np.ndarray) -> np.ndarray:
    """Rows of resamples -> columns std, MAD, IQR."""
    q = np.quantile(xs, [0.25, 0.5, 0.75], axis=-1)
    mad = np.median(np.abs(xs - q[1][..., None]), axis=-1)
    sd = xs.std(axis=-1, ddof=1)
    return np.stack([sd, mad, q[2] - q[0]], axis=-1)


def block_bootstrap_spread(x: np.ndarray, *, block: int, confidence: float = 0.95, n_boot: int = 200,
                           max_resample: int = 4096, seed: int = 0) -> dict[str, Estimate]:
    """Moving-block bootstrap CIs for std, MAD (unscaled) and IQR of ordered finite points ``x``.

    Resamples are concatenations of random blocks of ``block`` consecutive points,
    ``m = min(n, max(max_resample, min(20 * block, 2 * max_resample)))`` points long. Deviations of
    the resample statistics from their bootstrap median (which removes the small-resample bias of
    MAD and IQR) are rescaled by ``sqrt(m / n)``; their ``(1 -/+ confidence) / 2`` quantiles added
    to the full-sample estimate give the interval.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    full = _spread_stats(x)
    block = int(min(max(block, 1), max(n // 2, 1)))
    m = int(min(n, max(max_resample, min(20 * block, 2 * max_resample))))
    rng = np.random.default_rng(seed)
    nb = int(np.ceil(m / block))
    starts = rng.integers(0, n - block + 1, size=(n_boot, nb))
    idx = (starts[:, :, None] + np.arange(block)).reshape(n_boot, -1)[:, :m]
    boot = _spread_stats(x[idx])
    dev = (boot - np.median(boot, axis=0)) * np.sqrt(m / n)
    alpha = 1.0 - confidence
    lo = full + np.quantile(dev, alpha / 2, axis=0)
    hi = full + np.quantile(dev, 1 - alpha / 2, axis=0)
    method = f"moving-block bootstrap (block {block}, {n_boot} resamples of {m})"
    names = ("std", "mad", "iqr")
    return {nm: Estimate(float(full[i]), float(max(lo[i], 0.0)), float(hi[i]), method)
            for i, nm in enumerate(names)}


# --------------------------------------------------------------------------- counters, exclusions
def counter_to_rate(values: pd.Series) -> pd.Series:
    """Per-second rate of a monotonically increasing counter, with resets handled.

    Between consecutive finite samples the rate is ``diff / dt`` (dt in seconds), stamped at the
    later sample. A negative diff is a counter reset: the new value itself is the increase since
    the reset (as Prometheus ``rate()`` does). The first finite sample and missing samples get NaN;
    a rate across a gap is the average over that gap (never filled point by point).

    Parameters
    ----------
    values : pandas.Series
        Counter values indexed by UTC timestamps.

    Returns
    -------
    pandas.Series
        Rate in units per second, same index.
    """
    s = _as_series(values)
    v = s.to_numpy()
    ok = np.flatnonzero(np.isfinite(v))
    out = np.full(v.size, np.nan)
    if ok.size >= 2:
        t = s.index.as_unit("ns").asi8[ok]
        vv = v[ok]
        d = np.diff(vv)
        d = np.where(d < 0, vv[1:], d)
        dt = np.diff(t) / 1e9
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(dt > 0, d / dt, np.nan)
        out[ok[1:]] = r
    return pd.Series(out, index=s.index, name=s.name)


def exclusion_mask(index: pd.DatetimeIndex, incidents: pd.DataFrame | None = None,
                   mask: np.ndarray | pd.Series | None = None, series: str | None = None) -> np.ndarray:
    """Boolean array, True where a point falls inside an incident ``[start, end]`` or ``mask`` is True.

    ``incidents`` needs columns ``start`` and ``end`` (UTC); if it has a ``series`` column and
    ``series`` is given, only rows for that key or with no key (global incidents) count. ``mask``
    (e.g. detected outages) must have the same length as ``index``.
    """
    idx = pd.DatetimeIndex(index)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    out = np.zeros(len(idx), dtype=bool)
    if mask is not None:
        mk = np.asarray(mask, dtype=bool)
        if mk.shape != out.shape:
            raise ValidationError(f"mask has {mk.size} entries; expected one per point ({out.size})", path="mask")
        out |= mk
    if incidents is not None and len(incidents):
        missing = [c for c in ("start", "end") if c not in incidents.columns]
        if missing:
            raise ValidationError(f"incidents frame lacks column(s) {missing}; expected start, end",
                                  path="incidents")
        inc = incidents
        if series is not None and "series" in inc.columns:
            inc = inc[inc["series"].isna() | (inc["series"] == series)]
        t = idx.as_unit("ns").asi8
        order = np.argsort(t, kind="stable")
        ts = t[order]
        st = pd.DatetimeIndex(pd.to_datetime(inc["start"], utc=True)).as_unit("ns").asi8
        en = pd.DatetimeIndex(pd.to_datetime(inc["end"], utc=True)).as_unit("ns").asi8
        a = np.searchsorted(ts, st, side="left")
        b = np.searchsorted(ts, en, side="right")
        cover = np.zeros(ts.size + 1, dtype=np.int64)
        np.add.at(cover, a, 1)
        np.add.at(cover, b, -1)
        inside = np.cumsum(cover[:-1]) > 0
        out[order] |= inside
    return out


def outlier_flags(values: pd.Series, method: str = "iqr", k: float | None = None) -> pd.Series:
    """Flag points far from the bulk of the series (descriptive, not causal; NaN is never flagged).

    ``iqr``: outside ``[Q1 - k*IQR, Q3 + k*IQR]`` (default ``k=1.5``, Tukey's fences).
    ``mad``: modified z-score ``|x - median| / (1.4826 * MAD) > k`` (default ``k=3.5``,
    Iglewicz-Hoaglin). When MAD is 0 the mean absolute deviation * 1.2533 is used instead; when
    that is 0 too, every value differing from the median is flagged.
    """
    if method not in OUTLIER_METHODS:
        raise ValidationError(f"method must be one of {OUTLIER_METHODS}, not {method!r}", path="method")
    s = values
    v = s.to_numpy(dtype=np.float64)
    fin = np.isfinite(v)
    out = np.zeros(v.size, dtype=bool)
    if fin.sum() >= 3:
        x = v[fin]
        if method == "iqr":
            k = 1.5 if k is None else k
            q1, q3 = np.quantile(x, [0.25, 0.75])
            out[fin] = (x < q1 - k * (q3 - q1)) | (x > q3 + k * (q3 - q1))
        else:
            k = 3.5 if k is None else k
            med = np.median(x)
            dev = np.abs(x - med)
            scale = MAD_SCALE * np.median(dev)
            if scale == 0:
                scale = 1.2533 * dev.mean()
            out[fin] = dev > 0 if scale == 0 else dev / scale > k
    return pd.Series(out, index=s.index, name="outlier")



# --------------------------------------------------------------------------- whole-history baseline
@dataclass
class Baseline:
    """Whole-history baseline of one series. Values are in the series' unit (per second for counters).

    When ``sufficient`` is False, ``reason`` says why and no number is given (estimates are None).
    """

    n: int
    n_excluded: int
    n_missing: int
    sufficient: bool
    reason: str = ""
    kind: str = "gauge"
    n_eff: float = float("nan")
    tau: float = float("nan")
    median: Estimate | None = None
    mean: Estimate | None = None
    std: Estimate | None = None
    mad: Estimate | None = None
    iqr: Estimate | None = None
    percentiles: dict[float, Estimate] = field(default_factory=dict)
    n_outliers_iqr: int = 0
    n_outliers_mad: int = 0
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["percentiles"] = {f"p{100 * q:g}": e.to_dict() for q, e in self.percentiles.items()}
        return d


def compute_baseline(values: pd.Series, kind: str = "gauge", *, incidents: pd.DataFrame | None = None,
                     mask: np.ndarray | pd.Series | None = None, exclude: bool = True,
                     series: str | None = None, confidence: float = 0.95, min_samples: int = MIN_SAMPLES,
                     percentiles: tuple[float, ...] = PERCENTILES, n_boot: int = 200,
                     seed: int = 0) -> Baseline:
    """Location, spread and percentiles of a series with confidence intervals (see module docs).

    Parameters
    ----------
    values : pandas.Series
        Values indexed by UTC timestamps. For ``kind="counter"`` pass raw counter values: they are
        turned into per-second rates with :func:`counter_to_rate` first.
    kind : str
        ``gauge``, ``counter``, ``rate`` or ``histogram_quantile``. A histogram-quantile series gets
        no mean (averaging a p95 series is meaningless); its median and percentiles come from raw
        points.
    incidents, mask, exclude
        With ``exclude`` (default) points inside incident windows ``[start, end]`` or where ``mask``
        is True (e.g. detected outages) are left out of the baseline.
    series : str, optional
        Series key, used to pick this series' incidents when ``incidents`` has a ``series`` column.
    confidence : float
        Confidence level of every interval (0.95).
    min_samples : int
        Fewer finite points than this after exclusions give ``sufficient=False`` and no numbers.

    Returns
    -------
    Baseline
    """
    _check_kind(kind)
    s = _as_series(values)
    if kind == "counter":
        s = counter_to_rate(s)
    excl = exclusion_mask(s.index, incidents, mask, series) if exclude else np.zeros(len(s), dtype=bool)
    v = s.to_numpy()
    fin = np.isfinite(v)
    x = v[fin & ~excl]
    n_missing = int((~fin).sum())
    n_excl = int((excl & fin).sum())
    base = Baseline(n=int(x.size), n_excluded=n_excl, n_missing=n_missing, sufficient=False, kind=kind,
                    confidence=confidence)
    if x.size < min_samples:
        base.reason = (f"only {x.size} usable points (after {n_excl} excluded and {n_missing} missing); "
                       f"at least {min_samples} are needed for a baseline")
        return base
    tau = autocorrelation_time(x)
    n_eff = x.size / tau
    base.tau, base.n_eff = tau, n_eff
    xs = np.sort(x)
    base.sufficient = True
    base.median = _quantile_ci(xs, 0.5, n_eff, confidence)
    if kind not in _NO_MEAN_KINDS:
        base.mean = _mean_ci(x, n_eff, confidence)
    spread = block_bootstrap_spread(x, block=max(int(np.ceil(x.size ** (1 / 3))), int(np.ceil(tau))),
                                    confidence=confidence, n_boot=n_boot, seed=seed)
    base.std, base.mad, base.iqr = spread["std"], spread["mad"], spread["iqr"]
    base.percentiles = {float(q): _quantile_ci(xs, float(q), n_eff, confidence) for q in percentiles}
    xser = pd.Series(x)
    base.n_outliers_iqr = int(outlier_flags(xser, "iqr").sum())
    base.n_outliers_mad = int(outlier_flags(xser, "mad").sum())
    return base


def require_sufficient(b: Baseline) -> Baseline:
    """Return ``b`` or raise :class:`InsufficientDataError` with its reason (for callers that need numbers)."""
    if not b.sufficient:
        raise InsufficientDataError(b.reason)
    return b


# --------------------------------------------------------------------------- per-window statistics
def _window_freq(window: str) -> str:
    if window in WINDOWS:
        return WINDOWS[window]
    try:
        pd.Timedelta(window)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"unknown window {window!r}; expected one of {list(WINDOWS)} or a pandas "
                              "offset such as '10min'", path="window") from exc
    return window


def aggregate(values: pd.Series, freq: str = "1h", how: str = "median", kind: str = "gauge") -> pd.Series:
    """One value per time bucket of ``freq`` from the raw points in it; empty buckets stay NaN.

    ``how`` is ``median`` (default), ``max``, ``min``, ``mean``, ``p95`` (95th percentile of the
    raw points) or ``count``. ``mean`` is refused for a histogram-quantile series: use ``median`` or
    ``max`` (the worst quantile seen in the bucket). Not causal across the bucket: a bucket's value
    uses all of its points.
    """
    _check_kind(kind)
    if how not in AGGREGATIONS:
        raise ValidationError(f"how must be one of {AGGREGATIONS}, not {how!r}", path="how")
    if how == "mean" and kind in _NO_MEAN_KINDS:
        raise ValidationError("a histogram-quantile series must not be averaged; aggregate with "
                              "'median' or 'max'", path="how")
    s = _as_series(values)
    s = s[np.isfinite(s.to_numpy())]
    r = s.resample(_window_freq(freq))
    if how == "p95":
        return r.quantile(0.95)
    return getattr(r, how)()


def _grouped_quantile(vs: np.ndarray, start: np.ndarray, cnt: np.ndarray, q: np.ndarray | float) -> np.ndarray:
    """Linear-interpolated quantile (numpy's default) per group of values sorted within groups."""
    h = (cnt - 1) * np.asarray(q, dtype=np.float64)
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, cnt - 1)
    a, b = vs[start + lo], vs[start + hi]
    return a + (h - lo) * (b - a)


def window_stats(values: pd.Series, window: str = "5m", kind: str = "gauge", *,
                 min_samples: int = MIN_WINDOW_SAMPLES, confidence: float = 0.95,
                 percentiles: tuple[float, ...] = PERCENTILES) -> pd.DataFrame:
    """Statistics of the raw points in each time window (1m, 5m, 15m, 1h, 1d or a pandas offset).

    One row per non-empty window: ``start``, ``n``, ``sufficient``, ``median`` with
    ``median_lo``/``median_hi`` (order-statistic CI), ``mean`` with ``mean_lo``/``mean_hi``
    (t-interval; absent for histogram-quantile series), ``std``, ``mad``, ``iqr``, ``min``, ``max``
    and ``p50``, ``p90``, ... from raw points. Autocorrelation inside windows is handled with an AR(1)
    effective sample size ``n * (1 - r) / (1 + r)``, ``r`` the lag-1 autocorrelation of deviations
    from window means pooled over windows. Windows with fewer than ``min_samples`` finite points get
    ``sufficient=False`` and NaN statistics (except ``n``). Vectorised (two sorts), not causal.
    """
    _check_kind(kind)
    s = _as_series(values)
    if kind == "counter":
        s = counter_to_rate(s)
    v = s.to_numpy()
    fin = np.isfinite(v)
    v = v[fin]
    freq = pd.Timedelta(_window_freq(window)).value
    t = s.index.as_unit("ns").asi8[fin]
    b = np.floor_divide(t, freq)
    cols = ["start", "n", "sufficient", "median", "median_lo", "median_hi", "mean", "mean_lo", "mean_hi",
            "std", "mad", "iqr", "min", "max"] + [f"p{100 * q:g}" for q in percentiles]
    if kind in _NO_MEAN_KINDS:
        cols = [c for c in cols if not c.startswith("mean")]
    if v.size == 0:
        return pd.DataFrame({c: [] for c in cols})
    # lag-1 autocorrelation pooled within windows (time order)
    ub, first, cnt = np.unique(b, return_index=True, return_counts=True)
    gid = np.repeat(np.arange(ub.size), cnt)  # b is time-sorted, so windows are contiguous
    ref = v[first]                      # shift by each window's first value: sums stay small
    means = ref + np.add.reduceat(v - ref[gid], first) / cnt
    dev = v - means[gid]
    same = gid[1:] == gid[:-1]
    den = float(np.sum(dev ** 2))
    r = float(np.sum(dev[1:][same] * dev[:-1][same]) / den) if den > 0 and same.any() else 0.0
    r = min(max(r, 0.0), 0.99)
    factor = (1 - r) / (1 + r)
    # sort values within windows
    order = np.lexsort((v, gid))
    vs = v[order]
    start = first
    out: dict[str, Any] = {"start": pd.to_datetime(ub * freq, utc=True), "n": cnt}
    ok = cnt >= max(min_samples, 2)
    out["sufficient"] = ok
    med = _grouped_quantile(vs, start, cnt, 0.5)
    out["median"] = med
    # order-statistic CI for the median at n_eff per window
    ne = np.maximum(np.floor(cnt * factor), 1.0)
    alpha = 1 - confidence
    j = stats.binom.ppf(alpha / 2, ne, 0.5)
    k = stats.binom.ppf(1 - alpha / 2, ne, 0.5) + 1
    attainable = (j >= 1) & (k <= ne)
    exact = factor >= 1.0
    if exact:
        jj = np.clip(j, 1, cnt).astype(np.int64) - 1
        kk = np.clip(k, 1, cnt).astype(np.int64) - 1
        lo_v, hi_v = vs[start + jj], vs[start + kk]
    else:
        lo_v = _grouped_quantile(vs, start, cnt, np.clip(j / (ne + 1), 0, 1))
        hi_v = _grouped_quantile(vs, start, cnt, np.clip(k / (ne + 1), 0, 1))
    out["median_lo"] = np.where(attainable, lo_v, np.nan)
    out["median_hi"] = np.where(attainable, hi_v, np.nan)
    # variance from deviations (corrected two-pass): sum(x^2) - n*mean^2 cancels catastrophically
    # for large values (3e9 + N(0, 1): hourly std 47 or 0 instead of 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ss = np.add.reduceat(dev * dev, first) - np.add.reduceat(dev, first) ** 2 / cnt
        sd = np.sqrt(np.maximum(ss, 0.0) / (cnt - 1))
    if kind not in _NO_MEAN_KINDS:
        with np.errstate(invalid="ignore", divide="ignore"):
            ne_m = cnt * factor
            half = stats.t.ppf(0.5 + confidence / 2, np.maximum(ne_m - 1, 1)) * sd / np.sqrt(ne_m)
        out["mean"] = means
        out["mean_lo"] = np.where(ne_m >= 2, means - half, np.nan)
        out["mean_hi"] = np.where(ne_m >= 2, means + half, np.nan)
    out["std"] = sd
    adev = np.abs(v - med[gid])
    adev_s = adev[np.lexsort((adev, gid))]
    out["mad"] = _grouped_quantile(adev_s, start, cnt, 0.5)
    out["iqr"] = _grouped_quantile(vs, start, cnt, 0.75) - _grouped_quantile(vs, start, cnt, 0.25)
    out["min"] = vs[start]
    out["max"] = vs[start + cnt - 1]
    for q in percentiles:
        out[f"p{100 * q:g}"] = _grouped_quantile(vs, start, cnt, q)
    df = pd.DataFrame(out)[cols]
    stat_cols = [c for c in cols if c not in ("start", "n", "sufficient")]
    df.loc[~ok, stat_cols] = np.nan
    return df.reset_index(drop=True)
