"""Demo generator: determinism, scenarios with observable incidents, real gaps (never zeros), loading."""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd
import pytest

from core.data.frame import parse_key
from core.data.quality import quality_report
from data.generate import (
    METRICS,
    SCENARIOS,
    continue_fleet,
    default_shift,
    generate_fleet,
    service_names,
    storm_series,
    write_demo,
)
from tests.apptest_util import ROOT

T3 = 3 * 1440   # one-minute steps in three days


@pytest.fixture(scope="module")
def fleet():
    return generate_fleet(services=6, days=3, seed=11)


def test_same_seed_same_data_other_seed_differs(fleet):
    pts, inc = fleet
    pts2, inc2 = generate_fleet(services=6, days=3, seed=11)
    pd.testing.assert_frame_equal(pts, pts2)
    pd.testing.assert_frame_equal(inc, inc2)
    pts3, _ = generate_fleet(services=6, days=3, seed=12)
    assert len(pts3) != len(pts) or not np.array_equal(pts3["value"].to_numpy(), pts["value"].to_numpy())


def test_shape_keys_and_types(fleet):
    pts, _ = fleet
    assert list(pts.columns) == ["series", "ts", "value"]
    assert str(pts["ts"].dtype) == "datetime64[ns, UTC]" and pts["value"].dtype == np.float64
    keys = sorted(pts["series"].unique())
    assert len(keys) == 6 * len(METRICS)
    assert 'latency_p95_ms{service="api-gateway"}' in keys
    names = {parse_key(k)[1]["service"] for k in keys}
    assert names == set(service_names(6)) == {"api-gateway", "checkout", "payments", "search", "catalog", "cart"}
    assert pts["ts"].min() == pd.Timestamp("2026-10-01", tz="UTC")
    assert not pts.duplicated(["series", "ts"]).any()
    assert (pts["ts"].diff().dt.total_seconds().dropna().isin([*range(60, 100000, 60)])
            | (pts["series"] != pts["series"].shift()).iloc[1:]).all()


def test_every_scenario_present_with_its_incidents(fleet):
    _, inc = fleet
    scen = inc.attrs["scenarios"]
    assert sorted(scen.values()) == sorted(SCENARIOS)          # six services: each scenario once
    normal = next(s for s, k in scen.items() if k == "normal")
    assert not inc["series"].str.contains(f'service="{normal}"', regex=False).any()
    assert set(inc["kind"]) == set(SCENARIOS) - {"normal"}
    for kind in set(SCENARIOS) - {"normal"}:
        svc = next(s for s, k in scen.items() if k == kind)
        rows = inc[inc["kind"] == kind]
        assert rows["series"].str.contains(f'service="{svc}"', regex=False).all()
        assert (rows["end"] > rows["start"]).all()
    # incidents start after the warm-up (a quarter of the span for a 3-day fleet) so baselines have history
    assert (inc["start"] >= pd.Timestamp("2026-10-01 18:00", tz="UTC")).all()


def _service_of(inc: pd.DataFrame, kind: str) -> str:
    return next(s for s, k in inc.attrs["scenarios"].items() if k == kind)


def test_spike_is_visible_in_the_data(fleet):
    pts, inc = fleet
    svc = _service_of(inc, "spike")
    key = f'latency_p95_ms{{service="{svc}"}}'
    s = pts[pts["series"] == key].set_index("ts")["value"]
    w = inc[(inc["series"] == key)].iloc[0]
    inside = s[w["start"]:w["end"]]
    before = s[w["start"] - pd.Timedelta("6h"):w["start"] - pd.Timedelta("1min")]
    assert len(inside) >= 3
    assert inside.median() > 3 * before.median()               # spike multiplies latency by 4-8


def test_level_shift_persists(fleet):
    pts, inc = fleet
    svc = _service_of(inc, "level_shift")
    key = f'latency_p95_ms{{service="{svc}"}}'
    s = pts[pts["series"] == key].set_index("ts")["value"]
    w = inc[inc["series"] == key].iloc[0]
    day = pd.Timedelta("1D")
    before = s[w["start"] - day:w["start"]]
    after = s[w["end"]:w["end"] + day]
    # the shift is x1.3-1.6 on a daily cycle: compare the same hours a day apart
    assert after.median() / before.median() > 1.2


def test_gaps_are_missing_rows_never_zeros(fleet):
    pts, _ = fleet
    assert len(pts) < 6 * len(METRICS) * T3                    # rows were removed
    assert (pts["value"] == 0).sum() == 0                       # and nothing was zero-filled
    assert np.isinf(pts["value"]).sum() == 0
    rep = quality_report(pts)
    assert (rep["gaps"] > 0).all()                              # every series has gaps
    svc_longest = rep.assign(svc=rep["series"].str.extract(r'service="([^"]*)"', expand=False)) \
        .groupby("svc")["longest_gap_s"].max()
    assert (svc_longest >= 600).all()                           # each service had a >= 10 min outage
    assert rep["nan"].sum() > 0                                 # a few values reported as NaN
    assert (rep["flat_pct"] > 0).sum() == 1                     # the one stuck memory series
    assert (rep["resolution_s"] == 60).all()


def test_metric_subset_equals_full_rows(fleet):
    pts, inc = fleet
    sub, sub_inc = generate_fleet(services=6, days=3, seed=11, metrics=["latency_p95_ms"])
    full = pts[pts["series"].str.startswith("latency_p95_ms")].reset_index(drop=True)
    pd.testing.assert_frame_equal(sub, full)
    assert set(sub_inc["series"]) == {k for k in inc["series"] if k.startswith("latency_p95_ms")}
    with pytest.raises(ValueError):
        generate_fleet(services=2, days=1, metrics=["disk"])


def test_write_demo_loads_the_store(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "core.policy.versions", None)      # isolate from the policy module
    from core.data.store import Store

    out, db = tmp_path / "demo", tmp_path / "demo.duckdb"
    t0 = time.perf_counter()
    summary = write_demo(out, db, services=6, days=2, seed=3)
    elapsed = time.perf_counter() - t0
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([f"{s}.csv" for s in service_names(6)] + ["incidents.csv"])
    pts, inc = generate_fleet(services=6, days=2, seed=3)
    back = pd.read_csv(out / "checkout.csv")
    assert list(back.columns) == ["timestamp", "series", "value"]
    mine = pts[pts["series"].str.contains('service="checkout"', regex=False)]
    assert len(back) == len(mine)
    assert np.allclose(back["value"].to_numpy(), mine["value"].to_numpy(), equal_nan=True)
    assert (pd.to_datetime(back["timestamp"], utc=True).to_numpy() == mine["ts"].to_numpy()).all()
    with Store(db) as s:
        meta = s.list_series().set_index("key")
        assert len(meta) == 6 * len(METRICS) and int(meta["points"].sum()) == len(pts)
        assert meta.loc['latency_p95_ms{service="checkout"}', "kind"] == "histogram_quantile"
        assert meta.loc['request_rate{service="checkout"}', "kind"] == "rate"
        assert meta.loc['request_rate{service="checkout"}', "unit"] == "rps"
        assert meta.loc['cpu_pct{service="checkout"}', "unit"] == "percent"
        stored = s.list_incidents()
        assert len(stored) == len(inc) and set(stored["kind"]) == set(inc["kind"])
        nan_in_db = s.query_one("SELECT count(*) FROM points WHERE value IS NULL")[0]
        assert nan_in_db == int(pts["value"].isna().sum()) > 0
    assert summary["points"] == len(pts) and summary["incidents"] == len(inc)
    write_demo(out, db, services=6, days=2, seed=3)              # again: nothing doubles
    with Store(db) as s:
        assert len(s.list_incidents()) == len(inc)
        assert s.query_one("SELECT count(*) FROM points")[0] == len(pts)
    assert elapsed < 30


def test_cli_main(tmp_path, capsys):
    from data.generate import main

    assert main(["--out", str(tmp_path / "d"), "--services", "2", "--days", "1", "--metrics", "cpu_pct"]) == 0
    assert "2 series" in capsys.readouterr().out
    assert main(["--out", str(tmp_path / "d"), "--services", "2", "--days", "1", "--metrics", "disk"]) == 2


@pytest.mark.bench
def test_benchmark_set_size_and_speed():
    t0 = time.perf_counter()
    pts, _ = generate_fleet(services=100, metrics=["latency_p95_ms"])
    elapsed = time.perf_counter() - t0
    assert 0.97 * 4_320_000 < len(pts) < 4_320_000 and pts["series"].nunique() == 100
    print(f"generate_fleet(100 services, 1 metric): {len(pts):,} rows in {elapsed:.1f} s")


def test_csv_bytes_are_stable(tmp_path):
    """The demo CSVs are a pure function of the seed (hash taken before the writer was optimised)."""
    import hashlib

    write_demo(tmp_path, services=3, days=1, seed=5)
    blob = b"".join((tmp_path / f"{s}.csv").read_bytes() for s in service_names(3))
    assert hashlib.sha256(blob).hexdigest() == "a6751aa383b02021ea4e200a1fe1e23ca39cfec6ea73a361da03874f414efdbb"


# ---------------------------------------------------------------- exports that follow the demo (issue 14)
def _series(frame: pd.DataFrame, key: str) -> pd.Series:
    return frame[frame["series"] == key].set_index("ts")["value"]


@pytest.fixture(scope="module")
def six_continued():
    """6 services (every scenario, level_shift included) x 14 days and 3 more days."""
    demo, inc = generate_fleet(services=6, days=14, seed=7)
    return demo, inc, continue_fleet(services=6, days=14, seed=7, continue_days=3)


def test_continuation_follows_the_demo_and_is_deterministic(six_continued):
    demo, inc, newer = six_continued
    step = pd.Timedelta("1min")
    assert newer["ts"].min() == demo["ts"].max() + step
    assert newer["ts"].max() == demo["ts"].max() + pd.Timedelta(days=3)
    assert set(newer["series"]) == set(demo["series"])
    assert not newer.duplicated(["series", "ts"]).any() and np.isfinite(newer["value"]).all()
    assert 0.999 * 30 * 3 * 1440 < len(newer) < 30 * 3 * 1440          # 0.05 % scattered missing minutes
    pd.testing.assert_frame_equal(newer, continue_fleet(services=6, days=14, seed=7, continue_days=3))
    # levels go on: the first new day against the same weekday a week earlier (median, so an incident in
    # that day hardly moves it); the deploys' level shifts (x1.3-1.6 on latency each) are carried on
    shifted = set(default_shift(6))
    lvl = next(s for s, k in inc.attrs["scenarios"].items() if k == "level_shift")
    day = newer["ts"].min()
    for key in sorted(k for k in set(demo["series"]) - shifted if f'service="{lvl}"' not in k):
        before = _series(demo, key)[day - pd.Timedelta(days=7):day - pd.Timedelta(days=6)].median()
        after = _series(newer, key)[day:day + pd.Timedelta(days=1)].median()
        tol = 0.25 if key.startswith("memory_pct") else 0.12    # memory: leak and restarts every 3-7 days
        assert after == pytest.approx(before, rel=tol), (key, before, after)
    key = f'latency_p95_ms{{service="{lvl}"}}'
    first = _series(demo, key)[:pd.Timestamp("2026-10-03", tz="UTC")].median()
    assert _series(newer, key).median() > 1.25 * first                  # still shifted after the demo


def test_followups_cli_writes_newer_and_storm_exports(tmp_path, capsys):
    from data.generate import main

    rc = main(["--services", "2", "--days", "3", "--continue-days", "1", "--storm", 'cpu_pct{service="checkout"}',
               "--storm-hours", "4", "--out", str(tmp_path)])
    assert rc == 0
    newer = pd.read_csv(tmp_path / "newer.csv")
    storm = pd.read_csv(tmp_path / "storm.csv")
    assert list(newer.columns) == list(storm.columns) == ["timestamp", "series", "value"]
    assert newer["timestamp"].min() == "2026-10-04T00:00:00Z" and newer["timestamp"].max() == "2026-10-04T23:59:00Z"
    assert storm["timestamp"].min() == "2026-10-05T00:00:00Z" and len(storm) == 4 * 60
    assert set(storm["series"]) == {'cpu_pct{service="checkout"}'}
    assert main(["--continue-days", "1", "--shift", "nope", "--out", str(tmp_path)]) == 2
    assert main(["--continue-days", "1", "--shift", 'nope{a="b"}=2', "--out", str(tmp_path)]) == 2
    assert "not in the fleet" in capsys.readouterr().err


STARTS = ["2026-10-01T00:00:00Z", "2026-11-22T13:00:00Z"]   # a Thursday midnight; a Sunday afternoon


@pytest.fixture(scope="module", params=STARTS)
def story_data(request):
    """The journey's demo, newer and storm exports, at two starts (the journey's start follows the clock)."""
    from tests.story_util import APPLIED, CONTINUE_DAYS, DEMO, STORM_HOURS

    demo, inc = generate_fleet(**DEMO, start=request.param)
    newer = continue_fleet(**DEMO, start=request.param, continue_days=CONTINUE_DAYS)
    hist = pd.concat([_series(demo, APPLIED), _series(newer, APPLIED)])
    storm = storm_series(hist, hours=STORM_HOURS, seed=DEMO["seed"])
    return demo, inc, newer, storm


def test_the_newer_export_raises_a_drift_notice_on_the_shifted_series_only(story_data, tmp_path):
    """Through the core drift watch (``check_drift``, the one ``python -m core notify check-drift`` and
    ``ingest`` run): the shifted series gets a notice; the same series without the shift is stable."""
    from core.data.frame import make_key
    from core.data.store import Store
    from core.policy import notify
    from core.policy.drift_watch import check_drift
    from tests.story_util import CONTINUE_DAYS, DEMO, SHIFTED

    demo, _, newer, _ = story_data
    unshifted = continue_fleet(**DEMO, start=demo["ts"].min(), continue_days=CONTINUE_DAYS, shift={})
    control = make_key("request_rate", {"service": "api-gateway", "copy": "unshifted"})
    rows = []
    for key, after in ((SHIFTED, newer), (control, unshifted)):
        s = pd.concat([_series(demo, SHIFTED), _series(after, SHIFTED)])
        rows.append(pd.DataFrame({"timestamp": s.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "series": key,
                                  "value": s.to_numpy()}))
    csv = tmp_path / "two.csv"
    pd.concat(rows).to_csv(csv, index=False)
    with Store(tmp_path / "drift.duckdb") as store:
        store.ingest(csv, actor="test")
        got = {d.key: d for d in check_drift(store, config=notify.NotifyConfig())}
        notices = notify.notices(store, 10)
    hit, ctrl = got[SHIFTED], got[control]
    assert hit.result.verdict == "drift" and hit.notice_id is not None, hit.result.reason
    assert hit.result.test == "ks" and hit.result.n_recent >= 24 * CONTINUE_DAYS
    assert ctrl.result.verdict == "stable" and ctrl.notice_id is None, ctrl.result.reason
    assert list(notices["kind"]) == ["drift"] and SHIFTED in notices["title"].iloc[0]


def test_the_newer_export_drifts_only_the_shifted_series_of_the_whole_fleet(story_data):
    """Every series of the journey's fleet through the drift check with the watch's split (the applied
    series measured from the demo's end, as after the journey's change): only the planted shift drifts.
    Before seasonal adjustment, effective sizes and the materiality floor, 6 of 20 (Thursday start:
    checkout CPU, errors, latency and requests, api-gateway errors) and 2 of 20 (Sunday start) drifted."""
    from core.analysis.drift import drift
    from core.policy.drift_watch import baseline_split
    from tests.story_util import APPLIED, SHIFTED

    demo, _, newer, _ = story_data
    end = demo["ts"].max()
    flagged = {}
    for key in sorted(set(demo["series"])):
        s = pd.concat([_series(demo, key), _series(newer, key)])
        since = end + pd.Timedelta(minutes=1) if key == APPLIED else baseline_split(pd.DatetimeIndex(s.index))
        r = drift(s[s.index < since], s[s.index >= since])
        assert r.verdict != "insufficient", (key, r.reason)
        if r.verdict == "drift":
            flagged[key] = r.reason
    assert set(flagged) == {SHIFTED}, flagged


def test_the_storm_fires_the_applied_rule_far_above_its_prediction_and_the_newer_export_does_not(story_data):
    """The rule the journey applies (the balanced recommendation for APPLIED, cross-fitted predicted
    interval) replayed on the data after the change: inside its interval on the newer export (no trigger),
    more than twice its upper bound once the storm is in (the default alert-storm trigger fires)."""
    from core.alerting.recommend.fleet import recommend_fleet, split_points
    from core.alerting.replay import replay
    from core.alerting.rules import Rule
    from core.policy.policy_yaml import policy_from_yaml
    from tests.story_util import APPLIED, APPLIED_RULE, STORM_FACTOR, STORM_HOURS, STORM_MIN_HOURS

    demo, inc, newer, storm = story_data
    rules, _ = policy_from_yaml((ROOT / "data" / "demo_policy.yaml").read_text(encoding="utf-8"))
    rule_in_force = next(r for r in rules if r.name == APPLIED_RULE)
    items = split_points(demo[demo["series"] == APPLIED], inc, {APPLIED: rule_in_force})
    rec = recommend_fleet(items, workers=1, preset="balanced", train_fraction=0.7)[0]
    hi = rec["predicted_interval"][1]
    rule = Rule.from_dict({"name": APPLIED_RULE, "series": APPLIED, "comparator": ">", "warning": rec["warning"],
                           "critical": rec["critical"], "for": f"{rec['for_seconds']:.0f}s"})
    week = 7 * 86400

    def rate(values: pd.Series) -> float:
        s = replay(rule, values).summary()
        return s["episodes"] / ((values.index.max() - values.index.min()).total_seconds() / week)

    after = _series(newer, APPLIED)
    assert rate(after) <= hi                                            # the clean newer export: no storm
    assert replay(rule, storm).summary()["episodes"] == STORM_HOURS     # one episode per 60-min flap
    both = pd.concat([after, storm])
    assert (both.index.max() - both.index.min()).total_seconds() >= STORM_MIN_HOURS * 3600
    assert rate(both) > STORM_FACTOR * hi, (rate(both), hi)
