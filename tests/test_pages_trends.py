"""Trends & anomalies page: the core calls behind it (range choices, display values, the range
analysis with earlier context), figure builders, cached analysis, AppTest render and the 2 s benchmark."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = ROOT / "data" / "bench" / "trends_100x30d.duckdb"


def build_bench_db(path: Path = BENCH_DB) -> Path:
    """The 100-service benchmark database (latency_p95_ms only, 30 days at 1 minute, ~4.3M points).

    Built once with :mod:`data.generate` and reused when present (``data/bench`` is gitignored).
    """
    if path.exists():
        return path
    from core.data.store import Store
    from data.generate import METRICS, generate_fleet

    points, inc = generate_fleet(services=100, days=30, metrics=["latency_p95_ms"])
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    with Store(tmp) as s:
        s.write_points(points, name="bench-fleet", sha256="bench-fleet-100x30d", fmt="long", actor="bench")
        kind, unit = METRICS["latency_p95_ms"]
        for key in pd.unique(points["series"]):
            s.set_series_meta(key, unit=unit, kind=kind)
        s.add_incidents(inc, source="bench-incidents", actor="bench")
    tmp.rename(path)
    return path


# ---------------------------------------------------------------------------- small database
TINY = "tiny_metric"
STUCK = "stuck_metric"
SMALL_KEYS = ('latency_p95_ms{service="api-gateway"}', 'latency_p95_ms{service="checkout"}')


def build_trends_small_db(path: Path) -> Path:
    """2 services x 7 days of latency_p95_ms at 5 minutes (with the generator's incidents), a 5-point
    series ``tiny_metric`` that is too short for any analysis, and ``stuck_metric``: 3 days of noise
    at 5 minutes whose exporter froze for 3 hours (36 identical values) on the last day."""
    from core.data.store import Store
    from data.generate import generate_fleet

    points, inc = generate_fleet(services=2, days=7, freq="5min", metrics=["latency_p95_ms"])
    tiny = pd.DataFrame({"series": TINY, "ts": pd.date_range("2026-10-07", periods=5, freq="1min", tz="UTC"),
                         "value": [1.0, 2.0, 3.0, 4.0, 5.0]})
    rng = np.random.default_rng(5)
    v = 50 + rng.normal(0, 2, 3 * 288)
    v[700:736] = v[700]
    stuck = pd.DataFrame({"series": STUCK, "ts": pd.date_range("2026-10-05", periods=3 * 288, freq="5min",
                                                                tz="UTC"), "value": v})
    with Store(path) as s:
        s.write_points(pd.concat([points, tiny, stuck], ignore_index=True), name="small", sha256="trends-small",
                       fmt="long", actor="test")
        for key in SMALL_KEYS:
            s.set_series_meta(key, unit="ms", kind="histogram_quantile")
        if len(inc):
            s.add_incidents(inc, source="small-incidents", actor="test")
    return path


@pytest.fixture(scope="module")
def small_trends_db(tmp_path_factory):
    from tests.apptest_util import studio_db

    path = build_trends_small_db(tmp_path_factory.mktemp("trends") / "small.duckdb")
    with studio_db(path):
        yield path


def run_page(db: Path, timeout: float = 120):
    from streamlit.testing.v1 import AppTest

    from tests.apptest_util import studio_db

    with studio_db(db):
        at = AppTest.from_file(str(ROOT / "pages" / "trends.py"), default_timeout=timeout)
        at.run()
    return at


def page_text(at) -> str:
    from tests.apptest_util import texts

    return texts(at)


def run_range(pts: pd.DataFrame, key: str, kind: str = "gauge", unit: str = "", **kw):
    """core.analysis.pipeline.analyse_range of one series of a points frame."""
    from core.analysis.pipeline import analyse_range
    from core.data.frame import series_values

    return analyse_range(series_values(pts, key), kind=kind, unit=unit, series=key, **kw)


# ---------------------------------------------------------------------------- choices
def test_filter_keys_matches_every_word_case_insensitively():
    from core.analysis.explore import filter_keys

    keys = ['cpu{host="a",zone="eu"}', 'cpu{host="b",zone="us"}', 'mem{host="a",zone="us"}']
    assert filter_keys(keys, "") == keys
    assert filter_keys(keys, 'HOST="a"') == [keys[0], keys[2]]
    assert filter_keys(keys, 'host="a" us') == [keys[2]]
    assert filter_keys(keys, "nothing") == []


def test_resolve_range_counts_back_from_the_last_point():
    from core.analysis.explore import resolve_range

    first, last = pd.Timestamp("2026-10-01", tz="UTC"), pd.Timestamp("2026-10-30 23:59", tz="UTC")
    assert resolve_range("last 1 day", first, last) == (pd.Timestamp("2026-10-29 23:59", tz="UTC"), last)
    assert resolve_range("last 7 days", first, last)[0] == pd.Timestamp("2026-10-23 23:59", tz="UTC")
    assert resolve_range("last 30 days", first, last)[0] == first          # clipped to the data
    assert resolve_range("all", first, last) == (first, last)
    a, b = resolve_range("date range", first, last, [pd.Timestamp("2026-10-05").date(),
                                                     pd.Timestamp("2026-10-06").date()])
    assert a == pd.Timestamp("2026-10-05", tz="UTC")
    assert b == pd.Timestamp("2026-10-07", tz="UTC") - pd.Timedelta("1ns")  # whole last day


def test_histogram_quantile_is_never_averaged():
    from core.analysis.explore import aggregations, display_values
    from core.data.frame import series_values

    def display_points(pts, key, kind, start, end, resolution="raw", how="median"):
        return display_values(series_values(pts, key), kind, start, end, resolution, how)

    assert "mean" not in aggregations("histogram_quantile")
    assert "mean" in aggregations("gauge")
    ts = pd.date_range("2026-01-01", periods=180, freq="1min", tz="UTC")
    v = np.r_[np.arange(60.0), np.full(60, np.nan), np.full(60, 7.0)]
    pts = pd.DataFrame({"series": "p95", "ts": ts, "value": v})
    pts.loc[0, "value"] = 1000.0                       # the mean of hour 0 would be 46.1, the median 30
    d = display_points(pts, "p95", "histogram_quantile", ts[0], ts[-1], "1h", "median")
    assert list(d["ts"]) == [ts[0], ts[60], ts[120]]
    assert d["value"].iloc[0] == 30.5                  # median of 1..59 and 1000: (30 + 31) / 2
    assert np.isnan(d["value"].iloc[1])                # an hour without values stays missing
    assert d["value"].iloc[2] == 7.0
    d = display_points(pts, "p95", "histogram_quantile", ts[0], ts[-1], "1h", "max")
    assert d["value"].iloc[0] == 1000.0
    with pytest.raises(Exception, match="must not be averaged"):
        display_points(pts, "p95", "histogram_quantile", ts[0], ts[-1], "1h", "mean")
    raw = display_points(pts, "p95", "histogram_quantile", ts[10], ts[19], "raw")
    assert list(raw["value"]) == list(np.arange(10.0, 20.0))


def test_counters_are_shown_and_analysed_as_per_second_rates():
    from core.analysis.explore import display_values
    from core.data.frame import series_values

    ts = pd.date_range("2026-01-01", periods=400, freq="1min", tz="UTC")
    total = np.cumsum(np.full(400, 60.0))              # +60 per minute = 1 per second
    total[200:] -= total[199]                          # a counter reset: restarts from 0 after point 199
    pts = pd.DataFrame({"series": "req_total", "ts": ts, "value": total})
    d = display_values(series_values(pts, "req_total"), "counter", ts[0], ts[-1])
    assert np.isnan(d["value"].iloc[0])                # no rate before the second sample
    assert np.allclose(d["value"].iloc[1:], 1.0)       # the reset is handled, not a negative spike
    res = run_range(pts, "req_total", "counter", horizon_days=None)
    assert res.baseline.median.value == pytest.approx(1.0)
    assert res.quality.counter_resets == 1             # quality is judged on the stored counter
    # a range starting mid-series: its first rate uses the point before it (context), not NaN
    part = display_values(series_values(pts, "req_total"), "counter", ts[100], ts[-1])
    assert part["value"].iloc[0] == 1.0 and len(part) == 300


# ---------------------------------------------------------------------------- causal band
def _hourly_days(days: int) -> pd.Series:
    ts = pd.date_range("2026-01-01", periods=days * 24, freq="1h", tz="UTC")
    d, h = np.arange(len(ts)) // 24, np.arange(len(ts)) % 24
    return pd.Series(10.0 * d + h, index=ts)


def test_band_steps_is_causal_and_falls_back_to_the_day_worked_by_hand():
    from core.analysis.seasonality import hourly_band as band_steps

    s = _hourly_days(5)                                # value = 10 * day + hour
    b = band_steps(s).set_index("ts")
    assert len(b) == 5 * 24
    gap = band_steps(s.drop(s.index[50:53])).set_index("ts")        # three hours without points
    assert len(gap) == 5 * 24 and gap.iloc[50:53]["expected"].isna().all()
    assert gap.iloc[53]["expected"] == b.iloc[53]["expected"]
    day = pd.Timestamp("2026-01-01", tz="UTC")
    # days 0 and 1: fewer than 2 earlier days -> no band, never a guess
    assert np.isnan(b.loc[day + pd.Timedelta("1D3h"), "expected"])
    assert b.loc[day + pd.Timedelta("1D3h"), "period"] == ""
    # day 2, hour 3: pool {3, 13} -> median 8
    assert b.loc[day + pd.Timedelta("2D3h"), "expected"] == pytest.approx(8.0)
    # day 4, hour 3: pool {3, 13, 23, 33}; median 18; 4 points cannot hold a 95% range (39 needed):
    # withheld, where interpolated quantiles (3.75 / 32.25) would have missed half of iid points
    row = b.loc[day + pd.Timedelta("4D3h")]
    assert row["expected"] == 18.0 and np.isnan(row["lower"]) and np.isnan(row["upper"])
    assert row["period"] == "day" and row["n"] == 4    # under 2 earlier weeks: same hour of day
    # causal: a huge later value changes nothing before it
    s2 = s.copy()
    s2.iloc[-1] = 1e6
    b2 = band_steps(s2).set_index("ts")
    pd.testing.assert_frame_equal(b.iloc[:-1], b2.iloc[:-1])


# ---------------------------------------------------------------------------- analysis
def _synthetic(days: int = 14, *, slope_per_day: float = 0.0, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-01-05", periods=days * 288, freq="5min", tz="UTC")
    t_days = np.arange(len(ts)) / 288
    v = 100 + 10 * np.sin(2 * np.pi * t_days) + slope_per_day * t_days + rng.normal(0, 1.0, len(ts))
    return pd.DataFrame({"series": "lat", "ts": ts, "value": v})


def test_analyse_flags_a_planted_spike_and_excludes_incident_points():
    from core.analysis.explore import resolve_range

    pts = _synthetic(14)
    spike_at = pd.Timestamp("2026-01-17 10:00", tz="UTC")   # day 12, inside the last 7 days
    pts.loc[pts["ts"] == spike_at, "value"] += 60
    inc = pd.DataFrame({"series": ["lat"], "start": [pd.Timestamp("2026-01-15 08:00", tz="UTC")],
                        "end": [pd.Timestamp("2026-01-15 10:00", tz="UTC")]})
    start, end = resolve_range("last 7 days", pts["ts"].min(), pts["ts"].max())
    res = run_range(pts, "lat", "gauge", "ms", start=start, end=end, incidents=inc, horizon_days=1)
    # 08:00 to 10:00 inclusive at 5 minutes = 25 points left out of the baseline (plus any detected
    # outage: the EWMA member's echo of the spike currently makes it a 3-point episode, see
    # tests/test_analysis.py::test_a_lone_spike_is_not_an_outage)
    assert res.excluded["incidents"] == 25
    assert res.baseline.n_excluded == 25 + res.excluded["outages"]
    assert res.outages.empty or list(res.outages["start"]) == [spike_at]
    a = res.anomalies
    assert spike_at in set(a["ts"]), a
    hit = a.set_index("ts").loc[spike_at]
    assert hit["score"] >= 0.9999 and hit["detectors"]
    assert "before the range" in res.anomaly_note and res.detections.scope == "before"
    assert res.detections.train_end == start and a["ts"].min() >= start      # every point of the range scored
    kept = run_range(pts, "lat", "gauge", "ms", start=start, end=end, incidents=inc, exclude_incidents=False,
                     horizon_days=1)
    assert kept.baseline.n_excluded == kept.excluded["outages"] == res.excluded["outages"]
    assert kept.baseline.n == res.baseline.n + 25
    # no trend was planted: the verdict must not claim one
    assert res.trend.verdict.startswith("no significant trend"), res.trend.verdict
    fc = res.forecast
    assert fc.sufficient and len(fc.frame) == 24 and fc.frame["ts"].iloc[0] > end


def test_analyse_measures_a_planted_trend():
    from core.analysis.wording import trend_text

    pts = _synthetic(10, slope_per_day=2.0)
    res = run_range(pts, "lat", "gauge", "ms")
    t = res.trend
    assert t.slope_per_day == pytest.approx(2.0, abs=0.05)
    assert trend_text(t).startswith("rising")
    # no history before the range: the start of it trains the detectors and is said to
    assert "not scored" in res.anomaly_note


def test_trend_headline_shows_the_slope_only_when_significant():
    from core.analysis.trend import Trend
    from core.analysis.wording import trend_headline

    sig = Trend(True, slope_per_day=2.04, slope_lower=1.93, slope_upper=2.16, p_value=0.00012,
                significant=True, direction="rising")
    assert trend_headline(sig, "ms") == ("Slope per day (p=0.00012)", "+2.04 ms",
                                         "rising: 95% CI +1.93 to +2.16 ms/day; significant (p=0.00012 < 0.05)")
    flat = Trend(True, slope_per_day=0.31, slope_lower=-0.12, slope_upper=0.77, p_value=0.27)
    label, value, note = trend_headline(flat, "ms")
    assert (label, value) == ("Trend (p=0.27)", "no significant trend")     # the slope is not the headline
    assert note == "slope +0.31 ms/day, 95% CI -0.12 to +0.77 ms/day; not significant (p=0.27 >= 0.05)"
    # p = 0.05 exactly is not significant (the test uses p < alpha); alpha 0.01 gives a 99% CI
    edge = Trend(True, slope_per_day=-1.0, slope_lower=-1.5, slope_upper=-0.5, p_value=0.05)
    assert trend_headline(edge)[1] == "no significant trend" and "/day, 95% CI -1.5 to -0.5/day" in trend_headline(edge)[2]
    strict = Trend(True, slope_per_day=1.0, slope_lower=0.4, slope_upper=1.6, p_value=0.03, alpha=0.01)
    assert trend_headline(strict)[2].endswith("99% CI +0.4 to +1.6/day; not significant (p=0.03 >= 0.01)")
    thin = Trend(False, reason="only 5 aggregated (1h) points; at least 24 are needed for a trend test")
    assert trend_headline(thin, "ms") == ("Trend", "insufficient data", "Insufficient data for a trend: only 5 "
                                          "aggregated (1h) points; at least 24 are needed for a trend test")
    # on analysed data: no planted trend -> no slope headline; a planted +2/day -> the slope
    none = run_range(_synthetic(14), "lat", "gauge", "ms", horizon_days=None).trend
    assert not none.significant and trend_headline(none, "ms")[1] == "no significant trend"
    up = run_range(_synthetic(10, slope_per_day=2.0), "lat", "gauge", "ms", horizon_days=None).trend
    assert up.significant and trend_headline(up, "ms")[1] == f"{up.slope_per_day:+.3g} ms"


def test_thin_series_say_insufficient_instead_of_a_number():
    from core.analysis.wording import (
        anomaly_text,
        baseline_text,
        forecast_text,
        seasonality_text,
        shifts_text,
        trend_text,
    )
    from core.errors import InsufficientDataError

    ts = pd.date_range("2026-01-01", periods=5, freq="1min", tz="UTC")
    pts = pd.DataFrame({"series": "t", "ts": ts, "value": [1.0, 2.0, 3.0, 4.0, 5.0]})
    res = run_range(pts, "t")
    for text in (trend_text(res.trend), seasonality_text(res.seasonality), baseline_text(res),
                 forecast_text(res.forecast, res.backtest), anomaly_text(res), shifts_text(res.change_points)):
        assert text.startswith("Insufficient data"), text
    assert "at least 30" in baseline_text(res)                    # the reason, not a median
    assert res.quality.grade == "insufficient"
    with pytest.raises(InsufficientDataError, match="no points between"):
        run_range(pts, "t", start=ts[-1] + pd.Timedelta("1min"))


# ---------------------------------------------------------------------------- figures
def test_trends_figure_draws_every_layer():
    from core.analysis.explore import resolve_range
    from core.analysis.wording import shifts_text
    from ui.trends import heatmap_figure, trends_figure

    pts = _synthetic(14)
    pts.loc[pts["ts"] >= pd.Timestamp("2026-01-15", tz="UTC"), "value"] += 30   # a level shift
    inc = pd.DataFrame({"series": ["lat", None, "lat"],
                        "start": pd.to_datetime(["2026-01-14", "2026-01-16", "2026-01-06"], utc=True),
                        "end": pd.to_datetime(["2026-01-14 01:00", "2026-01-16 02:00", "2026-01-06 01:00"], utc=True)})
    start, end = resolve_range("last 7 days", pts["ts"].min(), pts["ts"].max())
    res = run_range(pts, "lat", "gauge", "ms", start=start, end=end, incidents=inc, horizon_days=1)
    disp = pts[pts["ts"] >= start][["ts", "value"]]
    fig = trends_figure(disp, res)
    names = [t.name for t in fig.data]
    for name in ("seasonal band (95%, causal)", "expected", "value", "forecast 95%", "forecast 80%", "forecast",
                 "anomaly"):
        assert name in names, names
    shapes = fig.layout.shapes
    # the two incidents inside the range, plus one amber rectangle per detected outage
    assert sum(s.type == "rect" for s in shapes) == 2 + len(res.outages)
    assert list(fig.layout.xaxis.range) == [start, res.forecast.frame["ts"].iloc[-1]]
    cps = res.change_points.points
    assert len(cps) >= 1
    assert any(abs((p.ts - pd.Timestamp("2026-01-15", tz="UTC")).total_seconds()) <= 3 * 3600 for p in cps)
    assert sum(s.type == "line" for s in shapes) == len(cps)
    diamonds = next(t for t in fig.data if t.name == "level shift")
    assert len(diamonds.x) == len(cps)
    assert shifts_text(res.change_points).startswith("Level shifts") and "+" in shifts_text(res.change_points)
    marker = next(t for t in fig.data if t.name == "anomaly")
    assert "detectors" in marker.hovertemplate and "confidence" in marker.hovertemplate
    prof = pd.DataFrame(np.tile(np.arange(24.0), (7, 1)))
    hm = heatmap_figure(prof, "ms")
    assert hm.data[0].z[2][5] == 5.0 and list(hm.data[0].y) == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


# ---------------------------------------------------------------------------- the page
def test_page_renders_trend_verdict_chart_and_insufficient_message(small_trends_db):
    from core.analysis.explore import resolve_range
    from core.analysis.wording import trend_headline
    from tests.apptest_util import metric_values
    from ui import state

    at = run_page(small_trends_db)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Trends & anomalies"
    key = at.selectbox(key="trends.series").value
    assert key == SMALL_KEYS[0]
    assert len(at.get("plotly_chart")) == 2                         # series chart + heatmap
    # the verdict on screen is the one core.analysis.trend gives for the same data and range
    s = state._store(str(small_trends_db))          # the app's own connection (one per file)
    pts, inc = s.get_points(key), s.list_incidents(key)
    start, end = resolve_range("last 7 days", pts["ts"].min(), pts["ts"].max())
    expected = run_range(pts, key, "histogram_quantile", "ms", start=start, end=end, incidents=inc)
    assert expected.trend.sufficient
    # the trend headline on screen is the one core.analysis.wording gives for that verdict: the slope only
    # when significant, else "no significant trend" with the slope and CI in the caption
    label, value, note = trend_headline(expected.trend, "ms")
    assert metric_values(at)[label] == value and note in page_text(at)
    assert (value == "no significant trend") == (not expected.trend.significant)
    assert at.toggle(key="trends.outages").value is True          # outages excluded by default, and said so
    assert "Outages." in page_text(at)
    # the forecast names its interval method; the rolling-origin backtest is a table per horizon band
    # with the same numbers core gives, and the trend says which corrections it used
    from core.analysis.pipeline import forecast_from
    from core.analysis.wording import backtest_frame, trend_method_text
    from core.data.frame import series_values

    fc, bt = forecast_from(series_values(pts, key), end=end, kind="histogram_quantile", horizon_days=2)
    assert fc.interval_text() in page_text(at) and "split conformal" in fc.interval_text()
    table = next(d.value for d in at.dataframe if "hours ahead" in d.value.columns)
    pd.testing.assert_frame_equal(table.reset_index(drop=True), backtest_frame(bt))
    assert list(table["hours ahead"]) == ["1-24 h", "25-48 h"] and table["origins"].iloc[0] == bt.n_origins
    assert trend_method_text(expected.trend) in page_text(at) and "Mann-Kendall" in trend_method_text(expected.trend)
    # a tiny series: every stage says it is insufficient, no exception
    at.selectbox(key="trends.series").set_value(TINY).run()
    assert not at.exception, [e.value for e in at.exception]
    text = page_text(at)
    assert "Insufficient data for a trend" in text and "Insufficient data for a baseline" in text
    assert metric_values(at)["Trend"] == "insufficient data"         # a word, not a slope
    assert "Insufficient data for a forecast" in text


def test_page_controls_filter_resolution_and_exclusion(small_trends_db):
    at = run_page(small_trends_db)
    at.text_input(key="trends.filter").set_value("checkout").run()
    assert at.selectbox(key="trends.series").options == [SMALL_KEYS[1]]
    at.selectbox(key="trends.resolution").set_value("1h").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="trends.how.histogram_quantile").options == ["median", "max"]
    at.toggle(key="trends.exclude").set_value(False).run()
    assert not at.exception
    assert "incident points excluded" not in page_text(at)
    at.radio(key="trends.range").set_value("all").run()
    assert not at.exception
    at.radio(key="trends.range").set_value("date range").run()
    d0 = pd.Timestamp("2026-10-03").date()
    at.date_input(key="trends.dates").set_value((d0, d0)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "from 2026-10-03 00:00 to 2026-10-03 23:59 UTC" in page_text(at)      # one whole UTC day
    at.text_input(key="trends.filter").set_value("no-such-series").run()
    assert "No series matches" in page_text(at)


def test_page_detector_and_sensitivity_controls(small_trends_db):
    """The user picks the detector and a false-alarm rate per week; the page reports the alarm load
    on this history and explains each alarm by its members, as core computes them."""
    from core.analysis.detect import AlarmRule
    from core.analysis.explore import resolve_range
    from core.analysis.wording import alarm_frame
    from ui import state

    at = run_page(small_trends_db)
    assert at.selectbox(key="trends.detector").value == "ensemble"
    assert at.selectbox(key="trends.sensitivity").value is None
    at.selectbox(key="trends.sensitivity").set_value(10.0).run()
    assert not at.exception, [e.value for e in at.exception]
    text = page_text(at)
    assert "per week outside labelled incidents" in text and "10 expected false alarms per week" in text
    key = at.selectbox(key="trends.series").value
    s = state._store(str(small_trends_db))
    pts, inc = s.get_points(key), s.list_incidents(key)
    start, end = resolve_range("last 7 days", pts["ts"].min(), pts["ts"].max())
    want = run_range(pts, key, "histogram_quantile", "ms", start=start, end=end, incidents=inc,
                     threshold=AlarmRule(false_alarms_per_week=10.0))
    # 5-minute data: 10 per week sets the threshold to 1 - 10 * 300 / 604800
    assert want.detections.threshold == pytest.approx(1 - 10 * 300 / 604800)
    frame = alarm_frame(want)
    assert len(frame) >= 1 and frame["explained by"].str.len().gt(0).all()
    assert f"{len(frame)} anomalies (alarms) in the range" in text
    assert f"{want.detections.false_alarms_per_week:.1f} per week outside labelled incidents" in text
    assert any(len(d.value) == len(frame) and "explained by" in d.value.columns for d in at.dataframe)
    at.selectbox(key="trends.detector").set_value("ensemble_burst").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Anomalies." in page_text(at)


def test_a_write_invalidates_the_cached_analysis(tmp_path):
    """The analysis is cached by (db path, series, range, options); a write by anyone clears it."""
    from tests.apptest_util import studio_db
    from ui import state

    db = build_trends_small_db(tmp_path / "w.duckdb")
    with studio_db(db):
        at = run_page(db)
        at.selectbox(key="trends.series").set_value(TINY).run()
        assert "tiny_metric (gauge): 5 points" in page_text(at)
        at.run()                                                    # cached: same answer
        assert "tiny_metric (gauge): 5 points" in page_text(at)
        more = pd.DataFrame({"series": TINY, "value": [6.0, 7.0, 8.0],
                             "ts": pd.date_range("2026-10-07 00:05", periods=3, freq="1min", tz="UTC")})
        # written without after_write, as another process would: the database fingerprint changed,
        # so the next run drops the cached answer (ui.state.sync)
        state._store(str(db)).write_points(more, name="more", sha256="trends-more", fmt="long", actor="test")
        at.run()
        assert "tiny_metric (gauge): 8 points" in page_text(at)
        at.run()                                                    # cached again: same answer
        assert "tiny_metric (gauge): 8 points" in page_text(at)


# ---------------------------------------------------------------------------- benchmark
@pytest.mark.bench
def test_page_renders_within_2s_on_the_100_service_benchmark(small_trends_db):
    """AppTest run time on the 100-service x 30-day database (modules already imported, as in a
    running server). Cold: the first run after the cache is cleared, then four more series picked in
    the same session (each a cache miss); warm: the same series again.

    The machine is shared: wall-clock time is inflated whenever other jobs hold the cores, so the
    process CPU time of each run is measured too. The median CPU time of the cold runs must be
    <= 2 s always; the median wall-clock time too whenever the 1-minute load average is below the
    number of cores (otherwise the wall figure is reported, not judged)."""
    import os
    import statistics
    import warnings

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.apptest_util import studio_db

    db = build_bench_db()
    run_page(small_trends_db)                         # imports done, first-call overheads paid
    st.cache_data.clear()
    cold, cold_cpu, warm = [], [], []

    def timed(at) -> tuple[float, float]:
        w, c = time.perf_counter(), time.process_time()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return time.perf_counter() - w, time.process_time() - c

    with studio_db(db):
        at = AppTest.from_file(str(ROOT / "pages" / "trends.py"), default_timeout=120)
        keys = None
        for i in (None, 17, 42, 63, 99):
            if i is not None:
                at.selectbox(key="trends.series").set_value(keys[i])
            w, c = timed(at)
            cold.append(w)
            cold_cpu.append(c)
            keys = keys or at.selectbox(key="trends.series").options
            warm.append(timed(at)[0])
    assert len(keys) == 100
    load = os.getloadavg()[0]
    fmt = ", ".join
    print(f"\ntrends page on {db.name} (load average {load:.1f}, {os.cpu_count()} cores): first run (cold cache) "
          f"{cold[0]:.2f} s; cold runs {fmt(f'{x:.2f}' for x in cold)} s wall (median {statistics.median(cold):.2f}), "
          f"{fmt(f'{x:.2f}' for x in cold_cpu)} s CPU (median {statistics.median(cold_cpu):.2f}); warm runs "
          f"{fmt(f'{x:.2f}' for x in warm)} s wall")
    assert statistics.median(cold_cpu) <= 2.0
    assert max(warm) <= 2.0
    if load < (os.cpu_count() or 1):
        assert statistics.median(cold) <= 2.0
    else:
        warnings.warn(f"load average {load:.1f} >= {os.cpu_count()} cores: wall-clock time not judged", stacklevel=1)


def test_page_shows_detected_outages_and_the_exclusion_toggle(small_trends_db):
    at = run_page(small_trends_db)
    at.selectbox(key="trends.series").set_value(STUCK).run()
    assert not at.exception, [e.value for e in at.exception]
    text = page_text(at)
    # the frozen stretch 10:20-13:15 (36 points) is a stuck value; the detectors flag it too, as an
    # episode 11:30-13:15 inside it: 36 points in all, one row per cause
    assert "2 detected outage(s) covering 36 points of the range, left out of the baseline" in text
    assert "36 detected-outage points excluded" in text
    table = next(d.value for d in at.dataframe if "cause" in d.value.columns)
    assert list(table["cause"]) == ["stuck value", "anomaly episode"] and list(table["points"]) == [36, 22]
    assert list(table["minutes"]) == [175.0, 105.0]                   # 36 and 22 points 5 minutes apart
    at.toggle(key="trends.outages").set_value(False).run()
    assert not at.exception
    text = page_text(at)
    assert "kept in the baseline and the band" in text and "detected-outage points excluded" not in text


def test_wording_gates_the_p95_and_says_when_the_band_range_is_withheld():
    from types import SimpleNamespace

    from core.analysis.baseline import compute_baseline
    from core.analysis.seasonality import hourly_band
    from core.analysis.wording import band_text, baseline_text

    ts = pd.date_range("2026-01-05", periods=40, freq="1min", tz="UTC")
    x = np.random.default_rng(2).normal(100, 5, 40)
    b = compute_baseline(pd.Series(x, index=ts))
    # 40 iid points: the median has an exact 95% interval, the p95 none (its upper rank would be 41)
    assert b.median.sufficient and not b.percentiles[0.95].sufficient
    text = baseline_text(SimpleNamespace(baseline=b, unit="ms", excluded={}))
    assert text.startswith(f"median {b.median.value:.4g} ms (95% CI ")
    assert "p95 not stated: 40 points are too few" in text and f"{b.percentiles[0.95].value:.4g}" not in text
    assert "from 40 raw points" in text
    big = compute_baseline(pd.Series(np.random.default_rng(3).normal(100, 5, 2000),
                                     index=pd.date_range("2026-01-05", periods=2000, freq="1min", tz="UTC")))
    p95 = big.percentiles[0.95]
    assert f"p95 {p95.value:.4g} ms (95% CI {p95.lower:.4g} to {p95.upper:.4g})" in baseline_text(
        SimpleNamespace(baseline=big, unit="ms", excluded={}))
    # hourly data: pools of 4 points never hold a 95% range; the caption says so and how many hours
    band = hourly_band(_hourly_days(5))
    cap = band_text(SimpleNamespace(band=band))
    assert "withheld for 72 of 120 hours" in cap and "at most 4 points" in cap and "needs 39" in cap
