"""Daily and weekly seasonality: strength, profile, decomposition and a causal seasonal band.

* :func:`decompose` runs statsmodels ``MSTL`` on **hourly medians** of the raw points (never on the
  full resolution: too slow, and minute-level noise is not seasonality), with loess "jumps"
  (``STL_SPEED``) for speed. MSTL needs a complete
  grid, so missing hours are linearly interpolated *for the decomposition only*; their count is
  reported, their residuals are set back to NaN, and more than ``max_missing`` (10%) missing hours
  makes the result insufficient instead of inventing a shape.
* Strength of each seasonal component ``S`` (Wang, Smith & Hyndman 2006; Hyndman's *fpp3*):
  ``F_s = max(0, 1 - Var(R) / Var(S + R))`` with ``R`` the remainder, on observed hours only.
  Close to 1: strongly seasonal; close to 0: no seasonality. In-sample, ``S`` soaks up part of the
  noise (a slot's seasonal value is an average of only a few cycles), so pure noise scores about
  0.3 for daily and 0.5 for weekly on 30 days. The headline strength is therefore **cross-fitted**:
  ``S`` for each cycle is the slot mean of the *other* half of the cycles (even vs odd), applied to
  ``Z = observed - trend - other seasonal components``: ``F = max(0, 1 - Var(Z - S') / Var(Z))``.
  Noise then scores about 0 and a real pattern keeps its strength (slightly deflated). Both values
  are reported (``*_strength`` cross-fitted, ``*_strength_insample`` Hyndman's as is).
* :func:`profile`: median of the raw points per (day of week, hour of day), UTC.
* :func:`seasonal_band`: for every point, the expected value and a band from the raw points in the
  same hour-of-week (or hour-of-day) slot of strictly earlier cycles only. It is **causal**:
  appending later points never changes an earlier band value. The band is a distribution-free
  order-statistic prediction interval, withheld (NaN) when the pool is too small to honour its
  coverage (fewer than 39 points for 95%).

None of these fills missing data into results. Decomposition and strength are not causal (they
describe the whole history); only :func:`seasonal_band` is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.analysis.baseline import _as_series, aggregate
from core.errors import InsufficientDataError, ValidationError

HOUR_NS = 3_600_000_000_000
# Monday 1970-01-05 00:00 UTC: weeks and days are counted from here so a "week" starts on Monday.
_ORIGIN_NS = 4 * 24 * HOUR_NS
PERIODS = {"day": 24, "week": 168}          # in hours
MIN_CYCLES_FOR_PERIOD = {24: 3, 168: 2}     # full cycles of hourly data needed to fit a period
# Loess evaluated every few points and interpolated in between (as R's stl does by default):
# 3x faster on 30 days of hourly data; the seasonal components move by < 0.05 on a 40-amplitude cycle.
STL_SPEED = {"trend_jump": 6, "low_pass_jump": 2, "seasonal_jump": 1}


@dataclass
class Decomposition:
    """MSTL decomposition of hourly medians. Series share the hourly index; ``observed`` and
    ``resid`` are NaN at hours that had no data (``imputed`` marks them)."""

    sufficient: bool
    reason: str = ""
    periods: tuple[int, ...] = ()
    observed: pd.Series | None = None
    trend: pd.Series | None = None
    seasonal: pd.DataFrame | None = None     # one column per period: "daily", "weekly"
    resid: pd.Series | None = None
    imputed: pd.Series | None = None
    n_imputed: int = 0

    def seasonal_total(self) -> pd.Series | None:
        return None if self.seasonal is None else self.seasonal.sum(axis=1)


@dataclass
class Seasonality:
    """Seasonality of one series. Strengths are in [0, 1] (NaN when the span is too short)."""

    sufficient: bool
    reason: str = ""
    daily_strength: float = float("nan")
    weekly_strength: float = float("nan")
    verdict: str = ""
    daily_strength_insample: float = float("nan")
    weekly_strength_insample: float = float("nan")
    profile: pd.DataFrame | None = None
    decomposition: Decomposition | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"sufficient": self.sufficient, "reason": self.reason,
                "daily_strength": self.daily_strength, "weekly_strength": self.weekly_strength,
                "daily_strength_insample": self.daily_strength_insample,
                "weekly_strength_insample": self.weekly_strength_insample, "verdict": self.verdict}


def _period_name(p: int) -> str:
    return {24: "daily", 168: "weekly"}.get(p, f"p{p}")


def slot_of(index: pd.DatetimeIndex, period: int) -> np.ndarray:
    """Hour-of-day (``period=24``) or Monday-based hour-of-week (``168``) slot of each UTC timestamp."""
    hours = (pd.DatetimeIndex(index).as_unit("ns").asi8 - _ORIGIN_NS) // HOUR_NS
    return np.mod(hours, period).astype(np.int64)


def slot_means(values: np.ndarray, slots: np.ndarray, period: int) -> tuple[np.ndarray, int]:
    """Mean of finite ``values`` per slot ``0..period-1``, centred to sum to zero, and the fewest
    values behind a slot (0 means some slot has none; its mean is NaN)."""
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    sums = np.bincount(slots[ok], v[ok], minlength=period)
    cnt = np.bincount(slots[ok], minlength=period)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = sums / cnt
    if cnt.min() > 0:
        m = m - m.mean()
    return m, int(cnt.min())


def seasonal_indices(h: pd.Series, period: int) -> tuple[np.ndarray, int]:
    """Classical additive seasonal indices of an hourly series (NaN allowed, never filled).

    Trend = centred 2 x ``period`` moving average, NaN where its window misses more than
    ``period // 24`` hours (1 of a day, 7 of a week: a few scattered missing hours bias it by at most
    that share of the seasonal swing; requiring complete windows made one missing hour erase a
    week of trend, and three in a 33-day series left weekly slots without any data); index of a
    slot = mean of ``value - trend`` over the cycles where both exist, centred to sum to zero.
    Returns the ``period`` indices and the smallest number of cycles behind a slot.
    """
    y = h.to_numpy()
    r = pd.Series(y).rolling(period, min_periods=period - max(1, period // 24)).mean()
    r.iloc[:period - 1] = np.nan                      # windows cut by the start are not a whole cycle
    trend = ((r + r.shift(-1)) / 2).shift(-(period // 2) + 1).to_numpy()  # centred 2xP MA
    idx, k = slot_means(y - trend, slot_of(h.index, period), period)
    if k == 0:
        raise InsufficientDataError(f"cannot estimate a {period}-hour seasonal pattern: some hours of the "
                                    "cycle have no complete data")
    return idx, k


def classical_seasonal(h: pd.Series, periods: tuple[int, ...] | None = None, min_cycles: int = 3
                       ) -> tuple[pd.Series, tuple[int, ...], float]:
    """Fixed seasonal component of an hourly series by classical decomposition: the daily indices
    (:func:`seasonal_indices`), then the weekly ones on the daily-adjusted series, summed per hour.

    ``periods`` default: 24 with at least 3 days, plus 168 with at least 2 weeks
    (:data:`MIN_CYCLES_FOR_PERIOD`). A slot's index is the same in every cycle, so removing it cannot
    add a trend (an evolving seasonal component such as MSTL's can: on trend-free AR(1) series its
    removal made the trend test reject 26% of 500 series at 5%). Returns the component on ``h``'s
    index (0 where no period fits), the periods used and ``sum(1 / k)`` over them, ``k`` the fewest
    cycles behind a slot's index (the estimation noise the indices carry, relative to the noise
    variance: see :func:`core.analysis.trend.trend_test`). A period whose indices rest on fewer than
    ``min_cycles`` cycles is skipped: the centred moving average loses half a cycle at each end, so
    two weeks give weekly indices from one cycle, which would absorb that week's noise whole (a
    trend-free 14-day series then tested "significant").
    """
    n = len(h)
    if periods is None:
        periods = tuple(p for p in (24, 168) if n >= MIN_CYCLES_FOR_PERIOD[p] * p)
    total = np.zeros(n)
    base = h.astype(np.float64)
    used = []
    absorbed = 0.0
    for p in periods:
        try:
            idx, k = seasonal_indices(base, p)
        except InsufficientDataError:
            continue
        if k < min_cycles:
            continue
        comp = idx[slot_of(h.index, p)]
        total += comp
        base = base - comp
        used.append(p)
        absorbed += 1.0 / k
    return pd.Series(total, index=h.index), tuple(used), absorbed


def hourly(values: pd.Series, kind: str = "gauge") -> pd.Series:
    """Hourly medians of the raw points on a complete hourly grid (NaN for empty hours)."""
    return aggregate(values, "1h", "median", kind)


def decompose(values: pd.Series | None = None, *, hourly_values: pd.Series | None = None,
              periods: tuple[int, ...] | None = None, max_missing: float = 0.10,
              iterate: int = 2, kind: str = "gauge") -> Decomposition:
    """MSTL decomposition of hourly medians (see module docs). Not causal.

    Parameters
    ----------
    values : pandas.Series, optional
        Raw points indexed by UTC timestamps (or give ``hourly_values`` already aggregated).
    periods : tuple of int, optional
        Seasonal periods in hours. Default: 24 when the span holds at least 3 days, plus 168 when it
        holds at least 2 weeks.
    max_missing : float
        Largest fraction of empty hours (inside the span) that may be interpolated for fitting.
    """
    from statsmodels.tsa.seasonal import MSTL

    h = hourly_values if hourly_values is not None else hourly(_as_series(values), kind)
    ok = np.isfinite(h.to_numpy())
    if not ok.any():
        return Decomposition(False, "no finite values")
    h = h.iloc[int(np.argmax(ok)): len(ok) - int(np.argmax(ok[::-1]))]
    n = len(h)
    if periods is None:
        periods = tuple(p for p in (24, 168) if n > MIN_CYCLES_FOR_PERIOD[p] * p)
    else:
        periods = tuple(int(p) for p in periods)
        short = [p for p in periods if n <= 2 * p]
        if short:
            return Decomposition(False, f"{n} hours of data; period(s) {short} h need at least two full cycles")
    if not periods:
        return Decomposition(False, f"only {n} hours of data; at least {3 * 24} hours (3 days) are needed "
                                    "to measure daily seasonality")
    miss = ~np.isfinite(h.to_numpy())
    if miss.mean() > max_missing:
        return Decomposition(False, f"{int(miss.sum())} of {n} hours have no data ({miss.mean():.0%}); at "
                                    f"most {max_missing:.0%} may be missing for a decomposition")
    filled = h.interpolate(method="linear", limit_area="inside") if miss.any() else h
    res = MSTL(filled.to_numpy(), periods=periods if len(periods) > 1 else periods[0], iterate=iterate,
               stl_kwargs=STL_SPEED).fit()
    seas = np.asarray(res.seasonal).reshape(n, -1)
    seasonal = pd.DataFrame(seas, index=h.index, columns=[_period_name(p) for p in periods])
    resid = pd.Series(np.where(miss, np.nan, np.asarray(res.resid)), index=h.index)
    return Decomposition(True, "", periods, h, pd.Series(np.asarray(res.trend), index=h.index), seasonal,
                         resid, pd.Series(miss, index=h.index), int(miss.sum()))


def strength(seasonal: np.ndarray, resid: np.ndarray) -> float:
    """Hyndman's seasonal strength ``max(0, 1 - Var(R) / Var(S + R))`` over finite pairs."""
    s, r = np.asarray(seasonal, float), np.asarray(resid, float)
    ok = np.isfinite(s) & np.isfinite(r)
    if ok.sum() < 3:
        return float("nan")
    vr, vsr = np.var(r[ok]), np.var(s[ok] + r[ok])
    if vsr == 0:
        return 0.0
    return float(max(0.0, 1.0 - vr / vsr))


def crossfit_strength(z: np.ndarray, period: int) -> float:
    """Seasonal strength of hourly values ``z`` (trend and other seasonalities removed, NaN allowed)
    with the seasonal profile cross-fitted on even vs odd cycles of ``period`` hours (see module docs).
    Needs at least two cycles; returns NaN otherwise."""
    z = np.asarray(z, dtype=np.float64)
    n = z.size
    if n < 2 * period:
        return float("nan")
    i = np.arange(n)
    slot, fold = i % period, (i // period) % 2
    ok = np.isfinite(z)
    zz = np.where(ok, z, 0.0)
    key = fold * period + slot
    sums = np.bincount(key, weights=zz, minlength=2 * period)
    cnts = np.bincount(key, weights=ok.astype(float), minlength=2 * period)
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = sums / cnts
    other = prof[(1 - fold) * period + slot]
    use = ok & np.isfinite(other)
    if use.sum() < period:
        return float("nan")
    vz = np.var(z[use])
    if vz == 0:
        return 0.0
    return float(max(0.0, 1.0 - np.var(z[use] - other[use]) / vz))


def profile(values: pd.Series, min_points: int = 3) -> pd.DataFrame:
    """Median of the raw points per day of week (rows 0=Mon..6=Sun) and hour (columns 0..23), UTC.

    Cells with fewer than ``min_points`` finite points are NaN. Not causal.
    """
    s = _as_series(values)
    v = s.to_numpy()
    ok = np.isfinite(v)
    idx = s.index[ok]
    df = pd.DataFrame({"dow": idx.day_of_week, "hour": idx.hour, "v": v[ok]})
    g = df.groupby(["dow", "hour"])["v"]
    med = g.median().where(g.count() >= min_points)
    out = med.unstack("hour").reindex(index=range(7), columns=range(24))
    out.index.name, out.columns.name = "dow", "hour"
    return out


def _verdict(daily: float, weekly: float) -> str:
    parts = []
    for name, f in (("daily", daily), ("weekly", weekly)):
        if not np.isfinite(f):
            continue
        word = "strong" if f >= 0.6 else "moderate" if f >= 0.3 else "no notable"
        parts.append(f"{word} {name} seasonality (F={f:.2f})")
    return "; ".join(parts) if parts else "seasonality not measurable"


def analyse_seasonality(values: pd.Series, kind: str = "gauge", *, hourly_values: pd.Series | None = None,
                        decomposition: Decomposition | None = None) -> Seasonality:
    """Daily and weekly strength, hour x weekday profile and the MSTL decomposition of a series.

    Thin data (under 3 days, or too many empty hours) gives ``sufficient=False`` and the reason.
    """
    s = _as_series(values)
    dec = decomposition or decompose(hourly_values=hourly_values if hourly_values is not None
                                     else hourly(s, kind))
    prof = profile(s)
    if not dec.sufficient:
        return Seasonality(False, dec.reason, profile=prof, decomposition=dec)
    r = dec.resid.to_numpy()
    fs = {c: strength(dec.seasonal[c].to_numpy(), r) for c in dec.seasonal.columns}
    base = dec.observed.to_numpy() - dec.trend.to_numpy()
    total = dec.seasonal.to_numpy().sum(axis=1)
    cv = {}
    for p, c in zip(dec.periods, dec.seasonal.columns, strict=True):
        cv[c] = crossfit_strength(base - (total - dec.seasonal[c].to_numpy()), p)
    nan = float("nan")
    daily, weekly = cv.get("daily", nan), cv.get("weekly", nan)
    reason = "" if "weekly" in fs else "under 2 weeks of data: weekly seasonality not measured"
    return Seasonality(True, reason, daily, weekly, _verdict(daily, weekly),
                       daily_strength_insample=fs.get("daily", nan),
                       weekly_strength_insample=fs.get("weekly", nan), profile=prof, decomposition=dec)


# --------------------------------------------------------------------------- causal band
def seasonal_band(values: pd.Series, *, period: str = "week", lookback: int = 4, min_cycles: int = 2,
                  coverage: float = 0.95, max_cell: int = 120) -> pd.DataFrame:
    """Causal seasonal expectation and band for every point (usable by detectors and thresholds).

    For a point at time ``t`` in cycle ``w`` (a Monday-based UTC week, or a UTC day) and hourly slot
    ``s`` (hour of week, or hour of day), the pool is the raw finite points in slot ``s`` of the
    ``lookback`` cycles ``w-lookback .. w-1`` -- all strictly before ``t``. ``expected`` is the
    pool's median (linear interpolation). ``lower``/``upper`` are the order statistics
    ``x_(j)`` and ``x_(n+1-j)`` of the ``n`` pooled raw points with
    ``j = floor((1 - coverage) / 2 * (n + 1))``: for a new point exchangeable with the pool,
    ``P(x < x_(j)) = j / (n + 1) <= (1 - coverage) / 2`` (and likewise above), so the band holds at
    least ``coverage`` of such points whatever their distribution. That needs ``j >= 1``, i.e. a pool
    of at least :func:`min_band_points` (39 for 95%); smaller pools get ``expected`` but NaN
    ``lower``/``upper`` (insufficient, never an interpolated guess). Interpolated pool quantiles, as
    used before, put 49% of iid N(0, 1) hourly points (pool of 4) and 9% of 5-minute points (pool of
    48) outside a "95%" band; with order statistics: no band, and 3.9% (measured, 10 weeks, lookback
    4). With fewer than ``min_cycles`` earlier cycles holding data in that slot ``expected`` is NaN
    too. Cells with more than ``max_cell`` points are thinned evenly (every k-th point) to bound
    memory.

    Parameters
    ----------
    values : pandas.Series
        Raw values indexed by UTC timestamps (NaN allowed: missing points do not enter pools).
    period : {"week", "day"}
        Hour of week (168 slots) or hour of day (24 slots).

    Returns
    -------
    pandas.DataFrame
        Columns ``ts``, ``expected``, ``lower``, ``upper`` (value units), ``n`` (pool size) and
        ``cycles`` (earlier cycles with data), one row per input point, in time order.
    """
    if period not in PERIODS:
        raise ValidationError(f"period must be one of {list(PERIODS)}, not {period!r}", path="period")
    if lookback < 1 or min_cycles < 1 or min_cycles > lookback:
        raise ValidationError("need 1 <= min_cycles <= lookback", path="min_cycles")
    if not 0 < coverage < 1:
        raise ValidationError("coverage must be between 0 and 1 (e.g. 0.95)", path="coverage")
    s = _as_series(values)
    P = PERIODS[period]
    t = s.index.as_unit("ns").asi8
    rel = t - _ORIGIN_NS
    cyc_all = np.floor_divide(rel, P * HOUR_NS)
    slot_all = np.floor_divide(rel - cyc_all * P * HOUR_NS, HOUR_NS)
    v = s.to_numpy()
    fin = np.isfinite(v)
    out = pd.DataFrame({"ts": s.index, "expected": np.nan, "lower": np.nan, "upper": np.nan,
                        "n": 0, "cycles": 0})
    if not fin.any():
        return out
    c0 = int(cyc_all.min())
    C = int(cyc_all.max()) - c0 + 1
    cyc = (cyc_all[fin] - c0).astype(np.int64)
    slot = slot_all[fin].astype(np.int64)
    x = v[fin]
    cell = slot * C + cyc
    order = np.argsort(cell, kind="stable")          # time order kept inside each cell
    cell_s, x_s = cell[order], x[order]
    ucell, first, cnt = np.unique(cell_s, return_index=True, return_counts=True)
    pos = np.arange(cell_s.size) - np.repeat(first, cnt)
    stride = np.repeat(np.ceil(cnt / max_cell).astype(np.int64), cnt)
    keep = pos % stride == 0
    pos = pos[keep] // stride[keep]
    cell_k, x_k = cell_s[keep], x_s[keep]
    M = int(pos.max()) + 1
    grid = np.full((P, C + lookback, M), np.nan)
    grid[cell_k // C, cell_k % C + lookback, pos] = x_k
    has = np.zeros((P, C + lookback), dtype=np.int64)
    has[ucell // C, ucell % C + lookback] = 1
    # windows over cycles: window i covers padded cycles i..i+lookback-1 = real cycles i-lookback..i-1
    win = np.lib.stride_tricks.sliding_window_view(grid, lookback, axis=1)[:, :C]   # (P, C, M, L)
    pool = np.sort(win.reshape(P, C, M * lookback), axis=-1)                        # NaN sort last
    n = np.isfinite(pool).sum(axis=-1)
    csum = np.concatenate([np.zeros((P, 1), np.int64), np.cumsum(has, axis=1)], axis=1)
    cycles = csum[:, lookback: lookback + C] - csum[:, :C]
    # expected: the pool median (linear interpolation)
    h = (np.maximum(n, 1) - 1) * 0.5
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n, 1) - 1)
    a = np.take_along_axis(pool, lo[..., None], axis=-1)[..., 0]
    b = np.take_along_axis(pool, hi[..., None], axis=-1)[..., 0]
    med = a + (h - lo) * (b - a)
    # band: order statistics x_(j), x_(n+1-j) with j = floor((1 - coverage) / 2 * (n + 1)), a
    # distribution-free prediction interval; j = 0 (pool too small) -> no band
    j = np.floor((1 - coverage) / 2 * (n + 1) + 1e-9).astype(np.int64)
    jj = np.maximum(j, 1)
    lower = np.take_along_axis(pool, (jj - 1)[..., None], axis=-1)[..., 0]
    upper = np.take_along_axis(pool, np.maximum(n - jj, 0)[..., None], axis=-1)[..., 0]
    q = np.stack([med, lower, upper], axis=-1)
    bad = (cycles < min_cycles) | (n == 0)
    q[bad] = np.nan
    q[j < 1, 1:] = np.nan
    ci = (cyc_all - c0).astype(np.int64)
    si = slot_all.astype(np.int64)
    out["expected"] = q[si, ci, 0]
    out["lower"] = q[si, ci, 1]
    out["upper"] = q[si, ci, 2]
    out["n"] = n[si, ci]
    out["cycles"] = cycles[si, ci]
    return out


def min_band_points(coverage: float = 0.95) -> int:
    """Smallest pool with a distribution-free ``coverage`` band in :func:`seasonal_band`: the least
    ``n`` with ``floor((1 - coverage) / 2 * (n + 1)) >= 1`` (39 for 95%, 19 for 90%)."""
    return int(np.ceil(2.0 / (1.0 - coverage) - 1e-9)) - 1


BAND_COLUMNS = ["ts", "expected", "lower", "upper", "period", "n"]


def hourly_band(values: pd.Series, *, lookback: int = 4, coverage: float = 0.95) -> pd.DataFrame:
    """Causal seasonal band at hourly steps (the band of :func:`seasonal_band` only changes on the hour).

    For each hour the pool is the same hour of the week in the ``lookback`` previous weeks when that
    pool is large enough for a band (:func:`min_band_points`, 39 points for 95%: weeks of data
    sampled every 5 minutes or faster), else the same hour of the day in the ``lookback`` previous
    days when that one is. Where neither pool gives a band, ``expected`` is still the median of the
    week pool (or of the day pool) with at least two earlier cycles, but ``lower``/``upper`` are NaN:
    hourly data (4 points per pool) never gets a "95%" band it cannot honour. Where neither has two
    earlier cycles, everything is NaN (never a guess). Causal: an hour's band uses only points of
    cycles that ended before it began. Hours inside the span without points get a NaN row so a chart
    breaks at a gap instead of bridging it.

    Parameters
    ----------
    values : pandas.Series
        Raw values on a UTC DatetimeIndex (NaN = missing; points to keep out of the pools, e.g.
        incidents, should be NaN).
    lookback : int
        Earlier cycles (weeks, or days for the fallback) in a pool.
    coverage : float
        Central share of the pool between ``lower`` and ``upper`` (0.95).

    Returns
    -------
    pandas.DataFrame
        ``ts`` (hour start, UTC), ``expected`` (pool median), ``lower``, ``upper`` (value units),
        ``period`` (the pool used: "week", "day", or "" where ``expected`` is NaN) and ``n`` (points
        in that pool; 0 where none), one row per hour of the span.
    """
    s = _as_series(values)
    if not len(s):
        dtypes = {"period": object, "n": np.int64}
        return pd.DataFrame({c: pd.Series([], dtype=dtypes.get(c, float)) for c in BAND_COLUMNS})
    # one representative point per hour: the band of every point of an hour is the same, since the
    # pools are whole earlier cycles of that hour slot
    hours = s.index.floor("h")
    first = ~hours.duplicated(keep="first")
    wk = seasonal_band(s, period="week", lookback=lookback, coverage=coverage)[first]
    dy = seasonal_band(s, period="day", lookback=lookback, coverage=coverage)[first]
    wk_band, dy_band = np.isfinite(wk["lower"].to_numpy()), np.isfinite(dy["lower"].to_numpy())
    wk_exp, dy_exp = np.isfinite(wk["expected"].to_numpy()), np.isfinite(dy["expected"].to_numpy())
    use_wk = wk_band | (~dy_band & wk_exp)
    use_dy = ~use_wk & (dy_band | dy_exp)
    out = pd.DataFrame({"ts": hours[first]})
    for c in ("expected", "lower", "upper", "n"):
        out[c] = np.where(use_wk, wk[c].to_numpy(), np.where(use_dy, dy[c].to_numpy(), np.nan))
    out["period"] = np.where(use_wk, "week", np.where(use_dy, "day", ""))
    out = out.set_index("ts")
    grid = pd.date_range(out.index[0], out.index[-1], freq="h", name="ts")
    out = out.reindex(grid)
    out["period"] = out["period"].fillna("")
    # n is a count of pool points, not a metric value: an hour with no pool honestly has 0 of them
    out["n"] = np.where(out["n"].isna(), 0, out["n"]).astype(np.int64)
    return out.reset_index()[BAND_COLUMNS]
