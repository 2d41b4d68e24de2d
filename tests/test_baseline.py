"""Baselines: confidence intervals that cover, raw percentiles, exclusions, counters, thin data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import signal, stats

from core.analysis.baseline import (
    aggregate,
    autocorrelation_time,
    compute_baseline,
    counter_to_rate,
    exclusion_mask,
    order_statistic_ranks,
    outlier_flags,
    require_sufficient,
    window_stats,
)
from core.errors import InsufficientDataError, ValidationError


def series(values, start="2026-01-05", freq="1min") -> pd.Series:
    values = np.asarray(values, dtype=float)
    return pd.Series(values, index=pd.date_range(start, periods=values.size, freq=freq, tz="UTC"))


def ar1(n: int, phi: float, rng: np.random.Generator) -> np.ndarray:
    e = rng.standard_normal(n)
    e[0] /= np.sqrt(1 - phi ** 2)          # start in the stationary distribution
    return signal.lfilter([1.0], [1.0, -phi], e)


# ----------------------------------------------------------------------------- order statistics
def test_order_statistic_ranks_match_hand_computed_binomial_values():
    # n=10: P(2 <= Y <= 8) for Y ~ Bin(10, .5) = F(8) - F(1) = 1013/1024 - 11/1024 = 0.978515625
    j, k, cover = order_statistic_ranks(10, 0.5, 0.95)
    assert (j, k) == (2, 9)
    assert cover == pytest.approx(1002 / 1024)
    # n=6: (x_(1), x_(6)) covers 1 - 2/64
    assert order_statistic_ranks(6, 0.5, 0.95)[:2] == (1, 6)
    assert order_statistic_ranks(6, 0.5, 0.95)[2] == pytest.approx(62 / 64)
    # n=5: even (x_(1), x_(5)) only covers 1 - 2/32 = 0.9375 < 0.95 -> no interval
    j, k, _ = order_statistic_ranks(5, 0.5, 0.95)
    assert j < 1 or k > 5


def test_median_ci_contains_true_median_on_seeded_sample():
    rng = np.random.default_rng(7)
    s = series(rng.exponential(1.0, 400))
    b = compute_baseline(s)
    assert b.sufficient
    assert b.median.lower <= np.log(2) <= b.median.upper
    assert b.median.lower < b.median.value < b.median.upper
    assert b.mean.lower <= 1.0 <= b.mean.upper


def test_median_and_mean_ci_coverage_on_independent_data():
    rng = np.random.default_rng(11)
    hits_med = hits_mean = 0
    runs = 200
    for _ in range(runs):
        b = compute_baseline(series(rng.exponential(1.0, 200)), n_boot=20)
        hits_med += b.median.lower <= np.log(2) <= b.median.upper
        hits_mean += b.mean.lower <= 1.0 <= b.mean.upper
    assert 0.92 <= hits_med / runs <= 0.995
    assert 0.90 <= hits_mean / runs <= 0.99


def test_autocorrelation_is_accounted_for_in_median_ci():
    rng = np.random.default_rng(3)
    hits = hits_naive = 0
    runs = 100
    for _ in range(runs):
        x = ar1(2000, 0.9, rng)
        b = compute_baseline(series(x), n_boot=20)
        hits += b.median.lower <= 0.0 <= b.median.upper
        xs = np.sort(x)
        j, k, _ = order_statistic_ranks(x.size, 0.5)
        hits_naive += xs[j - 1] <= 0.0 <= xs[k - 1]
    # tau of AR(1) with phi=.9 is (1+.9)/(1-.9) = 19
    assert 12 < b.tau < 30
    assert hits / runs >= 0.88
    assert hits_naive / runs < 0.6    # the iid interval would be badly overconfident


def test_autocorrelation_time_of_white_noise_is_about_one():
    rng = np.random.default_rng(0)
    assert autocorrelation_time(rng.standard_normal(20000)) < 1.2


def test_spread_ci_covers_true_values():
    rng = np.random.default_rng(5)
    runs, hits_sd, hits_iqr = 60, 0, 0
    true_iqr = 2 * stats.norm.ppf(0.75) * 2.0
    for i in range(runs):
        b = compute_baseline(series(rng.normal(0, 2.0, 1500)), seed=i)
        hits_sd += b.std.lower <= 2.0 <= b.std.upper
        hits_iqr += b.iqr.lower <= true_iqr <= b.iqr.upper
    assert hits_sd / runs >= 0.85
    assert hits_iqr / runs >= 0.85
    # unscaled MAD of N(0, 2): 2 * 0.6745
    assert b.mad.value == pytest.approx(2 * stats.norm.ppf(0.75), rel=0.1)


# ----------------------------------------------------------------------------- percentiles, windows
def test_percentiles_come_from_raw_points_not_window_averages():
    # two halves with very different spread: the mean of per-window p95s is not the overall p95
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, 600), rng.normal(0, 10, 600)])
    s = series(x)
    b = compute_baseline(s)
    assert b.percentiles[0.95].value == pytest.approx(np.quantile(x, 0.95))
    w = window_stats(s, "5h", min_samples=10)
    assert not np.isclose(w["p95"].mean(), np.quantile(x, 0.95), rtol=0.05)


def test_window_stats_hand_checked():
    s = series(np.arange(1, 11))                   # minutes 0..9, values 1..10
    w = window_stats(s, "5m", min_samples=5)
    assert list(w["n"]) == [5, 5]
    assert list(w["median"]) == [3.0, 8.0]
    assert list(w["mean"]) == [3.0, 8.0]
    assert list(w["min"]) == [1.0, 6.0] and list(w["max"]) == [5.0, 10.0]
    assert w["p90"].iloc[0] == pytest.approx(4.6)      # linear interpolation on 1..5
    assert w["iqr"].iloc[0] == pytest.approx(2.0)
    assert w["mad"].iloc[0] == pytest.approx(1.0)
    assert w["std"].iloc[0] == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1))
    # 5 points cannot give a 95% order-statistic interval for the median: said, not guessed
    assert w["median_lo"].isna().all()
    # with min_samples above the window size every statistic is withheld
    w = window_stats(s, "5m", min_samples=6)
    assert not w["sufficient"].any() and w["median"].isna().all()


def test_histogram_quantile_series_is_never_averaged():
    s = series(np.arange(120.0))
    w = window_stats(s, "1h", kind="histogram_quantile")
    assert not any(c.startswith("mean") for c in w.columns)
    assert list(w["max"]) == [59.0, 119.0]
    with pytest.raises(ValidationError):
        aggregate(s, "1h", "mean", kind="histogram_quantile")
    assert list(aggregate(s, "1h", "max", kind="histogram_quantile")) == [59.0, 119.0]
    b = compute_baseline(s, kind="histogram_quantile")
    assert b.mean is None and b.median.value == pytest.approx(59.5)


def test_aggregate_keeps_empty_buckets_missing():
    s = series(np.ones(300))
    s = s[(s.index < "2026-01-05 01:00") | (s.index >= "2026-01-05 03:00")]
    h = aggregate(s, "1h")
    assert h.isna().sum() == 2 and (h.dropna() == 1.0).all()


# ----------------------------------------------------------------------------- exclusions
def test_incidents_and_masks_are_excluded_by_default():
    x = np.zeros(200)
    x[50:80] = 100.0
    x[150:160] = -50.0
    s = series(x)
    inc = pd.DataFrame({"start": [s.index[50]], "end": [s.index[79]], "series": ["m"]})
    mask = np.zeros(200, dtype=bool)
    mask[150:160] = True
    b = compute_baseline(s, incidents=inc, mask=mask, series="m")
    assert b.n_excluded == 40 and b.n == 160
    assert b.percentiles[0.99].value == 0.0 and b.median.value == 0.0
    b_all = compute_baseline(s, incidents=inc, mask=mask, exclude=False)
    assert b_all.n == 200 and b_all.percentiles[0.99].value == 100.0
    # an incident of another series does not apply
    other = inc.assign(series="other")
    assert compute_baseline(s, incidents=other, series="m").n_excluded == 0


def test_exclusion_mask_bounds_are_inclusive_and_validated():
    idx = pd.date_range("2026-01-05", periods=10, freq="1min", tz="UTC")
    inc = pd.DataFrame({"start": [idx[2]], "end": [idx[4]]})
    assert exclusion_mask(idx, inc).tolist() == [False, False, True, True, True] + [False] * 5
    with pytest.raises(ValidationError):
        exclusion_mask(idx, pd.DataFrame({"begin": [idx[0]]}))
    with pytest.raises(ValidationError):
        exclusion_mask(idx, mask=np.ones(3, dtype=bool))


# ----------------------------------------------------------------------------- outliers
def test_outlier_flags_hand_checked():
    s = series([1, 2, 3, 4, 5, 6, 7, 8, 9, 100, np.nan])
    iqr = outlier_flags(s, "iqr")          # Q1 3.25, Q3 7.75 -> fences -3.5 .. 14.5
    mad = outlier_flags(s, "mad")          # median 5.5, MAD 2.5 -> |100-5.5|/3.71 = 25.5
    assert iqr.tolist() == [False] * 9 + [True, False]
    assert mad.tolist() == [False] * 9 + [True, False]
    with pytest.raises(ValidationError):
        outlier_flags(s, "zscore")


# ----------------------------------------------------------------------------- counters
def test_counter_to_rate_handles_resets_and_gaps():
    s = series([0, 10, 20, 5, 15], freq="10s")
    r = counter_to_rate(s)
    assert np.isnan(r.iloc[0])
    assert r.iloc[1:].tolist() == [1.0, 1.0, 0.5, 1.0]   # reset: the 5 counted since the reset
    g = counter_to_rate(series([0, 10, np.nan, 30], freq="10s"))
    assert np.isnan(g.iloc[2]) and g.iloc[3] == pytest.approx(1.0)   # 20 over 20 s, NaN kept
    b = compute_baseline(series(np.arange(0, 3000, 60.0), freq="1min"), kind="counter")
    assert b.median.value == pytest.approx(1.0)          # 60 per minute = 1 per second


# ----------------------------------------------------------------------------- thin data
def test_too_few_points_gives_no_number():
    b = compute_baseline(series([1.0, 2.0, np.nan, 4.0] * 3))
    assert not b.sufficient
    assert b.median is None and b.mean is None and b.percentiles == {}
    assert "9 usable points" in b.reason and "at least 30" in b.reason
    with pytest.raises(InsufficientDataError):
        require_sufficient(b)


def test_extreme_percentile_on_short_series_has_no_interval():
    rng = np.random.default_rng(2)
    b = compute_baseline(series(rng.normal(size=100)))
    p99 = b.percentiles[0.99]
    assert np.isfinite(p99.value) and not p99.sufficient and np.isnan(p99.lower)
    assert "too few" in p99.reason


def test_bad_input_is_rejected_with_a_message():
    with pytest.raises(ValidationError):
        compute_baseline(pd.Series([1.0, 2.0]))
    with pytest.raises(ValidationError):
        compute_baseline(series(np.ones(50)), kind="histogram")


def test_window_std_keeps_its_precision_on_large_values():
    # 3e9 + N(0, 1) per minute: sum(x^2) - n mean^2 gave hourly std 47.1, 0.0, 33.3, 0.0
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, 4 * 60)
    base = window_stats(series(x), "1h")
    big = window_stats(series(3e9 + x), "1h")
    want = [np.std(x[i * 60:(i + 1) * 60], ddof=1) for i in range(4)]
    np.testing.assert_allclose(big["std"], want, rtol=1e-6)
    np.testing.assert_allclose(big["std"], base["std"], rtol=1e-6)
    np.testing.assert_allclose(big["mean"] - 3e9, base["mean"], atol=1e-5)
    np.testing.assert_allclose(big["mean_hi"] - big["mean_lo"], base["mean_hi"] - base["mean_lo"], rtol=1e-5)
