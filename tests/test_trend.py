"""Trend significance, Theil-Sen slope and change points: known answers, clean-noise silence."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from scipy import signal, stats

from core.analysis.trend import (
    MAX_SLOPE_PAIRS,
    binary_segmentation,
    change_points,
    mann_kendall_s,
    pairwise_slopes,
    trend_test,
)


def minute_series(days: float, *, seed: int = 0, slope: float = 0.0, noise: float = 3.0, ar: float = 0.0,
                  daily: float = 0.0, weekly: float = 0.0, shift: float = 0.0,
                  shift_at: str | None = None, start: str = "2026-01-01") -> pd.Series:
    """Seeded 1-minute series: level 100 + slope/day + daily/weekly sines + (AR(1)) noise + a shift."""
    rng = np.random.default_rng(seed)
    n = int(days * 1440)
    idx = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    t = np.arange(n) / 1440.0
    e = rng.normal(0, noise, n)
    if ar:
        e = signal.lfilter([1.0], [1.0, -ar], e)
    y = (100 + slope * t + daily * np.sin(2 * np.pi * t) + weekly * np.sin(2 * np.pi * t / 7) + e)
    if shift_at is not None:
        y[idx >= pd.Timestamp(shift_at, tz="UTC")] += shift
    return pd.Series(y, index=idx)


# ----------------------------------------------------------------------------- trend
def test_known_slope_is_recovered_within_its_ci_and_stated_plainly():
    s = minute_series(14, slope=2.0, daily=10.0)
    r = trend_test(s, unit="ms")
    assert r.sufficient and r.significant and r.direction == "rising"
    assert r.slope_lower <= 2.0 <= r.slope_upper
    assert r.slope_per_day == pytest.approx(2.0, abs=0.3)
    assert r.verdict.startswith("rising ") and "ms/day, significant" in r.verdict
    falling = trend_test(minute_series(14, slope=-2.0, seed=1), unit="ms")
    assert falling.direction == "falling" and falling.slope_upper < 0


def test_slope_matches_scipy_theilslopes_and_ci_is_never_narrower():
    s = minute_series(10, slope=0.5, seed=4)
    h = s.resample("1h").median()
    x = (np.arange(len(h))) / 24.0
    ref = stats.theilslopes(h.to_numpy(), x, 0.95)
    r = trend_test(s)
    assert r.slope_per_day == pytest.approx(ref.slope)
    assert r.variance_factor >= 1.0
    assert r.slope_lower <= ref.low_slope + 1e-12 and r.slope_upper >= ref.high_slope - 1e-12


def test_white_noise_is_not_called_a_trend():
    p = np.array([trend_test(minute_series(7, seed=i)).p_value for i in range(100, 200)])
    assert (p < 0.05).sum() <= 8          # 5% expected; 4 of these 100 seeds (4.25% over 400 seeds)
    r = trend_test(minute_series(7, seed=101), unit="ms")
    assert not r.significant and r.verdict.startswith("no significant trend (p=")
    assert "ms/day, 95% CI" in r.verdict


def test_autocorrelated_noise_is_not_called_a_trend():
    res = [trend_test(minute_series(7, seed=i, ar=0.99, noise=0.3)) for i in range(100, 200)]
    corrected = sum(r.p_value < 0.05 for r in res)
    naive = sum(r.p_value_iid < 0.05 for r in res)
    assert corrected <= 8                 # the Hamed-Rao / AR(1) correction keeps it near 5% (3 here)
    assert naive >= 15                    # the plain Mann-Kendall test is fooled (25 here)
    assert all(r.variance_factor > 1 for r in res)


def test_trend_on_thin_data_says_so():
    r = trend_test(minute_series(0.3))    # 7 hourly points
    assert not r.sufficient and np.isnan(r.slope_per_day)
    assert "at least 12" in r.reason


def test_mann_kendall_s_matches_the_pairwise_sum_with_ties():
    rng = np.random.default_rng(8)
    for n in (2, 5, 60, 400):
        x = np.arange(n, dtype=float)
        y = rng.integers(0, 4, n).astype(float)              # many ties in y
        iu, ju = np.triu_indices(n, 1)
        assert mann_kendall_s(x, y) == np.sum(np.sign(y[ju] - y[iu]) * np.sign(x[ju] - x[iu]))
    assert mann_kendall_s(np.arange(4.0), np.array([1.0, 3.0, 2.0, 4.0])) == 4.0   # 5 concordant - 1


def test_sampled_theil_sen_is_close_to_the_exact_one():
    rng = np.random.default_rng(9)
    x = np.arange(1600) / 24.0                               # 1,279,200 pairs > MAX_SLOPE_PAIRS
    y = 0.05 * x + rng.normal(0, 3, x.size)
    sampled, total = pairwise_slopes(x, y)
    exact, total_exact = pairwise_slopes(x, y, max_pairs=10 ** 7)
    assert total == total_exact == 1600 * 1599 // 2 and sampled.size == 1_000_000 == MAX_SLOPE_PAIRS
    for q in (0.025, 0.5, 0.975):                            # a few 1e-4 in rank fraction
        lo, hi = np.quantile(exact, [q - 0.002, q + 0.002])
        assert lo <= np.quantile(sampled, q) <= hi
    assert np.array_equal(sampled, pairwise_slopes(x, y)[0])  # fixed seed: reproducible


def test_a_year_of_hourly_points_stays_fast_and_small():
    # every pair of 8760 points was built before: 38 million pairs, ~2 GB
    rng = np.random.default_rng(10)
    idx = pd.date_range("2025-01-01", periods=365 * 24, freq="1h", tz="UTC")
    t = np.arange(idx.size) / 24.0
    h = pd.Series(100 + 0.01 * t + 5 * np.sin(2 * np.pi * t) + rng.normal(0, 3, idx.size), index=idx)
    tracemalloc.start()
    c = time.process_time()
    r = trend_test(hourly_values=h)
    cpu = time.process_time() - c
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert cpu < 1.0 and peak < 200e6, (cpu, peak)           # measured 0.17 s, 68 MB
    assert r.significant and r.slope_lower <= 0.01 <= r.slope_upper


def test_constant_series_has_no_trend():
    r = trend_test(pd.Series(5.0, index=pd.date_range("2026-01-01", periods=3000, freq="1min", tz="UTC")))
    assert r.sufficient and r.slope_per_day == 0 and not r.significant


# ----------------------------------------------------------------------------- change points
def test_binary_segmentation_finds_a_step_not_a_ramp():
    x = np.arange(100) / 24.0
    step = np.r_[np.zeros(50), np.full(50, 10.0)]
    assert binary_segmentation(step, x, penalty=10.0, min_size=5) == [50]
    assert binary_segmentation(3.0 * x, x, penalty=1e-6, min_size=5) == []      # a trend is not a shift
    assert binary_segmentation(step + 3.0 * x, x, penalty=10.0, min_size=5) == [50]


def test_level_shift_found_at_the_right_hour_with_the_right_size():
    s = minute_series(30, seed=3, slope=0.5, daily=10.0, weekly=4.0, shift=5.0, shift_at="2026-01-18 06:00")
    c = change_points(s)
    assert c.sufficient and c.periods == (24, 168)
    assert len(c.points) == 1
    cp = c.points[0]
    assert abs(cp.ts - pd.Timestamp("2026-01-18 06:00", tz="UTC")) <= pd.Timedelta("2h")
    assert cp.change == pytest.approx(5.0, abs=1.0)
    assert cp.level_after - cp.level_before == pytest.approx(cp.change)
    assert c.slope_per_day == pytest.approx(0.5, abs=0.15)
    frame = c.to_frame()
    assert list(frame.columns) == ["ts", "level_before", "level_after", "change"] and len(frame) == 1


@pytest.mark.parametrize("kind", ["white", "ar1", "seasonal_trend"])
def test_clean_noise_gives_no_change_points(kind):
    found = 0
    for seed in range(8):
        if kind == "white":
            s = minute_series(30, seed=seed)
        elif kind == "ar1":
            s = minute_series(30, seed=seed, ar=0.99, noise=0.3)
        else:
            s = minute_series(30, seed=seed, slope=1.5, daily=40.0, weekly=15.0, noise=8.0)
        found += len(change_points(s).points)
    assert found == 0


def test_change_points_on_thin_data_say_so():
    c = change_points(minute_series(0.5))
    assert not c.sufficient and c.points == [] and "at least 24" in c.reason


def _multiplicative(seed: int, factor: float = 1.45, at_hour: int = 22 * 24 + 11) -> tuple[pd.Series, pd.Timestamp]:
    """30 days of hourly p95-like latency: 150 ms x (daily load swing) x (quieter weekends) x lognormal
    noise, and a deploy multiplying everything (level *and* daily swing) by ``factor`` from one hour on."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2026-10-01", periods=30 * 24, freq="1h", tz="UTC")
    hour = np.arange(idx.size) % 24
    load = (1 + 0.45 * np.sin(2 * np.pi * (hour - 8) / 24)) * np.where(idx.day_of_week >= 5, 0.75, 1.0)
    y = 150 * (1 + 0.25 * (load - 1)) * np.exp(0.013 * rng.standard_normal(idx.size))
    y[at_hour:] *= factor
    return pd.Series(y, index=idx), idx[at_hour]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_multiplicative_shift_is_one_change_not_a_staircase(seed):
    """The deploy also scales the daily swing; on the linear scale the misfit is a daily wave that was
    cut into alternating shifts every 12 h (svc-099 on the benchmark database: 11 shifts for 2). The
    log scale wins the likelihood comparison and finds the one shift, reported in ms."""
    h, when = _multiplicative(seed)
    c = change_points(hourly_values=h)
    assert c.scale == "log" and [p.ts for p in c.points] == [when]
    p = c.points[0]
    assert p.level_after / p.level_before == pytest.approx(1.45, abs=0.03)
    assert p.change == pytest.approx(p.level_after - p.level_before) and p.change > 40
    linear = change_points(hourly_values=h, scale="linear")
    assert len(linear.points) > 1                     # the staircase the log scale avoids
    # an additive shift in an additive series keeps the linear scale
    add = minute_series(14, daily=10.0, shift=8.0, shift_at="2026-01-09 05:00", seed=seed)
    a = change_points(add)
    assert a.scale == "linear" and [str(q.ts) for q in a.points] == ["2026-01-09 05:00:00+00:00"]
