"""Calibration checked by simulation (seeded): forecast interval coverage per horizon band, trend-test
size and power. Small run counts here (seconds); ``bench/calibration.py`` and the ``bench`` tests run
the large ones. The figures the tolerances guard are in the README."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.analysis.calibration import (
    Coverage,
    ar1,
    rolling_coverage,
    seasonal_series,
    simulated_coverage,
    trend_rejections,
)


def _within(cov: Coverage, tol: float) -> None:
    t = cov.table()
    assert list(t) == ["1-24", "25-48", "49-72"]
    for band, v in t.items():
        assert abs(v["coverage80"] - 0.80) <= tol, (band, t)
        assert abs(v["coverage95"] - 0.95) <= tol, (band, t)


def test_ar1_noise_has_the_stationary_variance_and_lag_one_correlation():
    x = ar1(200_000, 0.6, 1.0, np.random.default_rng(0))
    assert np.var(x) == pytest.approx(1 / (1 - 0.36), rel=0.02)
    assert np.corrcoef(x[1:], x[:-1])[0, 1] == pytest.approx(0.6, abs=0.01)


# 30 runs: the 24 hours of a band in one run are strongly correlated, so a band's coverage has a
# sampling sd of about 3 points; the 5-point claim itself is checked on 200 runs (bench marker below,
# and bench/calibration.py). 7 points here still fails the old intervals (99% in 25-72 h).
@pytest.mark.slow
def test_forecast_80_and_95_coverage_within_7_points_per_horizon_band_stationary_ar06_30_runs():
    _within(simulated_coverage(30, seed=100), 0.07)


@pytest.mark.slow
def test_forecast_80_and_95_coverage_within_7_points_per_horizon_band_with_trend_30_runs():
    _within(simulated_coverage(30, seed=200, slope=0.3), 0.07)


def test_old_model_intervals_were_too_wide_after_day_one():
    """The defect the conformal intervals fix, kept as a known answer: the model's own ETS interval
    on the same series covers nearly every hour after the first day (8 runs)."""
    from core.analysis.forecast import SeasonalETSForecaster

    inside = []
    for r in range(8):
        s = seasonal_series(672 + 72, seed=300 + r)
        m = SeasonalETSForecaster(calibrate=False).fit(s.iloc[:672], horizon=72)
        p = m.predict(72).iloc[24:]
        y = s.iloc[672 + 24:].to_numpy()
        inside.append(np.mean((y >= p["lo80"].to_numpy()) & (y <= p["hi80"].to_numpy())))
    assert np.mean(inside) > 0.9


@pytest.mark.slow
def test_trend_test_size_at_most_6pct_at_5pct_nominal_phi_09_150_runs():
    k, n = trend_rejections(150, phi=0.9, seed=400)
    assert k / n <= 0.06, (k, n)


@pytest.mark.slow
def test_trend_test_size_at_most_6pct_at_5pct_nominal_phi_05_150_runs():
    k, n = trend_rejections(150, phi=0.5, seed=500)
    assert k / n <= 0.06, (k, n)


@pytest.mark.slow
def test_trend_test_power_against_one_long_run_sd_per_month_phi_05_40_runs():
    # slope 0.06/day = 0.03 long-run sd (sd / (1 - phi) = 2) per day: 0.9 long-run sd over 30 days
    k, n = trend_rejections(40, phi=0.5, slope=0.06, seed=600)
    assert k / n >= 0.6, (k, n)


def test_trend_reports_its_correction_and_seasonal_removal():
    from core.analysis.seasonality import classical_seasonal
    from core.analysis.trend import trend_test

    s = seasonal_series(720, seed=7, phi=0.9)
    seas, periods, absorbed = classical_seasonal(s)
    assert periods == (24, 168) and absorbed == pytest.approx(1 / 29 + 1 / 3)
    t = trend_test(hourly_values=s, seasonal=seas, seasonal_noise=absorbed, seasonality_removed="daily and weekly")
    assert t.variance_factor > 10                                   # AR(0.9): about 19 x (1 + 0.37)
    assert "AR(1)" in t.correction or "Hamed-Rao" in t.correction
    assert "estimated seasonal indices" in t.correction and t.seasonality_removed == "daily and weekly"


@pytest.mark.bench
def test_bench_coverage_on_nab_rolling_origins_within_5_points():
    import sys

    from tests.conftest import NAB_DIR

    if not (NAB_DIR / "data").exists():
        pytest.skip(f"NAB reference data not found at {NAB_DIR}")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.calibration import nab_hourly

    cov = Coverage()
    for h in nab_hourly(NAB_DIR).values():
        rolling_coverage(h, step_hours=72, cov=cov)
    _within(cov, 0.05)


@pytest.mark.bench
def test_bench_simulated_coverage_200_runs_within_5_points():
    _within(simulated_coverage(200, seed=10_000), 0.05)
    _within(simulated_coverage(200, seed=10_000, slope=0.3), 0.05)


def test_rolling_coverage_scores_only_unseen_hours():
    h = seasonal_series(35 * 24, seed=9)
    cov = rolling_coverage(h, horizon_hours=24, min_history_hours=28 * 24, step_hours=48)
    assert cov.runs == 4 and cov.table()["1-24"]["scored"] == 4 * 24
    poisoned = h.copy()
    poisoned.iloc[-24:] = np.nan                      # the last origin's targets: nothing to score
    cov2 = rolling_coverage(poisoned, horizon_hours=24, min_history_hours=28 * 24, step_hours=48)
    assert cov2.table()["1-24"]["scored"] == 3 * 24
    assert isinstance(h.index, pd.DatetimeIndex)


# ----------------------------------------------------------------------------- the analyse command
def _write_csv(tmp_path, hours: int = 24 * 21, seed: int = 11) -> Path:
    s = seasonal_series(hours, seed=seed)
    p = tmp_path / "lat.csv"
    pd.DataFrame({"timestamp": s.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": s.to_numpy()}).to_csv(p, index=False)
    return p


def test_analyse_command_prints_the_pages_numbers_as_json(tmp_path, capsys):
    import json

    from core.__main__ import main
    from core.analysis.pipeline import analyse_range, forecast_from
    from core.data.ingest import load_metrics

    p = _write_csv(tmp_path)
    assert main(["analyse", str(p), "--horizon", "36h", "--json"]) == 0
    out, err = capsys.readouterr()
    d = json.loads(out)
    assert "lat.csv: 504 rows read" in err
    assert set(d["trend"]) >= {"slope_per_day", "p_value", "significant", "correction", "seasonality_removed"}
    assert len(d["forecast"]) == 36 and set(d["forecast"][0]) == {"ts", "mean", "lo80", "hi80", "lo95", "hi95"}
    assert d["forecast"][0]["ts"] == "2026-01-26T00:00:00Z"          # the hour after the last point
    assert d["forecast_info"]["interval_method"] == "conformal" and d["backtest"]["sufficient"]
    assert [b["hours"] for b in d["backtest"]["bands"]] == ["1-24 h", "25-36 h"]
    # the same numbers as the page's calls on the same points
    pts = load_metrics(p).points
    v = pd.Series(pts["value"].to_numpy(), index=pd.DatetimeIndex(pts["ts"]))
    fc, bt = forecast_from(v, horizon_days=1.5)
    assert d["forecast"][5]["hi95"] == pytest.approx(fc.frame["hi95"].iloc[5])
    assert d["backtest"]["coverage80"] == pytest.approx(bt.coverage80)
    assert d["trend"]["p_value"] == pytest.approx(analyse_range(v, horizon_days=None, detector=None).trend.p_value)


def test_analyse_command_rejects_bad_input_with_status_2(tmp_path, capsys):
    from core.__main__ import main

    p = _write_csv(tmp_path, hours=24 * 5)
    assert main(["analyse", str(p), "--horizon", "9d"]) == 2
    assert "--horizon" in capsys.readouterr().err
    assert main(["analyse", str(p), "--series", "nope"]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,value\nnot-a-time,1\n")
    assert main(["analyse", str(bad)]) == 2
    # a horizon over half the history is shortened, as on the page, and the text says so
    assert main(["analyse", str(p), "--horizon", "72h"]) == 0
    assert "forecast: 48 h of hourly medians, shortened from 72 h" in capsys.readouterr().out
    # thin data: the text says so instead of a forecast
    assert main(["analyse", str(_write_csv(tmp_path, hours=48)), "--horizon", "24h"]) == 0
    assert "forecast: insufficient data" in capsys.readouterr().out
