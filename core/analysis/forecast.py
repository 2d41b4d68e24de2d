"""Forecasts of hourly medians with 80% and 95% prediction intervals calibrated per horizon, and a
rolling-origin backtest.

Method ``seasonal_ets`` (default, Holt-Winters style): seasonal indices of the hourly medians by
classical decomposition (daily; weekly too with two weeks of data) and statsmodels ``ETSModel``
(additive error, additive damped trend) on the seasonally adjusted rest; see
:class:`SeasonalETSForecaster`.

Intervals: **split conformal prediction per horizon on rolling-origin errors** (Vovk et al. 2005;
Lei et al. 2018 for split conformal; per-horizon calibration on time-ordered rolling origins as in
Stankeviciute et al. 2021 and, for sequential data, EnbPI, Xu & Xie 2021). The model is fitted
without the last ``C`` hours of the history (the *calibration window*); with its parameters and
seasonal indices fixed, its level and trend states are updated through the window (the data
arriving) and a forecast is made from every hour of it (each forecast uses only the hours before
its origin). The ``k``-hour-ahead absolute errors of those forecasts (pooled over horizons
``k - 2 .. k + 2``) give the half-width at horizon ``k``: their ``ceil((n + 1) L) / n`` empirical
quantile for level ``L``. The final model is fitted on all the history; its mean plus/minus those
half-widths is the interval. Why not the model's own interval: ETS(A,Ad,N)'s analytic variance
grows like a random walk's, so on stationary seasonal series it was far too wide after the first day
(measured, hourly, 4 weeks, AR(1) noise phi 0.6, 40 runs: 91% / 99% / 99% of hours 1-24 / 25-48 /
49-72 inside the nominal 80% band); the conformal half-widths follow the errors the model actually
makes at each horizon. Horizons the calibration window cannot reach with at least
``MIN_ORIGINS`` origins use the model's interval rescaled to match the last calibrated horizon; a
history too short for any calibration falls back to the model's interval (``interval_method``
says which). Measured (``bench/calibration.py``; 72 h ahead from 4 weeks of hourly history; share
of never-seen hours inside the 80% / 95% intervals at hours 1-24 / 25-48 / 49-72): daily + weekly
cycle with AR(1) noise phi 0.6, 200 runs, 82/96, 83/95, 82/96; the same with a trend, 83/96, 83/96,
82/96; 11 NAB series of 31+ days, 199 rolling origins, 77/93, 76/91, 75/91 (real series drift, so
the recent errors that calibrate the interval understate later ones a little; a calibration window
of 336 instead of 168 origins gave 78/94, 77/91, 77/91 there but 85/97 at 25-48 h on the simulated
trend set, from a calibration model fitted on less data than the final one).

Method ``seasonal_naive``: the value one cycle (a week, or a day with under two weeks of data)
earlier; intervals from the empirical quantiles of in-sample cycle-to-cycle differences, widened by
``sqrt(k)`` in the k-th cycle ahead. It is the yardstick a real model must beat.

:func:`backtest` is a rolling-origin evaluation (Tashman 2000) without re-estimation: the forecaster
(including its own conformal calibration) is fitted on the history before an evaluation stretch at
the end, its states are updated as the stretch's hours arrive, and a forecast is made from every
hour of the stretch. Coverage of the 80% and 95% intervals per 24-hour horizon band, each with a
Wilson binomial interval, MAE and the seasonal-naive MAE from the same origins. Coverage is
reported as measured, never adjusted.

Missing hours: up to 10% may be interpolated for the ETS fit and state updates only (it needs a
full grid); missing hours are never scored. Thin history gives ``sufficient=False`` and the
reason, never a forecast.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from core.analysis.baseline import _as_series
from core.analysis.seasonality import MIN_CYCLES_FOR_PERIOD, hourly, seasonal_indices, slot_of
from core.analysis.trend import CP_MIN_CYCLES, ChangePoints, change_points
from core.errors import InsufficientDataError, ValidationError

HOUR = pd.Timedelta("1h")
MIN_HISTORY_HOURS = 72
ETS_WINDOW_HOURS = 336   # the ETS part is fitted on the last two weeks (seasonal indices use all data)
WINSOR_K = 3.0           # one-step residuals beyond this many robust sd are clipped for the interval sd
CAL_ORIGINS = 168        # forecast origins wanted behind the longest horizon's conformal quantile
MIN_ORIGINS = 24         # fewest origins behind a horizon's conformal quantile
POOL = 2                 # a horizon's quantile pools the errors of horizons k - POOL .. k + POOL
EVAL_ORIGINS = 168       # backtest: origins wanted behind the longest horizon
BAND_HOURS = 24          # backtest: coverage is reported per band of this many horizons
PI_LEVELS = (0.80, 0.95)
DEFAULT_HORIZON = 168    # hours calibrated when fit() is not told the horizon
FRAME_COLUMNS = ["ts", "mean", "lo80", "hi80", "lo95", "hi95"]


@contextmanager
def single_thread_blas() -> Iterator[None]:
    """Run the block with one BLAS thread (restored afterwards).

    The models here make thousands of tiny BLAS/LAPACK calls (the L-BFGS-B steps of the ETS fit);
    with a multi-threaded OpenBLAS each call wakes and spins the other threads, which cost 10x the
    CPU of the fit itself on a 2-core machine (0.15 s instead of 0.015 s per fit, measured). Nothing
    in the analysis multiplies matrices big enough to gain from threads. A no-op without
    ``threadpoolctl`` (a scikit-learn dependency). The limit is process-wide while the block runs.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                       # pragma: no cover - installed with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _grid(h: pd.Series) -> pd.Series:
    """Trim leading/trailing NaN hours of an hourly series (interior gaps stay NaN)."""
    ok = np.isfinite(h.to_numpy())
    if not ok.any():
        return h.iloc[:0]
    return h.iloc[int(np.argmax(ok)): len(ok) - int(np.argmax(ok[::-1]))]


def conformal_quantile(abs_errors: np.ndarray, level: float) -> float:
    """Split-conformal half-width: the ``ceil((n + 1) level) / n`` empirical quantile (``higher``
    method) of ``n`` finite absolute errors; ``inf`` when ``n`` is too small for the level (Lei et
    al. 2018, "Distribution-free predictive inference for regression")."""
    e = np.asarray(abs_errors, dtype=np.float64)
    e = e[np.isfinite(e)]
    n = e.size
    if n == 0:
        return float("nan")
    r = math.ceil((n + 1) * level)
    if r > n:
        return float("inf")
    return float(np.sort(e)[r - 1])


def horizon_halfwidths(abs_errors: np.ndarray, level: float, pool: int = POOL,
                       min_origins: int = MIN_ORIGINS) -> np.ndarray:
    """Conformal half-width per horizon from an ``origins x horizons`` matrix of absolute errors
    (NaN = not observed). Horizon ``k`` pools columns ``k - pool .. k + pool``; NaN where column
    ``k`` has fewer than ``min_origins`` finite errors. A loop over horizons (at most 168), not
    over points."""
    E = np.asarray(abs_errors, dtype=np.float64)
    H = E.shape[1]
    n_k = np.isfinite(E).sum(axis=0)
    out = np.full(H, np.nan)
    for k in range(H):
        if n_k[k] >= min_origins:
            out[k] = conformal_quantile(E[:, max(0, k - pool): k + pool + 1].ravel(), level)
    return out


@dataclass
class RollingForecasts:
    """Forecasts of a fixed model from many origins: ``mean[o, k - 1]`` is the forecast made at
    ``origins[o]`` (after its value arrived) for ``k`` hours later; ``actual`` the value then (NaN
    when missing or beyond the data); ``naive`` the seasonal-naive forecast from the same origin."""

    origins: pd.DatetimeIndex
    mean: np.ndarray
    actual: np.ndarray
    naive: np.ndarray


def _ahead(y: np.ndarray, pos: np.ndarray, horizon: int) -> np.ndarray:
    """``y[pos + k]`` for k = 1..horizon (NaN beyond the end): an origins x horizons matrix."""
    idx = pos[:, None] + np.arange(1, horizon + 1)[None, :]
    ok = idx < y.size
    out = np.full(idx.shape, np.nan)
    out[ok] = y[idx[ok]]
    return out


class SeasonalETSForecaster:
    """Seasonal indices (daily, plus weekly with 2+ weeks) + ETS(A,Ad,N) on the adjusted rest, with
    conformal intervals calibrated per horizon (see the module notes).

    A Holt-Winters-style model: the seasonal pattern is estimated once by classical decomposition
    (:func:`seasonal_indices`, daily then weekly on the daily-adjusted data) and the seasonally
    adjusted hourly medians of the last two weeks (``ETS_WINDOW_HOURS``, for speed) are fitted with
    statsmodels ``ETSModel`` (additive error, additive damped trend).

    Intervals (``calibrate=True``): split conformal per horizon. The model is refitted without the
    last ``C = min(horizon + CAL_ORIGINS, n - n_fit)`` hours (``n_fit`` the hours its seasonal
    periods need, 336 with the weekly one, so the calibration model has the same structure, plus
    one more cycle when the history allows: weekly indices from 18 days rest on one cycle and made
    the intervals 5 points too wide, measured on the simulated sets of ``bench/calibration.py``); its
    forecasts from every hour of those ``C`` (states updated, parameters fixed) give per-horizon
    absolute errors and their conformal quantiles (:func:`horizon_halfwidths`) are the half-widths.
    Horizon ``k`` needs ``MIN_ORIGINS`` origins, i.e. ``C - k >= 24``; further horizons use the
    model's analytic sd times the ratio half-width / sd at the last calibrated horizon.
    ``interval_method_`` is ``"conformal"`` or, when no horizon could be calibrated, ``"model"``:
    statsmodels' analytic sd widened by ``sqrt(1 + sum(1 / k))`` for the noise the seasonal indices
    absorb (``k`` the fewest cycles behind a slot) and made robust to incident hours (residuals
    winsorised at ``WINSOR_K`` robust sd, :func:`robust_sigma_ratio`).

    Level shifts: a step in the history (a deploy: +25 ms at day 20) is smeared by the centred moving
    average of :func:`seasonal_indices` over half a cycle on each side, and that ramp leaks into the
    weekly indices. So the indices are estimated on the hourly medians with the level shifts undone
    (:meth:`core.analysis.trend.ChangePoints.remove_shifts`; found on the training hours only, or passed in by
    the analysis that found them on the same hours); the ETS part still sees the shifts and follows
    the new level. Only when the change-point model included every period the indices use (4 weeks
    of data for the weekly one); with fewer cycles no shift is undone. Measured (benchmark series,
    10 seeds, 3 days ahead): 38 days (shift 15 days before the hold-out) MAE 4.27 -> 1.93.
    ``fit`` raises :class:`InsufficientDataError` on thin or gappy history.
    """

    name = "seasonal_ets"

    def __init__(self, calibrate: bool = True, undo_shifts: bool = True) -> None:
        self.calibrate = bool(calibrate)
        self.undo_shifts = bool(undo_shifts)

    def _shifts(self, h: pd.Series, shifts: ChangePoints | None) -> ChangePoints | None:
        """Level shifts to undo before the seasonal indices: ``shifts`` as given, else found by
        :func:`core.analysis.trend.change_points` on ``h`` (the training hours only); either way only when
        the change-point model included every period the indices use; else None (with fewer cycles
        a weekly pattern is cut into a staircase of false shifts: 23 on 27 days of the benchmark
        series, daily pattern only)."""
        if not self.undo_shifts:
            return None
        if shifts is not None:
            ok = not shifts.points or set(self.periods_) <= set(shifts.periods)
            return shifts if ok else None
        span = len(h)
        if not self.periods_ or any(span < CP_MIN_CYCLES[p] * p for p in self.periods_):
            return None
        return change_points(hourly_values=h, periods=self.periods_)

    def fit(self, hourly_values: pd.Series, max_missing: float = 0.10, shifts: ChangePoints | None = None,
            horizon: int = DEFAULT_HORIZON) -> SeasonalETSForecaster:
        """Fit on hourly medians (see the class notes) and calibrate the intervals for ``horizon``
        hours; ``shifts`` (level shifts found on these same hours, e.g. by the analysis) saves
        detecting them again."""
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        h = _grid(hourly_values)
        n = len(h)
        if n < MIN_HISTORY_HOURS:
            raise InsufficientDataError(f"cannot forecast: only {n} hours of data; at least "
                                        f"{MIN_HISTORY_HOURS} (3 days) are needed")
        miss = ~np.isfinite(h.to_numpy())
        if miss.mean() > max_missing:
            raise InsufficientDataError(f"cannot forecast: {int(miss.sum())} of {n} hours have no data "
                                        f"({miss.mean():.0%}); at most {max_missing:.0%} may be missing")
        self.periods_ = tuple(p for p in (24, 168) if n >= MIN_CYCLES_FOR_PERIOD[p] * p)
        self.indices_: dict[int, np.ndarray] = {}
        cps = self._shifts(h, shifts)
        self.shifts_ = cps if cps is not None and cps.sufficient else ChangePoints(True)
        absorbed = 0.0
        base = self.shifts_.remove_shifts(h)      # the indices see the series with its shifts undone
        for p in self.periods_:
            idx, k = seasonal_indices(base, p)
            self.indices_[p] = idx
            base = base - idx[slot_of(h.index, p)]
            absorbed += 1.0 / k
        self.widen_ = float(np.sqrt(1 + min(absorbed, 0.5)))
        endog = self._endog(h).iloc[-ETS_WINDOW_HOURS:]
        with warnings.catch_warnings(), single_thread_blas():
            warnings.simplefilter("ignore")   # optimizer chatter
            self.result_ = ETSModel(endog, error="add", trend="add", damped_trend=True,
                                    initialization_method="heuristic").fit(disp=False)
        self.index_ = h.index
        self.window_start_ = endog.index[0]
        self.n_ets_ = len(endog)
        self.n_train_ = int((~miss).sum())
        e = np.asarray(self.result_.resid, dtype=np.float64)[~miss[-len(endog):]]   # observed hours only
        e = e[np.isfinite(e)]
        self.sigma_ratio_ = robust_sigma_ratio(e)
        self.halfwidths_: dict[float, np.ndarray] = {}
        self.n_cal_origins_ = 0
        self.interval_method_ = "model"
        if self.calibrate:
            self._calibrate(h, max_missing, int(horizon))
        return self

    def _seasonal(self, ts: pd.DatetimeIndex) -> np.ndarray:
        out = np.zeros(len(ts))
        for p, idx in self.indices_.items():
            out += idx[slot_of(ts, p)]
        return out

    def _endog(self, h: pd.Series) -> pd.Series:
        """Seasonally adjusted hourly values on a regular index, missing hours interpolated inside
        (for the ETS recursions only)."""
        adj = h - self._seasonal(h.index)
        if adj.isna().any():
            adj = adj.interpolate(method="linear", limit_area="inside")
        return pd.Series(adj.to_numpy(), index=pd.date_range(h.index[0], periods=len(h), freq="h"))

    def rolling(self, h: pd.Series, since: pd.Timestamp, horizon: int) -> RollingForecasts:
        """Forecasts ``1..horizon`` hours ahead from every hour of ``h`` at or after ``since`` (the
        last hour seen in training, or later) by this fitted model: parameters and seasonal indices
        fixed, level and trend states updated by the hours of ``h`` after the training (statsmodels
        ``ETSModel.smooth`` with the fitted parameters; each forecast uses only hours up to its
        origin). ``h`` must extend the training hours on the same hourly grid."""
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel

        keep = np.asarray(h.index >= self.window_start_)
        endog = self._endog(h)[keep]          # interpolated on all of h, as in fit: same first value
        h = h[keep]
        with warnings.catch_warnings(), single_thread_blas():
            warnings.simplefilter("ignore")
            res = ETSModel(endog, error="add", trend="add", damped_trend=True,
                           initialization_method="heuristic").smooth(self.result_.params)
        st_ = np.asarray(res.states, dtype=np.float64)
        phi = float(self.result_.params.iloc[-1])
        damp = np.cumsum(phi ** np.arange(1, horizon + 1))
        pos = np.flatnonzero(np.asarray(h.index >= since))
        pos = pos[pos < len(h) - 1]
        ts = h.index[pos]
        seas = self._seasonal(pd.date_range(h.index[0], periods=len(h) + horizon, freq="h"))
        target = pos[:, None] + np.arange(1, horizon + 1)[None, :]
        mean = st_[pos, 0][:, None] + damp[None, :] * st_[pos, 1][:, None] + seas[target]
        y = h.to_numpy(dtype=np.float64)
        period = 168 if 168 in self.periods_ else 24
        step = np.arange(1, horizon + 1)
        back = period * np.ceil(step / period).astype(np.int64)          # naive: one cycle before the target
        idx = pos[:, None] + step[None, :] - back[None, :]
        naive = np.where(idx >= 0, y[np.clip(idx, 0, None)], np.nan)
        return RollingForecasts(pd.DatetimeIndex(ts), mean, _ahead(y, pos, horizon), naive)

    def _calibrate(self, h: pd.Series, max_missing: float, horizon: int) -> None:
        """Per-horizon conformal half-widths from the calibration window (see the class notes)."""
        n = len(h)
        # the calibration model should have the final model's structure and nearly its precision:
        # one cycle more than the minimum when that leaves every horizon MIN_ORIGINS origins (the
        # centred moving average loses a cycle, so 2 weeks give weekly indices from 1 cycle, 3 from 2)
        need = [MIN_CYCLES_FOR_PERIOD[p] * p for p in self.periods_] or [MIN_HISTORY_HOURS]
        n_fit = max(MIN_HISTORY_HOURS, *need)
        if n - (n_fit + max(self.periods_ or (0,))) >= horizon + MIN_ORIGINS:
            n_fit += max(self.periods_ or (0,))
        C = min(horizon + CAL_ORIGINS, n - n_fit)
        if C < MIN_ORIGINS + 1:
            return
        cut = h.index[-C]
        sh = self.shifts_
        before = ChangePoints(True, points=[p for p in sh.points if p.ts < cut], periods=sh.periods, scale=sh.scale)
        try:
            inner = SeasonalETSForecaster(False, self.undo_shifts).fit(h.iloc[:-C], max_missing, shifts=before)
        except InsufficientDataError:
            return
        rf = inner.rolling(h, inner.index_[-1], min(horizon, C))
        err = np.abs(rf.actual - rf.mean)
        hw = {lv: horizon_halfwidths(err, lv) for lv in PI_LEVELS}
        if not np.isfinite(hw[0.95][0]):
            return
        self.halfwidths_ = hw
        self.n_cal_origins_ = len(rf.origins)
        self.interval_method_ = "conformal"

    def model_sd(self, horizon: int) -> np.ndarray:
        """The model-based forecast sd per horizon: ETS analytic sd x seasonal-index widening x
        robust-sigma ratio (used where no conformal half-width exists)."""
        n = self.n_ets_
        with warnings.catch_warnings(), single_thread_blas():
            warnings.simplefilter("ignore")
            pred = self.result_.get_prediction(start=n, end=n + horizon - 1)
        return np.sqrt(np.asarray(pred.var_pred_mean, dtype=np.float64)) * self.widen_ * self.sigma_ratio_

    def halfwidths(self, horizon: int) -> dict[float, np.ndarray]:
        """Interval half-width per horizon ``1..horizon`` and level (see the class notes)."""
        sd = self.model_sd(horizon)
        out = {}
        for lv in PI_LEVELS:
            model = interval_z(lv) * sd
            q = self.halfwidths_.get(lv)
            if q is None:
                out[lv] = model
                continue
            hw = np.full(horizon, np.nan)
            m = min(horizon, q.size)
            hw[:m] = q[:m]
            ok = np.isfinite(hw) & (model > 0)
            last = int(np.flatnonzero(ok)[-1])
            ratio = hw[last] / model[last]
            out[lv] = np.where(np.isfinite(hw), hw, model * ratio)
        return out

    def predict(self, horizon: int) -> pd.DataFrame:
        n = self.n_ets_
        with warnings.catch_warnings(), single_thread_blas():
            warnings.simplefilter("ignore")
            pred = self.result_.get_prediction(start=n, end=n + horizon - 1)
        ts = pd.date_range(self.index_[-1] + HOUR, periods=horizon, freq="h")
        mean = np.asarray(pred.predicted_mean, dtype=np.float64) + self._seasonal(ts)
        out = pd.DataFrame({"ts": ts, "mean": mean})
        for lv, half in self.halfwidths(horizon).items():
            tag = f"{round(lv * 100)}"
            out["lo" + tag], out["hi" + tag] = mean - half, mean + half
        return out


class SeasonalNaiveForecaster:
    """Value one cycle earlier (168 h with two weeks of data, else 24 h); empirical intervals."""

    name = "seasonal_naive"

    def fit(self, hourly_values: pd.Series) -> SeasonalNaiveForecaster:
        h = _grid(hourly_values)
        n = len(h)
        if n < MIN_HISTORY_HOURS:
            raise InsufficientDataError(f"cannot forecast: only {n} hours of data; at least "
                                        f"{MIN_HISTORY_HOURS} are needed")
        self.period_ = 168 if n >= 336 else 24
        y = h.to_numpy()
        e = y[self.period_:] - y[:-self.period_]
        e = e[np.isfinite(e)]
        if e.size < 10:
            raise InsufficientDataError("cannot forecast: too few cycle-to-cycle differences")
        self.q_ = {lv: np.quantile(e, [(1 - lv) / 2, (1 + lv) / 2]) for lv in PI_LEVELS}
        self.last_ = y[-self.period_:]
        self.index_ = h.index
        return self

    def predict(self, horizon: int) -> pd.DataFrame:
        step = np.arange(horizon)
        mean = self.last_[step % self.period_]
        k = np.sqrt(step // self.period_ + 1)
        out = pd.DataFrame({"ts": pd.date_range(self.index_[-1] + HOUR, periods=horizon, freq="h"), "mean": mean})
        for lv, tag in ((0.80, "80"), (0.95, "95")):
            lo, hi = self.q_[lv]
            out["lo" + tag], out["hi" + tag] = mean + k * lo, mean + k * hi
        return out


FORECASTERS: dict[str, type] = {"seasonal_ets": SeasonalETSForecaster, "seasonal_naive": SeasonalNaiveForecaster}


@dataclass
class Forecast:
    """A forecast of hourly medians. ``frame`` has columns ts, mean, lo80, hi80, lo95, hi95.

    ``interval_method`` names how the intervals were made: ``"conformal"`` (split conformal per
    horizon on ``n_cal_origins`` rolling origins, see :class:`SeasonalETSForecaster`), ``"model"``
    (the model's analytic interval) or ``"empirical"`` (seasonal naive)."""

    sufficient: bool
    reason: str = ""
    method: str = "seasonal_ets"
    horizon_hours: int = 0
    n_train: int = 0
    periods: tuple[int, ...] = ()
    frame: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FRAME_COLUMNS))
    interval_method: str = ""
    n_cal_origins: int = 0

    def interval_text(self) -> str:
        """The interval method in words (for the page and the CLI)."""
        if self.interval_method == "conformal":
            return (f"split conformal, calibrated per horizon on the errors of forecasts from {self.n_cal_origins} "
                    "hourly rolling origins, made by the model refitted without those hours")
        if self.interval_method == "model":
            return "the model's analytic intervals (history too short to calibrate them by rolling origins)"
        return "empirical quantiles of cycle-to-cycle differences"

    def to_dict(self) -> dict[str, Any]:
        return {"sufficient": self.sufficient, "reason": self.reason, "method": self.method,
                "horizon_hours": self.horizon_hours, "n_train": self.n_train, "periods": list(self.periods),
                "interval_method": self.interval_method, "n_cal_origins": self.n_cal_origins}


def _make(method: str) -> Any:
    if method not in FORECASTERS:
        raise ValidationError(f"method must be one of {list(FORECASTERS)}, not {method!r}", path="method")
    return FORECASTERS[method]()


def _fit(model: Any, h: pd.Series, horizon: int, shifts: ChangePoints | None = None) -> Any:
    if isinstance(model, SeasonalETSForecaster):
        return model.fit(h, shifts=shifts, horizon=horizon)
    return model.fit(h)


def _hourly_input(values: pd.Series | None, hourly_values: pd.Series | None, kind: str) -> pd.Series:
    if hourly_values is not None:
        return _grid(_as_series(hourly_values, "hourly_values"))
    if values is None:
        raise ValidationError("give values or hourly_values", path="values")
    return _grid(hourly(_as_series(values), kind))


def forecast(values: pd.Series | None = None, *, horizon_days: float = 7, method: str = "seasonal_ets",
             hourly_values: pd.Series | None = None, kind: str = "gauge",
             shifts: ChangePoints | None = None) -> Forecast:
    """Forecast hourly medians ``horizon_days`` (1-7) ahead with 80% and 95% prediction intervals.

    Needs at least ``max(72 h, 2 x horizon)`` of history; otherwise ``sufficient=False``.
    ``shifts``: level shifts already found on the same hourly medians (``seasonal_ets`` only; found
    again when not given). Not causal in the sense of a score: it uses all the history up to its end.
    """
    if not 0 < horizon_days <= 7:
        raise ValidationError("horizon_days must be in (0, 7]", path="horizon_days")
    H = int(round(horizon_days * 24))
    h = _hourly_input(values, hourly_values, kind)
    need = max(MIN_HISTORY_HOURS, 2 * H)
    if len(h) < need:
        return Forecast(False, f"only {len(h)} hours of history; a {horizon_days:g}-day forecast needs at "
                               f"least {need} hours", method, H)
    model = _make(method)
    try:
        _fit(model, h, H, shifts)
    except InsufficientDataError as exc:
        return Forecast(False, str(exc), method, H)
    return Forecast(True, "", method, H, int(np.isfinite(h.to_numpy()).sum()),
                    tuple(getattr(model, "periods_", (getattr(model, "period_", 0),))), model.predict(H),
                    getattr(model, "interval_method_", "empirical"), getattr(model, "n_cal_origins_", 0))


def wilson_interval(k: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (``n`` may be an effective,
    non-integer count); (nan, nan) when ``n <= 0``."""
    if n <= 0:
        return float("nan"), float("nan")
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


@dataclass
class BandScore:
    """Backtest scores of one horizon band (hours ``first..last`` ahead).

    ``n_origins``: origins with at least one scored hour in the band; ``n_scored``: scored (origin,
    hour) pairs. ``ci80``/``ci95``: 95% Wilson intervals of the coverage computed on ``n_scored / 24``
    effective observations (the pairs of origins 24 hours apart cover disjoint target hours; hours
    inside a day are correlated, so counting every pair would make the interval far too narrow)."""

    first: int
    last: int
    n_origins: int
    n_scored: int
    coverage80: float
    ci80: tuple[float, float]
    coverage95: float
    ci95: tuple[float, float]
    mae: float
    naive_mae: float

    @property
    def label(self) -> str:
        return f"{self.first}-{self.last} h"

    def to_dict(self) -> dict[str, Any]:
        return {"hours": self.label, "n_origins": self.n_origins, "n_scored": self.n_scored,
                "coverage80": self.coverage80, "ci80": list(self.ci80), "coverage95": self.coverage95,
                "ci95": list(self.ci95), "mae": self.mae, "naive_mae": self.naive_mae}


@dataclass
class Backtest:
    """Rolling-origin backtest of a forecaster (see :func:`backtest`). Coverage is the share of
    scored (origin, hour) pairs inside the interval; ``bands`` break it down per 24-hour band."""

    sufficient: bool
    reason: str = ""
    method: str = "seasonal_ets"
    holdout_hours: int = 0
    horizon_hours: int = 0
    n_origins: int = 0
    n_scored: int = 0
    coverage80: float = float("nan")
    coverage95: float = float("nan")
    mae: float = float("nan")
    mape: float = float("nan")
    naive_mae: float = float("nan")
    bands: list[BandScore] = field(default_factory=list)
    interval_method: str = ""
    frame: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=[*FRAME_COLUMNS, "actual"]))

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("sufficient", "reason", "method", "interval_method", "holdout_hours",
                                             "horizon_hours", "n_origins", "n_scored", "coverage80", "coverage95",
                                             "mae", "mape", "naive_mae")}
        out["bands"] = [b.to_dict() for b in self.bands]
        return out

    def summary(self) -> str:
        """Coverage per horizon band with its binomial interval and the origins behind it, MAE and
        the seasonal-naive MAE."""
        if not self.sufficient:
            return f"backtest not possible: {self.reason}"
        parts = [f"{b.label}: {b.coverage80:.0%} in the 80% band (95% CI {b.ci80[0]:.0%}-{b.ci80[1]:.0%}), "
                 f"{b.coverage95:.0%} in the 95% band ({b.ci95[0]:.0%}-{b.ci95[1]:.0%}), {b.n_origins} origins"
                 for b in self.bands]
        return (f"rolling origins over the last {self.holdout_hours / 24:.3g} days ({self.n_origins} hourly "
                f"origins, model fitted before them, {self.n_scored} hours scored): " + "; ".join(parts)
                + f"; MAE {self.mae:.3g} (seasonal naive {self.naive_mae:.3g})")


def score_rolling(rf: RollingForecasts, half: dict[float, np.ndarray], band_hours: int = BAND_HOURS
                  ) -> tuple[dict[str, float], list[BandScore]]:
    """Coverage, MAE and seasonal-naive MAE of rolling forecasts overall and per horizon band."""
    H = rf.mean.shape[1]
    ok = np.isfinite(rf.actual)
    err = np.abs(rf.actual - rf.mean)
    inside = {lv: err <= half[lv][None, :] for lv in PI_LEVELS}
    nerr = np.abs(rf.actual - rf.naive)
    bands = []
    for a in range(0, H, band_hours):
        b = min(H, a + band_hours)
        m = ok[:, a:b]
        n = int(m.sum())
        if n == 0:
            continue
        n_eff = n / band_hours
        cov = {lv: float(inside[lv][:, a:b][m].mean()) for lv in PI_LEVELS}
        nv = nerr[:, a:b][m & np.isfinite(nerr[:, a:b])]
        bands.append(BandScore(a + 1, b, int(m.any(axis=1).sum()), n, cov[0.8],
                               wilson_interval(cov[0.8] * n_eff, n_eff), cov[0.95],
                               wilson_interval(cov[0.95] * n_eff, n_eff), float(err[:, a:b][m].mean()),
                               float(nv.mean()) if nv.size else float("nan")))
    a_ok = rf.actual[ok]
    e_ok = err[ok]
    nz = np.abs(a_ok) > 1e-9
    nv = nerr[ok & np.isfinite(nerr)]
    overall = {"coverage80": float(inside[0.8][ok].mean()), "coverage95": float(inside[0.95][ok].mean()),
               "mae": float(e_ok.mean()), "naive_mae": float(nv.mean()) if nv.size else float("nan"),
               "mape": float(np.mean(e_ok / np.abs(a_ok)) * 100) if nz.all() else float("nan"),
               "n_scored": int(ok.sum()), "n_origins": int(ok.any(axis=1).sum())}
    return overall, bands


def backtest(values: pd.Series | None = None, *, horizon_days: float = 3, holdout_days: float | None = None,
             method: str = "seasonal_ets", hourly_values: pd.Series | None = None, kind: str = "gauge") -> Backtest:
    """Rolling-origin backtest (no re-estimation) of the ``horizon_days`` forecast.

    The forecaster, with its own interval calibration, is fitted on the hourly medians before the
    last ``holdout_days`` (default: ``horizon + 7 days``, shortened so the fit keeps at least
    ``max(72 h, 2 x horizon)`` hours, or two weeks when the history has five); then, with its
    parameters, seasonal indices and interval half-widths fixed, its states are updated hour by
    hour through the hold-out and a forecast ``1..horizon`` hours ahead is made from every hour of
    it (the training's last hour included). Each forecast uses only hours up to its origin.
    Scored: every (origin, hour ahead) pair with an observed actual; per 24-hour horizon band the
    coverage with a Wilson interval (see :class:`BandScore`) and MAE against the seasonal-naive
    forecast (one week, or one day, before the target, as known at the origin). MAPE is NaN when
    an actual value is within 1e-9 of zero. ``seasonal_naive`` is scored from its single origin.
    """
    H = int(round(horizon_days * 24))
    if not 0 < horizon_days <= 7:
        raise ValidationError("horizon_days must be in (0, 7]", path="horizon_days")
    h = _hourly_input(values, hourly_values, kind)
    n = len(h)
    need = max(MIN_HISTORY_HOURS, 2 * H)
    if holdout_days is None:
        floor = 336 if n >= 5 * 168 else need
        E = max(min(H + EVAL_ORIGINS, n - floor), H)
    else:
        E = int(round(holdout_days * 24))
        if E < 1:
            raise ValidationError("holdout_days must be positive", path="holdout_days")
    train = h.iloc[:-E]
    if len(train) < need:
        return Backtest(False, f"only {n} hours of history; a {H} h backtest needs at least {need + H} hours",
                        method, E, H)
    train = _grid(train)
    try:
        model = _fit(_make(method), train, H)
    except InsufficientDataError as exc:
        return Backtest(False, str(exc), method, E, H)
    if isinstance(model, SeasonalETSForecaster):
        rf = model.rolling(h, model.index_[-1], H)
        half = model.halfwidths(H)
        imethod = model.interval_method_
    else:
        p = model.predict(H)
        naive = p["mean"].to_numpy()[None, :]
        rf = RollingForecasts(pd.DatetimeIndex([model.index_[-1]]), naive,
                              _ahead(h.to_numpy(dtype=np.float64), np.array([len(train) - 1]), H), naive)
        half = {lv: (p[f"hi{round(lv * 100)}"] - p["mean"]).to_numpy() for lv in PI_LEVELS}
        imethod = "empirical"
    if not np.isfinite(rf.actual).any():
        return Backtest(False, "the hold-out has no data", method, E, H)
    overall, bands = score_rolling(rf, half)
    first = model.predict(H)
    first["actual"] = rf.actual[0]
    return Backtest(True, "", method, E, H, overall["n_origins"], overall["n_scored"], overall["coverage80"],
                    overall["coverage95"], overall["mae"], overall["mape"], overall["naive_mae"], bands, imethod,
                    first)

def robust_sigma_ratio(e: np.ndarray, k: float = WINSOR_K) -> float:
    """``RMS(e clipped at +/- k robust sd) / RMS(e)`` (1.0 when undefined): the factor that turns an
    RMS-based residual sd into one that a few extreme residuals (incident hours) cannot inflate."""
    e = np.asarray(e, dtype=np.float64)
    if e.size < 10:
        return 1.0
    rms = float(np.sqrt(np.mean(e * e)))
    rs = 1.4826 * float(np.median(np.abs(e - np.median(e))))
    if rms <= 0 or rs <= 0:
        return 1.0
    return float(np.sqrt(np.mean(np.clip(e, -k * rs, k * rs) ** 2))) / rms


def interval_z(level: float) -> float:
    """Normal quantile for a central ``level`` interval (1.2816 for 80%, 1.96 for 95%)."""
    return float(stats.norm.ppf(0.5 + level / 2))
