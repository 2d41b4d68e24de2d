"""Rule replay: hand-built series with known episode boundaries for every option, the vectorised
replay against the plain reference loop, the monotonicity properties that really hold, sweeps, the
summary and the CLI.

Unless said otherwise the series are 1-minute samples from 2026-01-01 00:00 UTC and episode
boundaries are written as minute offsets: ``(start, end)`` where ``start`` is the first firing
evaluation and ``end`` the first evaluation no longer firing (or the last one for an open episode).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.alerting.replay import (
    EPISODE_COLUMNS,
    _firing,
    _mask_of,
    replay,
    replay_all,
    replay_reference,
)
from core.alerting.rules import Rule
from core.alerting.sweep import sweep
from core.errors import InsufficientDataError, ValidationError

NAN = float("nan")
T0 = pd.Timestamp("2026-01-01", tz="UTC")
ROOT = Path(__file__).resolve().parents[1]


def mk(values, freq="1min", name="m", drop=()) -> pd.Series:
    ts = pd.date_range(T0, periods=len(values), freq=freq, tz="UTC")
    s = pd.Series(np.asarray(values, dtype=float), index=ts, name=name)
    if drop:
        s = s.drop(ts[list(drop)])
    return s


def minutes(ts) -> int:
    return int((pd.Timestamp(ts) - T0) / pd.Timedelta("1min"))


def spans(result, severity="critical"):
    eps = result.episodes
    eps = eps[eps["severity"] == severity]
    return [(minutes(a), minutes(b)) for a, b in zip(eps["start"], eps["end"], strict=True)]


def rule(**kw) -> Rule:
    kw.setdefault("critical", 4)
    return Rule("r", "m", kw.pop("comparator", ">"), **kw)


def check(r: Rule, s: pd.Series, **kw):
    """Replay and also assert the reference loop agrees exactly (every hand case doubles as a spec)."""
    res = replay(r, s, **kw)
    ref = replay_reference(r, s, **kw)
    pd.testing.assert_frame_equal(res.episodes, ref)
    return res


# ----------------------------------------------------------------------------------- hand-built cases
def test_plain_threshold_episodes_and_columns():
    res = check(rule(), mk([0, 5, 5, 0, 5, 0, 0]))
    assert list(res.episodes.columns) == EPISODE_COLUMNS
    assert spans(res) == [(1, 3), (4, 5)]
    assert res.episodes["duration_s"].tolist() == [120.0, 60.0]
    assert res.episodes["state"].tolist() == ["resolved", "resolved"]
    assert str(res.episodes["start"].dtype) == "datetime64[ns, UTC]"


def test_comparators_strict_and_inclusive():
    s = mk([3, 4, 5, 4, 3])
    assert spans(check(rule(comparator=">"), s)) == [(2, 3)]
    assert spans(check(rule(comparator=">="), s)) == [(1, 4)]
    assert spans(check(rule(comparator="<", critical=4), s)) == [(0, 1), (4, 4)]
    assert spans(check(rule(comparator="<=", critical=4), s)) == [(0, 2), (3, 4)]


def test_open_episode_at_end():
    res = check(rule(), mk([0, 0, 5, 5]))
    ep = res.episodes.iloc[0]
    assert (minutes(ep["start"]), minutes(ep["end"])) == (2, 3)
    assert bool(ep["open"]) and ep["state"] == "firing" and ep["duration_s"] == 60.0


def test_for_pending_period():
    s = mk([0, 5, 5, 5, 5, 0, 5, 5, 0])
    # pending at 1, fires when t - t1 >= 2m (at 3); the run 6-7 is pending for only 1m
    assert spans(check(rule(for_s="2m"), s)) == [(3, 5)]
    # 90 s also needs the evaluation at 3 (at 2 only 60 s have passed)
    assert spans(check(rule(for_s=90), s)) == [(3, 5)]
    assert spans(check(rule(for_s="1m"), s)) == [(2, 5), (7, 8)]
    assert spans(check(rule(for_s="5m"), s)) == []


def test_keep_firing_for():
    s = mk([0, 5, 0, 0, 0, 0, 5, 0, 5, 0, 0, 0, 0])
    # fires at 1; condition false from 2; keeps firing while t - t2 < 2m (2, 3); resolved at 4.
    # fires at 6; false at 7 (kept); true again at 8 (hold resets); false from 9; kept 9, 10; resolved 11.
    assert spans(check(rule(keep_firing_for_s="2m"), s)) == [(1, 4), (6, 11)]
    assert spans(check(rule(keep_firing_for_s=0), s)) == [(1, 2), (6, 7), (8, 9)]
    # keep_firing_for only extends alerts that fired: a pending (not yet firing) condition gets nothing
    assert spans(check(rule(for_s="1m", keep_firing_for_s="5m"), s)) == []


def test_recovery_hysteresis_above():
    s = mk([50, 90, 70, 65, 59, 70, 85, 61, 60, 59.9, 50])
    res = check(rule(critical=80, recovery=60), s)
    # fires at 1 and holds until the value drops strictly below 60 (at 4); 60 itself does not resolve
    assert spans(res) == [(1, 4), (6, 9)]
    assert res.episodes["peak"].tolist() == [90.0, 85.0]
    # without recovery each breach is its own short episode
    assert spans(check(rule(critical=80), s)) == [(1, 2), (6, 7)]


def test_recovery_hysteresis_below():
    s = mk([50, 10, 25, 29, 31, 25, 15, 30, 40])
    res = check(rule(comparator="<", critical=20, recovery=30), s)
    assert spans(res) == [(1, 4), (6, 8)]
    assert res.episodes["peak"].tolist() == [10.0, 15.0]       # most extreme in the breach direction


def test_consecutive_breaches():
    s = mk([5, 5, 0, 5, 5, 5, 5, 0])
    assert spans(check(rule(consecutive=3), s)) == [(5, 7)]
    assert spans(check(rule(consecutive=2), s)) == [(1, 2), (4, 7)]
    # pending starts at the 2nd consecutive breach and then needs 1m: fires at the 3rd
    s2 = mk([0, 5, 5, 0, 5, 5, 5, 5, 0])
    assert spans(check(rule(consecutive=2, for_s="1m"), s2)) == [(6, 8)]


def test_missing_nodata_is_condition_false_and_reports_gap():
    s = mk([0, 5, 5, NAN, 5, 5, 0])
    res = check(rule(missing="nodata"), s)
    assert spans(res) == [(1, 3), (4, 6)]
    # a 1-minute gap is shorter than the export's 10m absent_over_time window: no nodata episode
    assert spans(res, "nodata") == [] and res.nodata_window_s == 600.0
    # with a 1m lookback the gap is as long as the window (3 - 2 >= 1 min): reported from 3 to 4
    res = check(rule(missing="nodata"), s, lookback_s="1m")
    assert spans(res, "nodata") == [(3, 4)] and res.nodata_window_s == 60.0
    nod = res.episodes[res.episodes["severity"] == "nodata"].iloc[0]
    assert nod["state"] == "nodata" and np.isnan(nod["peak"])
    # as in Prometheus (no sample: the expression returns nothing = condition false), keep_firing_for
    # holds the alert across the gap: fires at 1, false at 3 (kept: 3 - 3 < 5m), holds 4-5, false
    # from 6 on (kept) and the data ends at 6 -> one open episode; the gap is still its own row
    res = check(rule(missing="nodata", keep_firing_for_s="5m"), s, lookback_s=60)
    assert spans(res) == [(1, 6)] and bool(res.episodes["open"].iloc[0])
    assert spans(res, "nodata") == [(3, 4)]
    # pending is reset by the gap (condition false), as by any non-breaching evaluation
    assert spans(check(rule(missing="nodata", for_s="2m"), mk([0, 5, 5, NAN, 5, 5, 5, 0]))) == [(6, 7)]


def test_reviewer_case_one_missing_evaluation_does_not_split_an_alert():
    # [10, 10, NaN, 10, 10, 0 ...] with keep_firing_for 10m: one warning episode plus one no-data row
    # (with a 1m lookback, so that the 1-minute gap is long enough to be one)
    s = mk([10, 10, NAN, 10, 10] + [0] * 14)
    res = check(Rule("r", "m", ">", warning=5, keep_firing_for_s="10m", missing="nodata"), s, lookback_s=60)
    # fires at 0; false at 2 (gap, kept), holds 3-4; false from 5: kept while t - 5 min < 10 min,
    # so through 14; resolved at 15
    assert spans(res, "warning") == [(0, 15)]
    assert spans(res, "nodata") == [(2, 3)]
    sm = res.summary()
    assert sm["episodes"] == 1 and sm["nodata_episodes"] == 1 and sm["time_in_alert_s"] == 15 * 60.0
    # without keep_firing_for the gap does resolve it: two episodes (what the expression does too)
    two = check(Rule("r", "m", ">", warning=5, missing="nodata"), s)
    assert spans(two, "warning") == [(0, 2), (3, 5)]


def test_missing_rows_are_gaps_like_nan():
    full = mk([0, 5, 5, 5, 5, 5, 0], drop=(3,))            # the 00:03 row is absent
    res = check(rule(missing="nodata"), full, lookback_s=60)
    assert res.interval_s == 60.0 and len(res.ts_ns) == 7
    assert spans(res) == [(1, 3), (4, 6)] and spans(res, "nodata") == [(3, 4)]


def test_missing_keep_last_carries_value_for_evaluation():
    res = check(rule(missing="keep_last"), mk([0, 5, 5, NAN, 5, 5, 0]))
    assert spans(res) == [(1, 6)] and spans(res, "nodata") == []
    assert res.summary()["missing_evaluations"] == 1
    # carried values count towards the pending period
    assert spans(check(rule(missing="keep_last", for_s="2m"), mk([0, 5, NAN, NAN, 0]))) == [(3, 4)]
    # nothing to carry before the first value
    assert spans(check(rule(missing="keep_last"), mk([NAN, NAN, 5, 0]))) == [(2, 3)]


def _absent_over_time_runs(s: pd.Series, window_s: float, end_min: int) -> list[tuple[int, int]]:
    """What Prometheus does with the export's ``absent_over_time(m[w])`` evaluated every minute: at minute
    t it returns 1 when no sample (NaN = no sample) lies in ``(t - w, t]``. Runs as (start, end) minutes,
    end = first minute a sample is back (or the last minute for a run still open)."""
    have = sorted(minutes(ts) for ts, x in s.items() if np.isfinite(x))
    w = window_s / 60
    fires = [not any(t - w < h <= t for h in have) and t - w >= 0 for t in range(end_min + 1)]
    out, start = [], None
    for t, f in enumerate(fires):
        if f and start is None:
            start = t
        if not f and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, end_min))
    return out


def test_nodata_episodes_match_the_exported_absent_over_time():
    """Review case: 1-minute samples for 90 minutes with a 3-minute gap (rows 10, 11, 12 absent: last
    sample at 9, next at 13) and a 30-minute gap (NaN at 30..59: last sample at 29, next at 60). The
    export's NoData alert is absent_over_time(m[10m]), no for: it fires once no sample lies in the last
    10 minutes, from 29 + 10 = 39, until the sample at 60: one episode [39, 60), 21 minutes. The
    3-minute gap (13 - 9 = 4 min < 10) raises none (the old replay reported both gaps, from 10 and 30)."""
    from core.alerting.prometheus import prometheus_export
    from core.alerting.rules import parse_duration

    v = np.ones(90)
    v[30:60] = np.nan
    s = mk(v, drop=(10, 11, 12))
    for for_s, hand in ((0, [(39, 60)]), (900, [(44, 60)])):     # for 15m widens the window to 15m
        r = Rule("G", "m", ">", warning=5, for_s=for_s)         # missing: nodata
        nod = next(a for a in prometheus_export([r]).doc["groups"][0]["rules"] if a["alert"] == "GNoData")
        window = parse_duration(nod["expr"].split("[")[1].split("]")[0])
        res = check(r, s)
        assert res.nodata_window_s == window == max(600, for_s)
        assert spans(res, "nodata") == _absent_over_time_runs(s, window, 89) == hand
        assert res.summary()["nodata_episodes"] == 1 and res.summary()["nodata_s"] == 60.0 * (hand[0][1] - hand[0][0])
        assert res.summary()["missing_evaluations"] == 33          # every missing evaluation still counted
    # a gap running to the end of the data: an open episode from last sample + 10m
    tail = mk(np.r_[np.ones(20), np.full(15, np.nan)])             # last sample at 19, data to 34
    res = check(Rule("G", "m", ">", warning=5), tail)
    eps = res.episodes[res.episodes["severity"] == "nodata"]
    assert spans(res, "nodata") == _absent_over_time_runs(tail, 600, 34) == [(29, 34)]
    assert eps["open"].tolist() == [True]
    # a shorter mapping lookback (export and replay alike) reports the shorter gap too
    r = Rule("G", "m", ">", warning=5)
    assert spans(check(r, s, lookback_s="3m"), "nodata") == _absent_over_time_runs(s, 180, 89) == [(12, 13), (32, 60)]


def test_keep_last_carries_only_as_long_as_the_export_looks_back():
    # one breach, then 10 hours without data: the export's last_over_time(x[10m]) sees the 5 for
    # evaluations 1..10 (age 0..9 min < 10 min); at 11 the sample is 10 min old and drops out
    s = mk([0, 5] + [NAN] * 600 + [0])
    res = check(rule(missing="keep_last"), s)
    assert spans(res) == [(1, 11)] and res.episodes["duration_s"].tolist() == [600.0]
    assert res.summary()["missing_evaluations"] == 600
    # the same gap as absent rows (not NaN rows): the grid sees the same thing
    rows = mk([0, 5] + [0] * 600 + [0] * 3, drop=tuple(range(2, 602)))        # median step still 1 min
    assert spans(check(rule(missing="keep_last"), rows)) == [(1, 11)]
    # a shorter mapping lookback, and strictly younger: at 2 min the value is gone
    assert spans(check(rule(missing="keep_last"), mk([0, 5, NAN, NAN, NAN, 0]))) == [(1, 5)]
    short = replay(rule(missing="keep_last"), mk([0, 5, NAN, NAN, NAN, 0]), lookback_s="2m")
    assert spans(short) == [(1, 3)]
    pd.testing.assert_frame_equal(short.episodes, replay_reference(rule(missing="keep_last"),
                                                                   mk([0, 5, NAN, NAN, NAN, 0]), lookback_s=120))
    # a for longer than the lookback widens the window to it (the export reads last_over_time(x[for])):
    # breaches 1..20, fires at 16 (pending from 1, 15 min); last sample at 20 is carried while younger
    # than 15 min (evaluations 21..34), so the alert resolves at 35
    long_for = mk([0] + [5] * 20 + [NAN] * 40 + [0])
    assert spans(check(rule(missing="keep_last", for_s="15m"), long_for)) == [(16, 35)]
    # consecutive counts in the window too: for 10m + 3 more evaluations = 13 min
    assert spans(check(rule(missing="keep_last", for_s="10m", consecutive=4), long_for)) == [(14, 33)]


def test_missing_resolve_is_not_breaching():
    s = mk([0, 5, 5, NAN, 5, 5, 0])
    res = check(rule(missing="resolve"), s)
    assert spans(res) == [(1, 3), (4, 6)] and spans(res, "nodata") == []
    # keep_firing_for bridges a missing evaluation (as under nodata); no no-data rows here
    assert spans(check(rule(missing="resolve", keep_firing_for_s="1m"), s)) == [(1, 7 - 1)]


def test_period_splits_the_summary():
    # episodes [1, 3), [4, 6), [8, 9); interval 1 min, span 9 min
    res = check(rule(), mk([0, 5, 5, 0, 5, 5, 0, 0, 5, 0]))
    a = res.period(None, T0 + pd.Timedelta("4min"))
    b = res.period(T0 + pd.Timedelta("4min"), None)
    assert (a["episodes"], a["time_in_alert_s"], a["span_s"]) == (1, 120.0, 240.0)
    assert (b["episodes"], b["time_in_alert_s"], b["span_s"]) == (2, 180.0, 300.0)
    assert a["episodes_per_week"] == pytest.approx(1 / (240 / (7 * 86400)))
    whole = res.summary()
    assert a["episodes"] + b["episodes"] == whole["episodes"]
    assert a["time_in_alert_s"] + b["time_in_alert_s"] == whole["time_in_alert_s"]
    # an episode belongs to the window it starts in; the last evaluation counts for episodes only
    assert res.period("2026-01-01 00:02", "2026-01-01 00:05")["episodes"] == 1
    assert res.period(T0 + pd.Timedelta("8min"))["episodes"] == 1
    with pytest.raises(ValidationError, match="before its start"):
        res.period(T0 + pd.Timedelta("5min"), T0)


def test_warning_and_critical_replayed_separately():
    s = mk([0, 85, 95, 97, 85, 70, 0])
    res = check(Rule("r", "m", ">", warning=80, critical=90), s)
    assert spans(res, "warning") == [(1, 5)]
    assert spans(res, "critical") == [(2, 4)]
    assert res.episodes["severity"].tolist() == ["warning", "critical"]    # sorted by start
    assert res.episodes["peak"].tolist() == [97.0, 97.0]
    only = replay(Rule("r", "m", ">", warning=80, critical=90), s, severity="critical")
    assert only.episodes["severity"].tolist() == ["critical"]
    with pytest.raises(ValidationError):
        replay(rule(), s, severity="warning")                              # no warning level set
    # the union ("any level") is one episode
    assert res.summary()["episodes"] == 1 and res.summary("critical")["episodes"] == 1
    assert res.summary()["time_in_alert_s"] == 240.0 and res.summary("critical")["time_in_alert_s"] == 120.0
    union = res.alert_episodes()
    assert [(minutes(a), minutes(b)) for a, b in zip(union["start"], union["end"], strict=True)] == [(1, 5)]
    tl = res.timeline()
    assert tl["warning"].tolist() == [False, True, True, True, True, False, False]
    assert tl["critical"].tolist() == [False, False, True, True, False, False, False]


def test_evaluation_interval_coarser_than_data():
    s = mk([0, 5, 0, 0, 5, 5, 5, 0, 0])
    res = check(rule(interval_s="2m"), s)          # evaluations at 0, 2, 4, 6, 8 see 0, 0, 5, 5, 0
    assert len(res.ts_ns) == 5 and spans(res) == [(4, 8)]


def test_jittered_timestamps_fall_on_grid():
    base = mk([0, 5, 5, 0, 0, 5, 0])
    idx = base.index + pd.to_timedelta([0, -2, -3, -1, 0, -4, 0], unit="s")
    s = pd.Series(base.to_numpy(), index=idx)
    res = check(rule(), s)
    assert spans(res) == [(1, 3), (5, 6)]


def test_input_validation():
    with pytest.raises(InsufficientDataError):
        replay(rule(), mk([1.0]))
    with pytest.raises(ValidationError):
        replay(rule(), pd.Series([1.0, 2.0], index=pd.date_range("2026-01-01", periods=2, freq="1min")))
    s = mk([0, 5, 0])
    dup = pd.concat([s, s.iloc[:1]])
    with pytest.raises(ValidationError, match="duplicate timestamp"):
        replay(rule(), dup)
    # unsorted input is sorted
    assert spans(replay(rule(), s.iloc[::-1])) == [(1, 2)]


def test_points_frame_selects_matching_series():
    a, b = mk([0, 5, 0], name='lat{svc="a"}'), mk([5, 5, 0], name='err{svc="a"}')
    frame = pd.concat([pd.DataFrame({"series": x.name, "ts": x.index, "value": x.to_numpy()}) for x in (a, b)])
    res = replay(Rule("r", "lat*", ">", critical=4), frame)
    assert res.series == 'lat{svc="a"}' and spans(res) == [(1, 2)]
    with pytest.raises(ValidationError, match="2 series"):
        replay(Rule("r", "*", ">", critical=4), frame)
    both = replay_all(Rule("r", "*", ">", critical=4), frame)
    assert list(both) == ['lat{svc="a"}', 'err{svc="a"}']
    assert spans(both['err{svc="a"}']) == [(0, 2)] and spans(both['lat{svc="a"}']) == [(1, 2)]
    with pytest.raises(ValidationError, match="selects none"):
        replay_all(Rule("r", "cpu*", ">", critical=4), frame)


# ----------------------------------------------------------------------------------- summary
def test_summary_hand_computed_week():
    v = np.zeros(169)                      # hourly for exactly one week (168 h span)
    v[10:13] = 5                           # 3 h episode (10 -> 13)
    v[100] = 5                             # 1 h episode (100 -> 101)
    res = replay(rule(), mk(v, freq="1h"))
    s = res.summary()
    assert s["episodes"] == 2 and s["episodes_per_week"] == pytest.approx(2.0)
    assert s["time_in_alert_s"] == 4 * 3600
    assert s["time_in_alert_pct"] == pytest.approx(100 * 4 / 168)
    assert s["duration_median_s"] == 2 * 3600
    assert s["duration_p95_s"] is None and any("95th percentile" in n for n in s["notes"])
    assert not any("extrapolated" in n for n in s["notes"])


def test_summary_p95_needs_twenty_closed_episodes():
    v = []
    for k in range(1, 21):                 # episodes lasting 1..20 minutes, one quiet minute between
        v += [5] * k + [0]
    s = replay(rule(), mk(v)).summary()
    assert s["episodes"] == 20
    # numpy linear percentile of 60..1200 s: position 0.95 * 19 = 18.05 -> 1140 + 0.05 * 60
    assert s["duration_p95_s"] == pytest.approx(1143.0)
    assert s["duration_median_s"] == pytest.approx(630.0)
    assert any("extrapolated" in n for n in s["notes"])


def test_summary_against_incidents():
    pytest.importorskip("core.analysis.scoring")
    v = np.zeros(169)
    v[10:13] = 5
    v[100] = 5
    res = replay(rule(), mk(v, freq="1h"))
    h = pd.Timedelta("1h")
    incidents = pd.DataFrame({"start": [T0 + 9 * h, T0 + 50 * h], "end": [T0 + 11 * h, T0 + 51 * h]})
    s = res.summary(incidents=incidents)
    # episode 10-13 catches incident 1 (delay 1 h, reset 13 - 11 = 2 h); episode at 100 is a false alarm
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 1)
    assert s["precision"] == 0.5 and s["recall"] == 0.5
    assert s["detection_delay_s"] == 3600.0 and s["reset_time_s"] == 7200.0
    # one false alarm over exactly one week of history; no repeat episodes
    assert s["false_alarms_per_week"] == pytest.approx(1.0) and s["duplicates"] == 0
    # incidents of another series are ignored; global ones (series None) kept
    tagged = incidents.assign(series=["m", "other"])
    assert replay(rule(), mk(v, freq="1h")).summary(incidents=tagged)["fn"] == 0


# ----------------------------------------------------------------------------------- properties
VALUES = st.lists(st.one_of(st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]), st.just(NAN)),
                  min_size=2, max_size=60)


@st.composite
def rule_and_series(draw, comparator=None):
    vals = draw(VALUES)
    comp = comparator or draw(st.sampled_from([">", ">=", "<", "<="]))
    up = comp in (">", ">=")
    thr = draw(st.sampled_from([0.5, 1.0, 2.0, 2.5, 3.0, 4.0]))
    two = draw(st.booleans())
    kw = {}
    if two:
        other = thr + 1 if up else thr - 1
        kw = {"warning": thr, "critical": other}
    else:
        kw = {"critical": thr}
    if draw(st.booleans()):
        lo = min(kw.values()) if up else max(kw.values())
        kw["recovery"] = lo - draw(st.sampled_from([0.5, 1.0, 2.0])) * (1 if up else -1)
    step = 60
    kw["for_s"] = draw(st.sampled_from([0, 30, 60, 90, 120, 300]))
    kw["keep_firing_for_s"] = draw(st.sampled_from([0, 30, 60, 120, 150, 300]))
    kw["consecutive"] = draw(st.integers(1, 4))
    kw["missing"] = draw(st.sampled_from(["nodata", "keep_last", "resolve"]))
    if draw(st.booleans()):
        kw["interval_s"] = draw(st.sampled_from([60, 120, 90]))
    s = mk(vals, freq=f"{step}s")
    drop = draw(st.lists(st.integers(1, len(vals) - 2), max_size=3, unique=True)) if len(vals) > 3 else []
    if drop:
        s = s.drop(s.index[drop])
    return Rule("p", "m", comp, **kw), s


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_and_series())
def test_vectorised_replay_equals_reference_loop(case):
    r, s = case
    res = replay(r, s)
    pd.testing.assert_frame_equal(res.episodes, replay_reference(r, s))
    if r.missing != "resolve":     # a 1-2 minute window: gaps in these short series do raise nodata rows
        pd.testing.assert_frame_equal(replay(r, s, lookback_s=90).episodes, replay_reference(r, s, lookback_s=90))
    # and the run-based engine equals the point-by-point recurrence (_firing)
    x = res.values
    n = x.size
    from core.alerting.replay import _counts
    run_need, keep = _counts(r.for_s, r.keep_firing_for_s, r.consecutive, int(res.interval_s * 1e9))
    for sev, thr in r.triggers().items():
        dense = _firing(x, thr, r.comparator, r.recovery, run_need, keep, None)
        assert np.array_equal(dense, res.firing[sev])
        assert np.array_equal(_mask_of(*res.runs[sev], n), res.firing[sev])


@settings(max_examples=100, deadline=None)
@given(rule_and_series())
def test_nodata_fires_exactly_like_resolve(case):
    """A missing evaluation is "condition false" in every mode: nodata and resolve fire identically
    (nodata only adds its no-data rows), and keep_last never fires less than resolve."""
    r, s = case
    modes = {m: replay(Rule.from_dict({**r.to_dict(), "missing": m}), s) for m in ("nodata", "resolve", "keep_last")}
    for sev in r.triggers():
        assert np.array_equal(modes["nodata"].firing[sev], modes["resolve"].firing[sev])
        assert not (modes["resolve"].firing[sev] & ~modes["keep_last"].firing[sev]).any()
    # every nodata episode lies in a run of missing evaluations and starts once the last finite sample
    # is at least the window old; a run with no evaluation that old has none
    res = modes["nodata"]
    nod = res.episodes[res.episodes["severity"] == "nodata"]
    w = res.nodata_window_s * 1e9
    fin = s.index[np.isfinite(s.to_numpy())].as_unit("ns").asi8
    miss = res.missing
    for a, b in zip(nod["start"], nod["end"], strict=True):
        i = int(np.searchsorted(res.ts_ns, pd.Timestamp(a).value))
        prior = fin[fin <= res.ts_ns[i]]
        last = prior[-1] if prior.size else res.ts_ns[0]
        assert miss[i] and res.ts_ns[i] - last >= w
        assert i == 0 or not miss[i - 1] or res.ts_ns[i - 1] - last < w       # the first such evaluation
        j = int(np.searchsorted(res.ts_ns, pd.Timestamp(b).value))           # ends when a sample is back
        assert miss[i:j].all() and (not miss[j] or j == miss.size - 1)
    assert len(nod) <= len(_runs_of(miss))


def _runs_of(mask: np.ndarray) -> list[int]:
    d = np.diff(np.concatenate(([0], mask.astype(int), [0])))
    return list(np.flatnonzero(d == 1))


@settings(max_examples=200, deadline=None)
@given(rule_and_series(comparator=">"), st.sampled_from([0.5, 1.0, 1.5, 2.0]))
def test_raising_threshold_shrinks_firing_set(case, delta):
    """Raising a ``>`` threshold can only remove firing evaluations, whatever the options.

    Why: the breach set shrinks, so breach runs get shorter and the set of evaluations where the
    rule *fires* (run >= consecutive + for) shrinks; the *hold* set is either the breach set (shrinks)
    or ``value >= recovery`` (unchanged here, recovery kept fixed); keep-firing extends hold runs by
    a fixed number of evaluations, which is monotone too. Firing = "a fire earlier in the current
    extended-hold run", monotone in both. Hence time in alert never increases. The number of
    EPISODES is not monotone: a higher threshold can split one episode in two (see below).
    """
    r, s = case
    r2 = Rule.from_dict({**r.to_dict(), **{k: v + delta for k, v in r.triggers().items()}})
    a, b = replay(r, s), replay(r2, s)
    for sev in r.triggers():
        assert not (b.firing[sev] & ~a.firing[sev]).any()
        assert b.summary(sev)["time_in_alert_s"] <= a.summary(sev)["time_in_alert_s"]


def test_raising_threshold_can_add_episodes():
    s = mk([10, 6, 10, 0])
    assert len(replay(rule(critical=5), s).episodes) == 1
    assert len(replay(rule(critical=7), s).episodes) == 2
    # with a pending period too: one long episode at 5 becomes two at 7
    s2 = mk([10, 10, 10, 6, 10, 10, 10, 0])
    assert spans(replay(rule(critical=5, for_s="1m"), s2)) == [(1, 7)]
    assert spans(replay(rule(critical=7, for_s="1m"), s2)) == [(1, 3), (5, 7)]


@settings(max_examples=150, deadline=None)
@given(rule_and_series())
def test_option_monotonicity(case):
    """Longer ``for`` or more consecutive breaches: firing set shrinks (fewer fire points, same hold).
    Longer keep_firing_for: grows (hold runs only get longer). Every episode needs its own breach run of
    at least consecutive + ceil(for / interval) evaluations (a run cannot start two episodes: it lies
    inside one hold run), so episodes <= qualifying breach runs.

    The keep_last carry window is held fixed here (lookback 1 h, longer than any for in these cases):
    by default it is max(lookback, for + ...) like the export's, so a longer ``for`` also carries a
    value longer and can add firing evaluations at the end of a gap."""
    r, s = case
    lb = 3600
    base = replay(r, s, lookback_s=lb)
    longer_for = replay(Rule.from_dict({**r.to_dict(), "for": r.for_s + 60}), s, lookback_s=lb)
    more_cons = replay(Rule.from_dict({**r.to_dict(), "consecutive": r.consecutive + 1}), s, lookback_s=lb)
    more_keep = replay(Rule.from_dict({**r.to_dict(), "keep_firing_for": r.keep_firing_for_s + 60}), s,
                       lookback_s=lb)
    for sev, thr in r.triggers().items():
        f = base.firing[sev]
        assert not (longer_for.firing[sev] & ~f).any()
        assert not (more_cons.firing[sev] & ~f).any()
        assert not (f & ~more_keep.firing[sev]).any()
        need = r.consecutive + int(np.ceil(r.for_s / base.interval_s))
        cmp = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}[r.comparator]
        with np.errstate(invalid="ignore"):
            breach = cmp(base.values, thr)
        padded = np.concatenate(([0], breach.astype(int), [0]))
        d = np.diff(padded)
        lengths = np.flatnonzero(d == -1) - np.flatnonzero(d == 1)
        assert (base.episodes["severity"] == sev).sum() <= (lengths >= need).sum()


@settings(max_examples=100, deadline=None)
@given(rule_and_series(), st.floats(0.0, 1.0))
def test_replay_is_causal(case, frac):
    """The state at an evaluation depends only on the data up to it: replaying a prefix gives the
    same firing states on that prefix. (The series resolution is fixed here; by default it is the
    median step of the whole series, a property of the series like its scrape interval.)"""
    r, s = case
    cut = max(1, int(frac * len(s)))
    full, part = replay(r, s, resolution_s=60), replay(r, s.iloc[:cut], resolution_s=60)
    k = part.ts_ns.size
    assert np.array_equal(full.ts_ns[:k], part.ts_ns)
    for sev in r.triggers():
        assert np.array_equal(full.firing[sev][:k], part.firing[sev])


# ----------------------------------------------------------------------------------- sweep
@settings(max_examples=100, deadline=None)
@given(rule_and_series(), st.sampled_from([None, 0.5, 1.0]))
def test_sweep_matches_replay_per_threshold(case, offset):
    r, s = case
    up = r.comparator in (">", ">=")
    thresholds = np.array([0.5, 1.0, 2.0, 3.0, 4.5])
    out = sweep(s, r.comparator, thresholds, for_s=r.for_s, keep_firing_for_s=r.keep_firing_for_s,
                recovery_offset=offset, consecutive=r.consecutive, missing=r.missing, interval_s=r.interval_s,
                block=3 * len(s) + 7)               # small blocks: exercises the blocking too
    for i, t in enumerate(thresholds):
        rec = None if offset is None else (t - offset if up else t + offset)
        one = replay(Rule("x", "m", r.comparator, critical=t, for_s=r.for_s, keep_firing_for_s=r.keep_firing_for_s,
                          recovery=rec, consecutive=r.consecutive, missing=r.missing, interval_s=r.interval_s), s)
        sm = one.summary()
        assert out["episodes"].iloc[i] == sm["episodes"]
        assert out["time_in_alert_s"].iloc[i] == sm["time_in_alert_s"]
    if up:      # time in alert never increases with the threshold, even with a recovery offset
        assert (np.diff(out["time_in_alert_s"].to_numpy()) <= 0).all()


def test_sweep_hand_values_and_incidents():
    pytest.importorskip("core.analysis.scoring")
    s = mk([0, 1, 2, 3, 2, 1, 0, 3, 0])
    h = pd.Timedelta("1min")
    inc = pd.DataFrame({"start": [T0 + 2 * h], "end": [T0 + 4 * h]})
    out = sweep(s, ">", [0.5, 1.5, 2.5, 3.5], incidents=inc)
    assert out["episodes"].tolist() == [2, 2, 2, 0]
    assert out["time_in_alert_s"].tolist() == [360.0, 240.0, 120.0, 0.0]
    assert out["time_in_alert_pct"].tolist() == pytest.approx([75.0, 50.0, 25.0, 0.0])
    assert out["precision"].tolist()[:3] == [0.5, 0.5, 0.5] and np.isnan(out["precision"].iloc[3])
    assert out["recall"].tolist() == [1.0, 1.0, 1.0, 0.0]
    # delay: first alert at 1, 2, 3 minutes vs incident start at 2
    assert out["detection_delay_s"].tolist()[:3] == [-60.0, 0.0, 60.0]


SCORE_COLUMNS = ["precision", "recall", "f1", "false_alarms", "detection_delay_s", "reset_time_s"]


def _summary_scores(sm: dict) -> np.ndarray:
    """Replay.summary's scores in sweep's columns (None -> NaN; false alarms = score_events' fp, which
    the sweep leaves NaN when no incident is labelled: nothing is judged then)."""
    vals = {**sm, "false_alarms": sm["fp"] if sm["incidents"] else None}
    return np.array([np.nan if vals[c] is None else vals[c] for c in SCORE_COLUMNS], dtype=float)


@st.composite
def incident_windows(draw, n_minutes: int):
    """0-4 incident windows (minute offsets, possibly outside the data, overlapping, or open-ended)."""
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        a = draw(st.integers(-3, n_minutes + 2))
        length = draw(st.integers(0, 15))
        start = T0 + pd.Timedelta(minutes=a) + pd.Timedelta(seconds=draw(st.sampled_from([0, 30])))
        end = pd.NaT if draw(st.integers(0, 7)) == 0 else start + pd.Timedelta(minutes=length)
        rows.append((start, end))
    return pd.DataFrame({"start": pd.to_datetime([r[0] for r in rows], utc=True),
                         "end": pd.to_datetime([r[1] for r in rows], utc=True)})


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_and_series(), st.sampled_from([None, 0.5, 1.0]), st.data())
def test_sweep_incident_scores_equal_the_per_threshold_path(case, offset, data):
    """The all-thresholds-at-once scoring gives exactly what replaying each threshold on its own and
    scoring its episodes with score_events gives (Replay.summary), None there being NaN here."""
    pytest.importorskip("core.analysis.scoring")
    r, s = case
    up = r.comparator in (">", ">=")
    inc = data.draw(incident_windows(len(s) + 3))
    early = data.draw(st.sampled_from([0.0, 30.0, 120.0]))
    thresholds = np.array([0.5, 1.0, 2.0, 3.0, 4.5, 9.0])
    out = sweep(s, r.comparator, thresholds, for_s=r.for_s, keep_firing_for_s=r.keep_firing_for_s,
                recovery_offset=offset, consecutive=r.consecutive, missing=r.missing, interval_s=r.interval_s,
                incidents=inc, early_s=early, block=2 * len(s) + 5)
    for i, t in enumerate(thresholds):
        rec = None if offset is None else (t - offset if up else t + offset)
        one = replay(Rule("x", "m", r.comparator, critical=t, for_s=r.for_s, keep_firing_for_s=r.keep_firing_for_s,
                          recovery=rec, consecutive=r.consecutive, missing=r.missing, interval_s=r.interval_s), s)
        sm = one.summary(incidents=inc, early_s=early)
        got = out[SCORE_COLUMNS].iloc[i].to_numpy(dtype=float)
        np.testing.assert_array_equal(got, _summary_scores(sm), err_msg=f"threshold {t}")


def test_sweep_scores_match_on_a_long_bursty_series():
    """Same check at scale: 3 days of minutes, 60 thresholds, 12 incidents (several per episode and
    several episodes per incident), with for / keep_firing_for / recovery and missing data."""
    pytest.importorskip("core.analysis.scoring")
    rng = np.random.default_rng(7)
    n = 3 * 1440
    v = 100 + rng.gamma(2.0, 5.0, n) + np.convolve((rng.random(n) < 0.01) * 1.0, np.ones(20), "same") * 30
    v[rng.random(n) < 0.003] = np.nan
    s = mk(v)
    starts = np.sort(rng.choice(n, 12, replace=False))
    inc = pd.DataFrame({"start": s.index[starts], "end": s.index[starts] + pd.Timedelta("25min")})
    thresholds = np.linspace(105, 190, 60)
    kw = dict(for_s="3m", keep_firing_for_s="5m", consecutive=2, missing="nodata")
    out = sweep(s, ">", thresholds, recovery_offset=8.0, incidents=inc, early_s=300, **kw)
    assert out["recall"].max() > 0.5 and (out["episodes"] > 0).sum() > 20      # the case is not vacuous
    for i in range(0, 60, 7):
        t = thresholds[i]
        sm = replay(Rule("x", "m", ">", critical=t, recovery=t - 8.0, **kw), s).summary(incidents=inc, early_s=300)
        np.testing.assert_array_equal(out[SCORE_COLUMNS].iloc[i].to_numpy(dtype=float), _summary_scores(sm))


def test_sweep_scores_hand_case_with_overlaps_and_open_episode():
    pytest.importorskip("core.analysis.scoring")
    # at 1.5: episodes [1, 4) and [6, 9) (still firing); at 2.5: [2, 3) and [7, 9) (still firing)
    s = mk([0, 2, 3, 2, 0, 0, 2, 3, 3])
    m = pd.Timedelta("1min")
    inc = pd.DataFrame({"start": [T0 + 2 * m, T0 + 3 * m, T0 + 5 * m],
                        "end": [T0 + 2 * m, T0 + 5 * m, T0 + 6 * m]})
    out = sweep(s, ">", [1.5, 2.5, 5.0], incidents=inc)
    # 1.5: episode 1 catches incidents 1 and 2 (ends at 4 >= 2 and 3); episode 2 (6..open) catches
    # incident 3 (starts 6 <= 6). tp 2 of 2, all 3 caught. delays 1-2, 1-3, 6-5 min -> median -1 min;
    # resets 4-2, 4-5 min; incident 3's last alert is still firing -> left out -> median of 2, -1 = 0.5 min
    assert out["precision"].iloc[0] == 1.0 and out["recall"].iloc[0] == 1.0 and out["f1"].iloc[0] == 1.0
    assert out["detection_delay_s"].iloc[0] == -60.0 and out["reset_time_s"].iloc[0] == 30.0
    # 2.5: [2, 3) catches incident 1 (2 <= 2, end 2 <= 3) and, bounds inclusive, incident 2 (ends at 3,
    # which is where incident 2 starts); [7, open) starts after incident 3 ends (6): a false alarm.
    # 2 of 3 caught; precision = caught / (caught + false alarms) = 2 / 3.
    # delays 2-2, 2-3 min -> median -30 s; resets 3-2, 3-5 min -> median -30 s
    assert out["precision"].iloc[1] == pytest.approx(2 / 3) and out["recall"].iloc[1] == pytest.approx(2 / 3)
    assert out["false_alarms"].tolist() == [0, 1, 0]
    assert out["detection_delay_s"].iloc[1] == -30.0 and out["reset_time_s"].iloc[1] == -30.0
    assert out["f1"].iloc[1] == pytest.approx(2 / 3)
    # 5.0: no alert -> precision and f1 undefined, recall 0
    assert np.isnan(out["precision"].iloc[2]) and np.isnan(out["f1"].iloc[2]) and out["recall"].iloc[2] == 0.0
    # no incidents: nothing to judge against
    none = sweep(s, ">", [1.5], incidents=inc.iloc[:0])
    assert none[SCORE_COLUMNS].isna().all(axis=None)
    with pytest.raises(ValidationError, match="early_s"):
        sweep(s, ">", [1.5], incidents=inc, early_s=-1)


def test_sweep_scores_incident_spanning_several_episodes():
    pytest.importorskip("core.analysis.scoring")
    s = mk([0, 5, 0, 5, 0, 5, 0])                     # episodes [1, 2), [3, 4), [5, 6)
    inc = pd.DataFrame({"start": [T0 + pd.Timedelta("90s")], "end": [T0 + pd.Timedelta("270s")]})
    out = sweep(s, ">", [4.0], incidents=inc).iloc[0]
    # the incident (1.5 to 4.5 min) overlaps the first two episodes: first start 1 min, last end 4 min.
    # The second one only repeats it (a duplicate, neither tp nor fp); the third is a false alarm:
    # precision = 1 caught / (1 caught + 1 false alarm)
    assert out["precision"] == 0.5 and out["recall"] == 1.0 and out["false_alarms"] == 1
    assert out["detection_delay_s"] == -30.0 and out["reset_time_s"] == -30.0


def test_sweep_rejects_bad_input():
    s = mk([0, 1, 2])
    with pytest.raises(ValidationError):
        sweep(s, "!=", [1.0])
    with pytest.raises(ValidationError):
        sweep(s, ">", [])
    with pytest.raises(ValidationError):
        sweep(s, ">", [np.nan])
    with pytest.raises(ValidationError):
        sweep(s, ">", [1.0], recovery_offset=-1)


# ----------------------------------------------------------------------------------- CLI
def _write(tmp_path, values) -> Path:
    ts = pd.date_range(T0, periods=len(values), freq="1min", tz="UTC")
    p = tmp_path / "lat.csv"
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": values}).to_csv(p, index=False)
    return p


def test_cli_json(tmp_path, capsys):
    from core.__main__ import main

    p = _write(tmp_path, [0, 5, 5, 0, 5, 5, 5, 0])
    inc = tmp_path / "inc.csv"
    inc.write_text("series,start,end\n,2026-01-01 00:04:00,2026-01-01 00:05:00\n")
    rc = main(["replay", str(p), "--comparator", ">", "--threshold", "4", "--for", "1m", "--incidents", str(inc),
               "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert [(e["start"], e["end"], e["severity"]) for e in out["episodes"]] == [
        ("2026-01-01T00:02:00+00:00", "2026-01-01T00:03:00+00:00", "critical"),
        ("2026-01-01T00:05:00+00:00", "2026-01-01T00:07:00+00:00", "critical")]
    summ = out["summary"]["any"]
    assert summ["episodes"] == 2 and summ["time_in_alert_s"] == 180.0
    assert summ["precision"] == 0.5 and summ["recall"] == 1.0 and summ["detection_delay_s"] == 60.0
    assert out["rule"]["for"] == "1m"


def test_cli_requires_series_when_file_has_several(tmp_path, capsys):
    from core.__main__ import main

    p = tmp_path / "long.csv"
    p.write_text("series,timestamp,value\n"
                 "a,2026-01-01T00:00:00Z,0\na,2026-01-01T00:01:00Z,5\na,2026-01-01T00:02:00Z,0\n"
                 "b,2026-01-01T00:00:00Z,5\nb,2026-01-01T00:01:00Z,5\nb,2026-01-01T00:02:00Z,0\n")
    assert main(["replay", str(p), "--threshold", "4"]) == 2
    assert "--series" in capsys.readouterr().err
    assert main(["replay", str(p), "--threshold", "4", "--series", "b", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["series"] == "b" and [e["start"] for e in out["episodes"]] == ["2026-01-01T00:00:00+00:00"]


def test_cli_table_and_errors(tmp_path, capsys):
    from core.__main__ import main

    p = _write(tmp_path, [0, 5, 0])
    assert main(["replay", str(p), "--warning", "4", "--critical", "6"]) == 0
    text = capsys.readouterr().out
    assert "[warning] 1 episode(s)" in text and "[critical] 0 episode(s)" in text
    assert main(["replay", str(p), "--warning", "6", "--critical", "4"]) == 2
    assert "warning 6 must be below critical 4" in capsys.readouterr().err
    assert main(["replay", str(p)]) == 2
    assert main(["replay", str(p), "--threshold", "4", "--for", "soon"]) == 2
    assert "--for" in capsys.readouterr().err


def test_cli_table_lists_alerts_and_sums_up_nodata(tmp_path, capsys):
    from core.__main__ import main

    # 1-minute samples; gaps (NaN) at 3..4 (2 min), 10..29 (20 min) and 40..69 (30 min); 5 breaches at 1, 2
    v = [0, 5, 5] + [np.nan] * 2 + [0] * 5 + [np.nan] * 20 + [0] * 10 + [np.nan] * 30 + [0] * 5
    p = _write(tmp_path, v)
    assert main(["replay", str(p), "--threshold", "4"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    # one alert row (critical 1 -> 3); no nodata rows in the table
    assert sum("critical" in ln and "resolved" in ln for ln in lines) == 1
    assert not any(" nodata " in ln for ln in lines)
    assert "  52 evaluation(s) without data" in lines
    # last samples at 9 and 39: NoData from 19 to 30 (11 min) and from 49 to 70 (21 min); the 2-minute gap none
    assert "  no data: 2 episode(s), 32m in all (gaps of at least 10m, when the exported NoData alert fires; " \
           "--json lists them)" in lines
    assert main(["replay", str(p), "--threshold", "4", "--lookback", "1m", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    nod = [(e["start"], e["end"]) for e in out["episodes"] if e["severity"] == "nodata"]
    assert nod == [("2026-01-01T00:03:00+00:00", "2026-01-01T00:05:00+00:00"),
                   ("2026-01-01T00:10:00+00:00", "2026-01-01T00:30:00+00:00"),
                   ("2026-01-01T00:40:00+00:00", "2026-01-01T01:10:00+00:00")]


# ----------------------------------------------------------------------------------- benchmark
@pytest.mark.bench
def test_bench_replay_speed_goals():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "replay.py")], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    assert "SLOW" not in proc.stdout, proc.stdout
