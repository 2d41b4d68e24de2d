"""Data quality: every expected number below is worked out by hand in the comment next to it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data.quality import REPORT_COLUMNS, assess_series, gap_table, quality_report
from core.errors import ValidationError


def minutes(n: int, start: str = "2026-01-01") -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq="1min", tz="UTC")


def noise(n: int, seed: int = 0) -> np.ndarray:
    return 100.0 + np.random.default_rng(seed).standard_normal(n)


def test_ten_minute_gap_in_a_day():
    s = pd.Series(noise(1440), index=minutes(1440)).drop(minutes(1440)[100:110])
    q = assess_series(s)
    assert q.points == 1430
    assert q.resolution_s == 60.0
    assert q.span_s == 86340.0              # 23:59 after the first point
    assert q.gaps == 1
    assert q.longest_gap_s == 600.0         # step 660 s minus the one expected step = 10 missing minutes
    assert q.missing_pct == pytest.approx(100 * 600 / 86400)   # expected time = span + one step = 1 day
    # completeness share 0.006944 of the 20 % saturation x weight 50 = 1.736 off
    assert q.score == 98.3 and q.grade == "A"
    assert q.duplicates == q.nan == q.inf == 0
    assert q.counter_resets is None          # not a counter
    assert len(q.issues) == 1 and "1 gap" in q.issues[0] and "10m" in q.issues[0]


def test_gap_table_start_end_duration():
    idx = minutes(1440)
    s = pd.Series(noise(1440), index=idx).drop(idx[100:110]).drop(idx[500:502])
    g = gap_table(s)
    assert list(g.columns) == ["start", "end", "duration_s"]
    assert g["start"].tolist() == [pd.Timestamp("2026-01-01 01:40", tz="UTC"),
                                   pd.Timestamp("2026-01-01 08:20", tz="UTC")]
    assert g["end"].tolist() == [pd.Timestamp("2026-01-01 01:50", tz="UTC"),
                                 pd.Timestamp("2026-01-01 08:22", tz="UTC")]
    assert g["duration_s"].tolist() == [600.0, 120.0]
    assert gap_table(pd.Series(noise(50), index=minutes(50))).empty


def test_single_missing_minute_is_a_gap_but_jitter_is_not():
    idx = minutes(100)
    s = pd.Series(noise(100), index=idx).drop(idx[50])
    q = assess_series(s)
    assert (q.gaps, q.longest_gap_s) == (1, 60.0)       # step 120 s > 1.5 x 60 s
    jitter = idx + pd.to_timedelta(np.tile([0, 20], 50), unit="s")   # steps 80 s and 40 s
    q2 = assess_series(pd.Series(noise(100), index=jitter))
    assert q2.gaps == 0                                  # 80 s < 1.5 x resolution


def test_counter_resets_counted_for_counters_only():
    v = [0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 4]           # two decreases: 3 -> 0 and 2 -> 0
    s = pd.Series(v, index=minutes(12), dtype=float)
    q = assess_series(s, kind="counter")
    assert q.counter_resets == 2
    # resets 2/12 points saturates the 1 % scale: -10 -> 90.0, still grade A
    assert q.score == 90.0 and q.grade == "A"
    assert any("2 counter resets" in i for i in q.issues)
    assert assess_series(s, kind="gauge").counter_resets is None
    assert assess_series(s, kind="gauge").score == 100.0


def test_duplicates_counted_and_do_not_distort_resolution():
    idx = minutes(20)
    dup_idx = idx.append(pd.DatetimeIndex([idx[5], idx[5], idx[9]]))
    s = pd.Series(noise(23), index=dup_idx)
    q = assess_series(s)
    assert q.points == 23
    assert q.duplicates == 3
    assert q.resolution_s == 60.0 and q.gaps == 0
    assert q.score == 90.0                               # 3/23 > 5 % saturates the weight of 10


def test_nan_and_inf_counted_not_filled():
    v = noise(100)
    v[[3, 4, 50, 70]] = np.nan
    v[10], v[11] = np.inf, -np.inf
    q = assess_series(pd.Series(v, index=minutes(100)))
    assert (q.nan, q.inf, q.gaps) == (4, 2, 0)
    # completeness 4/100 = 0.04 -> 50 * 0.04/0.20 = 10 ; invalid 2/100 >= 1 % -> 10 ; 100 - 20 = 80
    assert q.score == 80.0 and q.grade == "B"
    assert any("4 values reported as missing (NaN)" == i for i in q.issues)


def test_flat_runs():
    v = noise(100)
    v[20:60] = 42.0                                     # 40 identical points
    q = assess_series(pd.Series(v, index=minutes(100)))
    assert q.flat_pct == 40.0 and q.flat_runs == 1
    assert q.score == 84.0                               # 20 * (0.40 / 0.50) = 16 off
    v2 = noise(100)
    v2[20:49] = 42.0                                    # 29 identical points: below the 30-point rule
    assert assess_series(pd.Series(v2, index=minutes(100))).flat_runs == 0


def test_flat_run_is_broken_by_a_gap():
    idx = minutes(200)
    v = noise(200)
    v[20:100] = 7.0
    s = pd.Series(v, index=idx).drop(idx[40:80])        # 20 flat points, a gap, 20 flat points
    q = assess_series(s)
    assert q.flat_runs == 0 and q.gaps == 1 and q.longest_gap_s == 2400.0


def test_staleness_only_with_now_and_not_in_score():
    s = pd.Series(noise(1440), index=minutes(1440))      # last point 2026-01-01 23:59
    assert assess_series(s).staleness_s is None
    q = assess_series(s, now="2026-01-02T01:00:00Z")
    assert q.staleness_s == 3660.0
    assert any(i.startswith("stale:") for i in q.issues)
    assert q.score == 100.0
    q2 = assess_series(s, now=pd.Timestamp("2026-01-02 00:09"))  # naive -> UTC; 600 s is not stale
    assert q2.staleness_s == 600.0 and not q2.issues


def test_too_few_points_is_insufficient_not_a_score():
    q = assess_series(pd.Series(noise(9), index=minutes(9)))
    assert q.score is None and q.grade == "insufficient"
    assert "at least 10" in q.issues[0]
    assert assess_series(pd.Series(noise(10), index=minutes(10))).grade == "A"
    v = noise(30)
    v[:25] = np.nan                                     # 30 points but only 5 finite values
    assert assess_series(pd.Series(v, index=minutes(30))).grade == "insufficient"
    empty = assess_series(pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float))
    assert empty.points == 0 and empty.resolution_s is None and empty.grade == "insufficient"


def test_resolution_is_the_dominant_step_else_the_median():
    base = pd.Timestamp("2026-01-01", tz="UTC")
    steps = [300, 300, 301, 300, 299, 300, 300]          # 300 s five times of seven
    idx = base + pd.to_timedelta(np.r_[0, np.cumsum(steps)], unit="s")
    assert assess_series(pd.Series(np.ones(8), index=idx)).resolution_s == 300.0
    steps = [60, 61, 62, 63, 64]                         # no dominant step: median 62
    idx = base + pd.to_timedelta(np.r_[0, np.cumsum(steps)], unit="s")
    assert assess_series(pd.Series(np.ones(6), index=idx)).resolution_s == 62.0


def test_index_checks():
    with pytest.raises(ValidationError):
        assess_series(pd.Series([1.0, 2.0]))
    naive = pd.Series(noise(20), index=pd.date_range("2026-01-01", periods=20, freq="1min"))
    assert assess_series(naive).start == pd.Timestamp("2026-01-01", tz="UTC")


def test_quality_report_rows_match_assess_series_and_order_does_not_matter():
    idx = minutes(1440)
    a = pd.DataFrame({"series": "b_gauge", "ts": idx, "value": noise(1440)}).drop(range(100, 110))
    counter = np.r_[np.arange(700.0), np.arange(740.0)]  # one reset
    b = pd.DataFrame({"series": "a_counter", "ts": idx, "value": counter})
    pts = pd.concat([a, b], ignore_index=True)
    rep = quality_report(pts, kinds={"a_counter": "counter"}, now="2026-01-02")
    assert list(rep.columns) == REPORT_COLUMNS
    assert rep["series"].tolist() == ["a_counter", "b_gauge"]
    ra, rb = rep.iloc[0], rep.iloc[1]
    assert ra["counter_resets"] == 1 and ra["gaps"] == 0
    assert rb["gaps"] == 1 and rb["longest_gap_s"] == 600.0 and pd.isna(rb["counter_resets"])
    assert rb["staleness_s"] == 60.0
    single = assess_series(pd.Series(a["value"].to_numpy(), index=pd.DatetimeIndex(a["ts"])), now="2026-01-02")
    assert rb["score"] == single.score and rb["missing_pct"] == single.missing_pct
    shuffled = pts.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(quality_report(shuffled, kinds={"a_counter": "counter"}, now="2026-01-02"), rep)


def test_quality_report_empty_frame():
    from core.data.frame import empty_points

    rep = quality_report(empty_points())
    assert rep.empty and list(rep.columns) == REPORT_COLUMNS


def test_quality_cli(store, tmp_path, capsys):
    from core.__main__ import main

    pts = pd.DataFrame({"series": "cpu", "ts": minutes(100), "value": noise(100)}).drop(range(10, 15))
    store.write_points(pts, name="x.csv", sha256="x", fmt="long")
    store.close()
    assert main(["quality", "--db", str(tmp_path / "test.duckdb"), "--issues"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("cpu "))
    # 5 missing minutes of 100 expected: 5 % -> 50 * 0.05/0.2 = 12.5 off -> 87.5, grade B
    assert line.split()[-2:] == ["87.5", "B"]
    assert "1 gap (longest 5m)" in out


def test_quality_cli_pattern_without_match_says_so(store, tmp_path, capsys):
    from core.__main__ import main

    pts = pd.concat([pd.DataFrame({"series": k, "ts": minutes(20), "value": noise(20)}) for k in ("a", "b")])
    store.write_points(pts, name="x.csv", sha256="x", fmt="long")
    store.close()
    db = str(tmp_path / "test.duckdb")
    assert main(["quality", "--db", db, "--series", "zzz*"]) == 0
    assert capsys.readouterr().out.strip() == "no series matches 'zzz*' (2 stored)"
    from core.data.store import Store

    Store(tmp_path / "empty.duckdb").close()
    assert main(["quality", "--db", str(tmp_path / "empty.duckdb")]) == 0
    assert capsys.readouterr().out.strip() == "no series stored"


def test_resolution_is_the_mode_covering_half_the_steps_else_the_median():
    from core.data.quality import _resolution_ns

    assert _resolution_ns(np.array([60, 60, 60, 120, 600])) == 60           # mode on more than half
    assert _resolution_ns(np.array([60, 60, 120, 120])) == 60               # a tie: the smaller mode
    assert _resolution_ns(np.array([120, 60, 120, 60])) == 60
    assert _resolution_ns(np.array([10, 20, 30, 40, 50])) == 30             # no mode: the median
    assert _resolution_ns(np.array([10, 20, 30, 40])) == 25
    assert _resolution_ns(np.array([], dtype=np.int64)) is None
