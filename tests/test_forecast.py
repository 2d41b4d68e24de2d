"""Forecasts: interval coverage on held-out data, no peeking, thin history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.analysis.forecast import FORECASTERS, SeasonalNaiveForecaster, backtest, forecast
from core.analysis.seasonality import seasonal_indices


def hourly_series(days: int, *, seed: int = 0, noise: float = 1.0, daily: float = 5.0, weekly: float = 2.0,
                  slope: float = 0.0, start: str = "2026-01-05") -> pd.Series:
    """Hourly values with known N(0, noise) noise around daily + weekly sines and a trend (per day)."""
    rng = np.random.default_rng(seed)
    n = 24 * days
    t = np.arange(n) / 24.0
    y = 50 + daily * np.sin(2 * np.pi * t) + weekly * np.sin(2 * np.pi * t / 7) + slope * t + rng.normal(0, noise, n)
    return pd.Series(y, index=pd.date_range(start, periods=n, freq="1h", tz="UTC"))


@pytest.mark.parametrize("seed", [0, 1])
def test_backtest_rolls_over_many_origins_and_reports_bands(seed):
    b = backtest(hourly_values=hourly_series(30, seed=seed, slope=0.1), horizon_days=3)
    # 720 hours: the fit keeps 336 (two weekly cycles), the last 240 hours hold the origins
    assert b.sufficient and b.horizon_hours == 72 and b.holdout_hours == 240 and b.n_origins == 240
    assert [x.label for x in b.bands] == ["1-24 h", "25-48 h", "49-72 h"]
    assert [x.n_origins for x in b.bands] == [240, 216, 192]      # origins whose band has any scored hour
    assert sum(x.n_scored for x in b.bands) == b.n_scored == sum(min(72, 240 - j) for j in range(240))
    for x in b.bands:                                              # reported as measured, each with its CI
        assert x.ci80[0] <= x.coverage80 <= x.ci80[1] and x.ci95[0] <= x.coverage95 <= x.ci95[1]
        assert 0.6 <= x.coverage80 <= 0.95 and x.coverage95 >= x.coverage80
        assert x.mae < x.naive_mae                                 # beats "same hour last week"
    assert 0.5 < b.mae < 1.5                  # noise sd 1: MAE of a perfect forecast is 0.80
    assert b.interval_method == "conformal"
    first = b.bands[0]
    assert (f"1-24 h: {first.coverage80:.0%} in the 80% band (95% CI {first.ci80[0]:.0%}-{first.ci80[1]:.0%})"
            in b.summary())
    assert "240 hourly origins" in b.summary()


def test_backtest_never_sees_the_hold_out():
    s = hourly_series(21, seed=4)
    poisoned = s.copy()
    poisoned.iloc[-72:] = poisoned.iloc[-72:] * 100     # change only the held-out tail
    a = backtest(hourly_values=s, horizon_days=1, holdout_days=3)
    b = backtest(hourly_values=poisoned, horizon_days=1, holdout_days=3)
    # the forecast from the first origin (the end of the fit) and the interval widths do not move
    np.testing.assert_allclose(a.frame["mean"], b.frame["mean"])
    np.testing.assert_allclose(a.frame["hi95"], b.frame["hi95"])
    assert b.coverage95 < 0.05 and a.coverage95 > 0.8


def test_rolling_forecasts_use_only_hours_up_to_their_origin():
    from core.analysis.forecast import SeasonalETSForecaster

    s = hourly_series(21, seed=6)
    m = SeasonalETSForecaster().fit(s.iloc[:-96], horizon=24)
    later = s.copy()
    later.iloc[-48:] += 50.0                          # change the last two days only
    a, b = m.rolling(s, m.index_[-1], 24), m.rolling(later, m.index_[-1], 24)
    assert len(a.origins) == 96 and a.origins[0] == m.index_[-1]
    keep = a.origins < s.index[-48]                  # origins before the change: identical forecasts
    np.testing.assert_allclose(a.mean[keep], b.mean[keep])
    assert not np.allclose(a.mean[~keep], b.mean[~keep])
    # the seasonal-naive yardstick is the value one week before the target, known at the origin
    y = s.to_numpy()
    p = len(s) - 96 - 1
    assert a.naive[0, 0] == y[p + 1 - 168] and np.isnan(a.actual[-1]).sum() == 23   # the last origin is the hour before the end


def test_conformal_quantile_hand_checked():
    from core.analysis.forecast import conformal_quantile, horizon_halfwidths

    e = np.arange(1.0, 20.0)                          # 19 errors: ranks ceil(20 x 0.8) = 16, ceil(20 x 0.95) = 19
    assert conformal_quantile(e, 0.80) == 16.0 and conformal_quantile(e, 0.95) == 19.0
    assert conformal_quantile(np.arange(10.0), 0.95) == np.inf       # 10 errors cannot give 95%
    E = np.tile(np.arange(1.0, 31.0)[:, None], (1, 3))                # 30 origins x 3 horizons
    E[5:, 2] = np.nan                                                 # horizon 3: only 5 origins
    hw = horizon_halfwidths(E, 0.80, pool=0, min_origins=24)
    assert hw[0] == hw[1] == 25.0 and np.isnan(hw[2])                 # ceil(31 x 0.8) = 25


def test_intervals_are_conformal_when_the_history_allows_else_model_based():
    from core.analysis.forecast import SeasonalETSForecaster

    m = SeasonalETSForecaster().fit(hourly_series(10), horizon=24)
    # 240 h, daily pattern only: the calibration model keeps 72 + 24 h, the last 144 h hold its origins
    assert m.interval_method_ == "conformal" and m.n_cal_origins_ == 144
    f = forecast(hourly_values=hourly_series(10), horizon_days=1)
    assert f.interval_method == "conformal" and "from 144 hourly rolling origins" in f.interval_text()
    short = forecast(hourly_values=hourly_series(4), horizon_days=1)       # 96 h: 24 left to calibrate
    assert short.sufficient and short.interval_method == "model" and "analytic" in short.interval_text()


def test_forecast_frame_shape_and_ordering():
    s = hourly_series(21, seed=5)
    f = forecast(hourly_values=s, horizon_days=2)
    assert f.sufficient and f.horizon_hours == 48 and f.periods == (24, 168)
    fr = f.frame
    assert list(fr.columns) == ["ts", "mean", "lo80", "hi80", "lo95", "hi95"] and len(fr) == 48
    assert fr["ts"].iloc[0] == s.index[-1] + pd.Timedelta("1h")
    assert (fr["lo95"] < fr["lo80"]).all() and (fr["lo80"] < fr["mean"]).all()
    assert (fr["mean"] < fr["hi80"]).all() and (fr["hi80"] < fr["hi95"]).all()
    # the daily pattern is carried forward: peak near 06:00, trough near 18:00 UTC
    day = fr.set_index(fr["ts"].dt.hour)["mean"].iloc[:24]
    assert day.idxmax() in (5, 6, 7) and day.idxmin() in (17, 18, 19)


def test_seasonal_indices_hand_checked():
    # 0 for hours 0-11 and 6 for hours 12-23, six days: mean 3, so indices -3 and +3
    y = np.tile(np.r_[np.zeros(12), np.full(12, 6.0)], 6)
    idx, k = seasonal_indices(pd.Series(y, index=pd.date_range("2026-01-05", periods=144, freq="1h", tz="UTC")), 24)
    np.testing.assert_allclose(idx, np.r_[np.full(12, -3.0), np.full(12, 3.0)])
    assert k == 5                       # the centred 2x24 moving average loses half a day at each end


def test_seasonal_naive_repeats_the_last_cycle():
    s = hourly_series(5, noise=0.0, weekly=0.0)
    m = SeasonalNaiveForecaster().fit(s)
    p = m.predict(30)
    np.testing.assert_allclose(p["mean"].to_numpy()[:24], s.to_numpy()[-24:])
    assert set(FORECASTERS) == {"seasonal_ets", "seasonal_naive"}


def test_thin_history_is_insufficient_not_a_guess():
    f = forecast(hourly_values=hourly_series(2), horizon_days=1)
    assert not f.sufficient and "72" in f.reason and f.frame.empty
    f = forecast(hourly_values=hourly_series(10), horizon_days=7)
    assert not f.sufficient and "336" in f.reason
    b = backtest(hourly_values=hourly_series(5), horizon_days=1, holdout_days=3)
    assert not b.sufficient and np.isnan(b.coverage80)
    gappy = hourly_series(10)
    gappy.iloc[::5] = np.nan                           # 20% of hours missing
    f = forecast(hourly_values=gappy, horizon_days=1)
    assert not f.sufficient and "missing" in f.reason


def test_mape_is_nan_when_actuals_touch_zero():
    s = hourly_series(14, noise=0.5) - 50               # crosses zero
    s.iloc[-5] = 0.0
    b = backtest(hourly_values=s, horizon_days=1, holdout_days=2)
    assert b.sufficient and np.isnan(b.mape) and np.isfinite(b.mae)


def test_robust_sigma_ratio_hand_checked():
    from core.analysis.forecast import robust_sigma_ratio

    # 98 residuals of +-1 and two of +-40; MAD sd = 1.4826, so the two are clipped at 4.4478:
    # sqrt((98 + 2 * 4.4478^2) / 100) / sqrt((98 + 2 * 1600) / 100)
    e = np.r_[np.tile([1.0, -1.0], 49), 40.0, -40.0]
    want = np.sqrt((98 + 2 * (3 * 1.4826) ** 2) / 100) / np.sqrt((98 + 2 * 1600) / 100)
    assert robust_sigma_ratio(e) == pytest.approx(want)
    assert robust_sigma_ratio(np.tile([1.0, -1.0], 50)) == 1.0      # nothing to clip


def test_an_incident_in_the_history_does_not_blow_up_the_intervals():
    """Two incident hours at +40 (40 noise sd) in the calibration window: two huge errors among
    hundreds barely move a conformal quantile, so the band keeps near its nominal coverage."""
    h = hourly_series(30, seed=4, slope=0.1)
    h.iloc[500:502] += 40.0                          # day 20, inside the calibration window
    b = backtest(hourly_values=h, horizon_days=1, holdout_days=3)
    assert 0.7 <= b.coverage80 <= 0.92, b.summary()


@pytest.mark.parametrize("seed", [0, 2])
def test_a_level_shift_is_undone_before_the_seasonal_indices(seed):
    from core.analysis.forecast import SeasonalETSForecaster

    h = hourly_series(35, seed=seed, weekly=8.0)
    at = pd.Timestamp("2026-01-25", tz="UTC")                # day 20: a +15 step (a deploy)
    h[h.index >= at] += 15.0
    train, test = h.iloc[:-72], h.iloc[-72:]
    on = SeasonalETSForecaster().fit(train)
    off = SeasonalETSForecaster(undo_shifts=False).fit(train)
    assert [p.ts for p in on.shifts_.points] == [at] and off.shifts_.points == []
    mae = {k: np.abs(m.predict(72)["mean"].to_numpy() - test.to_numpy()).mean() for k, m in (("on", on), ("off", off))}
    assert mae["on"] < 0.7 * mae["off"], mae                 # measured 0.76 vs 1.44 and 0.85 vs 1.38
    # under 4 weeks the change-point model has no weekly pattern: nothing is undone
    short = SeasonalETSForecaster().fit(h.iloc[:27 * 24])
    assert short.periods_ == (24, 168) and short.shifts_.points == []


def test_a_few_missing_hours_keep_the_forecast_and_its_calibration():
    """Three scattered missing hours in 33 days: the weekly moving average tolerates up to 7 missing
    hours per window (before, one missing hour erased a week of it and the forecast was refused)."""
    s = hourly_series(33, seed=8)
    s.iloc[[464, 224, 790]] = np.nan
    f = forecast(hourly_values=s, horizon_days=2)
    assert f.sufficient and f.interval_method == "conformal" and not f.frame.isna().any().any()
    b = backtest(hourly_values=s, horizon_days=2)
    assert b.sufficient and b.n_origins == 216
    # the evaluation stretch is the last 216 of 792 hours: hour 790 is missing, a target of 48 origins
    assert b.n_scored == sum(min(48, 216 - j) for j in range(216)) - 48
