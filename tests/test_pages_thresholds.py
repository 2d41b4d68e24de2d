"""Thresholds page (AppTest): renders the rule in force, the slider moves the summary the right way
(checked against a count done by hand), Apply -> preview dialog -> confirm writes v2 plus an audit
entry, conflicts and missing reasons write nothing, viewers cannot apply, a series without a rule gets
a percentile-based draft. Plus the pure helpers of ui/thresholds/ and the slider-to-chart timing."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from core.alerting.rules import Rule
from core.data.store import audit
from core.policy import versions as pol
from core.policy.identity import User
from tests.apptest_util import EDITOR_AND_VIEWER_ROLES, app_store, demo_copy, ok, open_page, studio_db, texts
from tests.conftest import make_points

CHECKOUT = 'latency_p95_ms{service="checkout"}'
NO_RULE = 'error_rate_pct{service="api-gateway"}'
ED = User("ed", None, frozenset({"viewer", "editor"}))
ROLES = EDITOR_AND_VIEWER_ROLES


@pytest.fixture
def db(tmp_path, demo_db_bytes, monkeypatch):
    with demo_copy(tmp_path, demo_db_bytes, ROLES, monkeypatch) as p:
        yield p



def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def alert_pct(at) -> float:
    return float(metrics(at)["Time in alert"].rstrip(" %"))



def open_checkout(db):
    at = ok(open_page("thresholds.py"))
    at.selectbox(key="thr.series").set_value(CHECKOUT).run()
    return ok(at)


# ---------------------------------------------------------------------------- page
def test_renders_first_series_with_its_active_rule(db):
    at = ok(open_page("thresholds.py"))
    # keys sort cpu_pct first; FleetCpuHigh (cpu_pct{service="*"}) is in force for it
    assert at.selectbox(key="thr.series").value == 'cpu_pct{service="api-gateway"}'
    out = texts(at)
    assert "Rule **FleetCpuHigh** from v1 (in force) selects 2 stored series" in out
    assert (at.slider(key="thr.w").value, at.slider(key="thr.c").value) == (50.0, 90.0)
    assert at.selectbox(key="thr.cmp").value == ">" and at.text_input(key="thr.for").value == "5m"
    assert list(metrics(at)) == ["Episodes / week", "Time in alert", "Incidents caught",
                                 "Median detection delay", "Precision"]
    assert metrics(at)["Incidents caught"] == "none labelled"        # api-gateway is the "normal" service
    assert metrics(at)["Precision"] == "insufficient"
    assert at.button(key="thr.apply").disabled                       # nothing edited yet
    assert len(at.get("plotly_chart")) == 3                          # replay chart, sweep, level x for grid


def test_slider_moves_summary_in_the_right_direction_and_matches_hand_count(db):
    at = open_checkout(db)
    # CheckoutLatencyHigh: > 450 ms warning, never reached in these 3 days (max 395.6 ms)
    assert at.slider(key="thr.w").value == 450.0
    assert alert_pct(at) == 0.0 and metrics(at)["Incidents caught"] == "0/1"
    # make the rule memoryless so the time in alert can be counted by hand
    at.text_input(key="thr.for").input("0s")
    at.selectbox(key="thr.missing").set_value("resolve")
    at.slider(key="thr.w").set_value(300.0).run()
    low = alert_pct(ok(at))
    pts = app_store(db).get_points(CHECKOUT)
    v, t = pts["value"].to_numpy(), pts["ts"]
    span = (t.iloc[-1] - t.iloc[0]).total_seconds()
    expected = 100.0 * 300.0 * np.count_nonzero(v[:-1] > 300.0) / span   # 5-min evaluations above 300
    assert expected > 0 and low == pytest.approx(expected, abs=0.005)
    assert metrics(at)["Incidents caught"] == "1/1"                  # the degradation reaches ~395 ms
    at.slider(key="thr.w").set_value(350.0).run()
    high = alert_pct(ok(at))
    assert high < low                                                # higher '>' threshold, less alerting
    assert high == pytest.approx(100.0 * 300.0 * np.count_nonzero(v[:-1] > 350.0) / span, abs=0.005)
    assert not at.button(key="thr.apply").disabled


def test_apply_dialog_confirm_creates_version_2_and_audit_entry(db):
    at = open_checkout(db)
    at.slider(key="thr.w").set_value(350.0).run()
    at.button(key="thr.apply").click().run()
    ok(at)
    diff = next(df.value for df in at.dataframe if "field" in df.value.columns)
    assert diff[["rule", "field", "before", "after"]].values.tolist() == [
        ["CheckoutLatencyHigh", "warning", "450.0", "350.0"]]
    impact = next(df.value for df in at.dataframe if "metric" in df.value.columns)
    caught = impact[impact["metric"] == "incidents caught"]
    assert caught[["old", "new"]].values.tolist() == [["0", "1"]]      # old misses it, new catches it
    # one labelled incident: no recall rate, and no precision (gated as on the summary cards)
    recall = impact[impact["metric"] == "recall"]
    assert recall[["old", "new"]].values.tolist() == [["insufficient (n=1)", "insufficient (n=1)"]]
    assert impact.loc[impact["metric"] == "precision", "new"].str.startswith("insufficient").all()
    assert "(in-sample, not a prediction)" in texts(at)
    assert "Needs approval by a second person" in texts(at)           # the rule has a critical level
    at.text_input(key="thr.reason").input("catch the slow degradation")
    at.button(key="thr.confirm").click().run()
    ok(at)
    s = app_store(db)
    hist = pol.history(s)
    assert [v.number for v in hist] == [1, 2]
    v2 = hist[-1]
    assert (v2.author, v2.reason, v2.status, v2.parent_number) == (
        "ed", "catch the slow degradation", "pending_approval", 1)
    rule = next(r for r in v2.rule_dicts if r["name"] == "CheckoutLatencyHigh")
    assert (rule["warning"], rule["critical"], rule["labels"]) == (350.0, 900.0, {"team": "checkout"})
    entries = audit.list_audit(s, object="policy:default")
    assert entries["action"].tolist() == ["policy.apply", "policy.seed"]
    assert entries["actor"].tolist()[0] == "ed"
    out = texts(at)
    assert "Created v2: waits for a second person's approval." in out
    # the editor reloads from the version still in force (v1) and says v2 is pending
    assert "v2 waits for approval; this page edits the version in force (v1)" in out
    assert at.slider(key="thr.w").value == 450.0


def test_missing_reason_and_conflict_write_nothing(db):
    at = open_checkout(db)
    at.slider(key="thr.w").set_value(350.0).run()
    at.button(key="thr.apply").click().run()
    at.button(key="thr.confirm").click().run()                       # no reason given
    assert "reason: a reason is required" in texts(ok(at))
    s = app_store(db)
    assert len(pol.history(s)) == 1
    # someone else applies meanwhile: the page's base (v1) is stale
    v1 = pol.get_version(s, "default", 1)
    pol.apply(s, "default", v1.rule_dicts + [{"name": "Zz", "series": NO_RULE, "warning": 1.0}],
              base_version=1, user=ED, reason="other session")
    at.text_input(key="thr.reason").input("mine")
    at.button(key="thr.confirm").click().run()
    out = texts(ok(at))
    assert "Not applied. policy 'default' changed while you were editing" in out
    assert "Your edits are still on the page" in out
    assert len(pol.history(s)) == 2 and at.slider(key="thr.w").value == 350.0    # nothing lost


def test_viewer_sees_the_page_but_cannot_apply(db, monkeypatch):
    monkeypatch.setenv("STUDIO_USER", "carol")
    at = open_checkout(db)
    at.slider(key="thr.w").set_value(350.0).run()
    ok(at)
    assert metrics(at)["Incidents caught"] == "1/1"                  # the replay still works
    assert at.button(key="thr.apply").disabled
    assert "Read-only: carol has roles viewer" in texts(at)


def test_series_without_rule_offers_the_recommendation_engines_draft(db):
    from core.alerting.recommend import engine, snap
    from core.alerting.recommend.strategies import PRESETS

    at = ok(open_page("thresholds.py"))
    at.selectbox(key="thr.series").set_value(NO_RULE).run()
    assert "No rule in force matches this series." in texts(ok(at))
    assert at.selectbox(key="thr.preset").value == "balanced"
    at.button(key="thr.new").click().run()
    ok(at)
    # the levels are the engine's balanced recommendation (fit on the first 70 %, fixed-level strategies), on
    # the slider grid; its for and its check come with it
    store = app_store(db)
    pts = store.get_points(NO_RULE).sort_values("ts")
    values = pts.set_index("ts")["value"].rename(NO_RULE)
    names = tuple(n for n in PRESETS["balanced"].strategies if n != "seasonal")
    rec = engine.recommend(values, incidents=store.list_incidents(NO_RULE), train_fraction=0.7, strategies=names)
    assert rec.insufficient is None
    step = at.slider(key="thr.w").step
    assert at.slider(key="thr.w").value == pytest.approx(snap(rec.warning, step))
    assert at.text_input(key="thr.for").value == "5m"
    out = texts(at)
    assert "New rule **ApiGatewayErrorRatePctHigh**: levels from the recommendation engine" in out
    assert "Held-out check of the suggested levels" in " ".join(e.label for e in at.expander)
    # 3 days of data: the last 30 % is 0.9 days, too short to check the predicted rate; said, not scored
    assert "the held-out period covers only " in out and "a check needs at least 2d" in out
    assert f"**Risk {rec.risk}**" in out
    assert "In-sample: what this rule would have done over the stored history" in out
    assert not at.button(key="thr.apply").disabled
    # another preset suggests again: conservative levels sit further out than balanced ones
    at.selectbox(key="thr.preset").set_value("conservative").run()
    ok(at)
    assert at.text_input(key="thr.for").value == "10m"
    assert at.slider(key="thr.w").value >= snap(rec.warning, step)
    # the edited levels get their own held-out check (the engine's levels= path)
    at.slider(key="thr.w").set_value(at.slider(key="thr.w").value + 10 * step).run()
    at.button(key="thr.check").click().run()
    ok(at)
    assert "Held-out check of these levels" in " ".join(e.label for e in at.expander)
    assert "(given; balanced preset, for 10m)" in texts(at)


def test_flipping_comparator_resets_levels_to_the_other_tail(db):
    at = open_checkout(db)
    at.selectbox(key="thr.cmp").set_value("<").run()
    ok(at)
    # the '<' levels are fitted like a suggestion: first 70 % of the span, labelled incidents left out
    store = app_store(db)
    pts = store.get_points(CHECKOUT).sort_values("ts")
    ts = pts["ts"]
    keep = (ts < ts.iloc[0] + (ts.iloc[-1] - ts.iloc[0]) * 0.7) & pts["value"].notna()
    for a, b in zip(store.list_incidents(CHECKOUT)["start"], store.list_incidents(CHECKOUT)["end"], strict=True):
        keep &= ~((ts >= a) & (ts <= (b if pd.notna(b) else ts.iloc[-1])))
    v = pts.loc[keep, "value"].to_numpy()
    w, c = at.slider(key="thr.w").value, at.slider(key="thr.c").value
    assert w > c                                                       # '<': warning above critical
    step = at.slider(key="thr.w").step
    assert w == pytest.approx(round(np.quantile(v, 0.01) / step) * step)


# ---------------------------------------------------------------------------- helpers (pure)
def test_nice_step_snap_and_slider_spec():
    from core.alerting.recommend import snap
    from ui.thresholds.editor import nice_step, slider_spec

    assert nice_step(770.0) == 5.0 and nice_step(0.3) == 0.002 and nice_step(100.0) == 0.5
    assert snap(0.30000000000000004, 0.1) == 0.3 and snap(452.4, 5.0) == 450.0
    q = {"min": 10.0, "p0.1": 11.0, "p1": 12.0, "p50": 40.0, "p99": 70.0, "p99.9": 75.0, "max": 80.0}
    assert slider_spec(q, ">", [], "percent") == (40.0, 80.0, 0.2)
    assert slider_spec(q, ">", [95.0], "percent") == (40.0, 95.0, 0.5)    # widened to hold 95
    assert slider_spec(q, "<", [], None) == (10.0, 40.0, 0.2)
    assert slider_spec({**q, "max": 99.9}, ">", [120.0], "percent")[1] == 100.0   # clipped to 0..100


def test_rule_name_and_replace_rule():
    from ui.thresholds.editor import replace_rule, rule_name

    assert rule_name(CHECKOUT) == "CheckoutLatencyP95MsHigh"
    assert rule_name(CHECKOUT, ["CheckoutLatencyP95MsHigh"]) == "CheckoutLatencyP95MsHigh2"
    rules = [{"name": "A", "series": "a", "warning": 1.0}, {"name": "B", "series": "b", "warning": 2.0}]
    out = replace_rule(rules, Rule(name="A", series="a", warning=5.0))
    assert [(r["name"], r["warning"]) for r in out] == [("B", 2.0), ("A", 5.0)]


def test_edited_rule_keeps_other_fields_and_validates():
    from core.errors import ValidationError
    from ui.thresholds.editor import changed, edited_rule

    base = {"name": "R", "series": "m", "comparator": ">", "warning": 10.0, "critical": 20.0, "for": "5m",
            "labels": {"team": "x"}, "unit": "ms", "annotations": {"rationale": "why"}}
    vals = {"comparator": ">", "has_warning": True, "warning": 12.0, "has_critical": False, "critical": 20.0,
            "for": "1m", "keep_firing_for": "", "recovery": None, "consecutive": 2, "missing": "resolve"}
    r = edited_rule(base, vals)
    assert (r.warning, r.critical, r.for_s, r.consecutive, r.missing) == (12.0, None, 60.0, 2, "resolve")
    assert r.labels == {"team": "x"} and r.unit == "ms" and r.annotations == {"rationale": "why"}
    assert changed(base, r)
    same = dict(vals, warning=10.0, has_critical=True, **{"for": "5m"}, consecutive=1, missing="nodata")
    assert not changed(base, edited_rule(base, same))
    with pytest.raises(ValidationError, match="rule.warning"):
        edited_rule(base, dict(vals, has_critical=True, critical=11.0))   # warning above critical


def _hourly_data(values, incidents=None):
    from ui.thresholds.editor import make_series_data

    ts = pd.date_range("2026-03-02", periods=len(values), freq="1h", tz="UTC")
    pts = pd.DataFrame({"series": "x", "ts": ts, "value": np.asarray(values, dtype=float)})
    return make_series_data("x", pts, incidents), ts


def test_direction_defaults_come_from_the_fit_period_without_incidents():
    """100 hourly points, holdout 0.3: fit = hours 0..69. Fit values = the hour, except an incident at
    hours 10..19 (value 1000); the last 30 % is at 500. Fit points outside the incident: 0..9, 20..69
    (60 values; sorted index k >= 10 holds k + 10). p99 at position 0.99 x 59 = 58.41 -> 68.41; p99.9 at
    58.941 -> 68.941. Slider: whole-history median 59.5 to max 1000, step 5: both snap to 70, so critical
    goes one step beyond: (70, 75). Whole-history percentiles (the old default) would give 1000."""
    from ui.thresholds.editor import direction_defaults

    v = np.arange(100.0)
    v[10:20] = 1000.0
    v[70:] = 500.0
    ts = pd.date_range("2026-03-02", periods=100, freq="1h", tz="UTC")
    inc = pd.DataFrame({"series": ["x"], "start": [ts[10]], "end": [ts[19]], "kind": ["outage"]})
    data, _ = _hourly_data(v, inc)
    assert direction_defaults(data, ">") == (70.0, 75.0)
    # '<': p1 at 0.59, p0.1 at 0.059; slider min 0 to median 59.5, step 0.5: (0.5, 0.0)
    assert direction_defaults(data, "<") == (0.5, 0.0)
    # no finite fit-period point: the far end of the slider (500 .. 550, step 0.5), not a percentile
    thin, _ = _hourly_data(np.r_[np.full(70, np.nan), np.full(30, 500.0)])
    assert direction_defaults(thin, ">") == (549.5, 550.0)


def test_edited_rule_rewrites_a_suggestion_rationale_once_moved_away_from_it():
    from core.alerting.prometheus import prometheus_export
    from core.alerting.recommend import SUGGESTED_PREFIX
    from ui.thresholds.editor import edited_rule

    why = SUGGESTED_PREFIX + "201 raw points of the first 70% of the history: warning at the 99th percentile."
    base = {"name": "R", "series": "m", "comparator": ">", "warning": 10.0, "critical": 20.0, "for": "5m",
            "missing": "nodata", "annotations": {"rationale": why, "runbook_url": "http://x"}}
    vals = {"comparator": ">", "has_warning": True, "warning": 10.0, "has_critical": True, "critical": 20.0,
            "for": "5m", "keep_firing_for": "", "recovery": None, "consecutive": 1, "missing": "nodata"}
    assert edited_rule(base, vals).annotations["rationale"] == why               # untouched: kept
    moved = edited_rule(base, dict(vals, warning=12.0))
    assert moved.annotations == {
        "rationale": "Set by hand, starting from a suggestion (>; warning 10, critical 20; for 5m) fitted on raw "
                     "percentiles; that suggestion's percentiles and held-out check do not describe these "
                     "settings.", "runbook_url": "http://x"}
    # a setting the quoted rates were replayed with counts too; moving back restores the suggestion's text
    assert edited_rule(base, dict(vals, **{"for": "10m"})).annotations["rationale"].startswith("Set by hand")
    assert edited_rule(base, dict(vals, has_critical=False)).annotations["rationale"].startswith("Set by hand")
    assert edited_rule(base, vals).annotations["rationale"] == why
    desc = prometheus_export([moved]).doc["groups"][0]["rules"][0]["annotations"]["description"]
    assert "Rationale: Set by hand" in desc and "99th percentile" not in desc


def test_summary_cards_say_insufficient():
    from ui.thresholds.view import summary_cards

    thin = {"episodes_per_week": 14.0, "time_in_alert_pct": 1.25, "episodes": 3, "incidents": 2, "fn": 1,
            "precision": 1 / 3, "tp": 1, "detection_delay_s": 330.0, "span_s": 3 * 86400}
    cards = {label: (value, why) for label, value, why in summary_cards(thin)}
    assert cards["Episodes / week"][0] == "14.0" and "extrapolated" in cards["Episodes / week"][1]
    assert cards["Time in alert"][0] == "1.25 %"
    assert cards["Incidents caught"] == ("1/2", "only 2 incident(s): too few for a recall rate (needs 5)")
    assert cards["Median detection delay"][0] == "5m 30s"
    assert cards["Precision"] == ("insufficient", "3 episode(s): precision needs at least 5")
    # precision = caught incidents / (caught + false alarms) = 6 / (6 + 2); a repeat episode inside an
    # incident already alerted on counts neither way (core.analysis.scoring.score_events)
    rich = dict(thin, episodes=9, incidents=6, fn=0, precision=0.75, tp=6, fp=2, duplicates=1, span_s=30 * 86400)
    cards = {label: (value, why) for label, value, why in summary_cards(rich)}
    assert cards["Incidents caught"] == ("6/6", "recall 100% (n=6)")
    assert cards["Precision"] == ("75%", "6 caught incident(s) vs 2 false alarm(s); 1 repeat episode(s) inside "
                                         "incidents already alerted on are not counted")
    cards = {label: (value, why) for label, value, why in summary_cards(dict(rich, duplicates=0))}
    assert cards["Precision"] == ("75%", "6 caught incident(s) vs 2 false alarm(s)")
    none = {"episodes_per_week": 0.0, "time_in_alert_pct": 0.0, "episodes": 0, "span_s": 86400}
    cards = {label: value for label, value, _ in summary_cards(none)}
    assert cards["Incidents caught"] == "none labelled" and cards["Precision"] == "insufficient"


def test_impact_frame_applies_the_card_gates():
    from ui.policy_apply import impact_frame

    row = {"series": "s", "old_episodes_per_week": 3.14159, "old_time_in_alert_pct": 0.12345, "old_incidents": 1,
           "old_incidents_caught": 1, "old_recall": 1.0, "old_precision": 1.0, "old_episodes": 2,
           "new_episodes_per_week": 7.0, "new_time_in_alert_pct": 1.0, "new_incidents": 6, "new_incidents_caught": 5,
           "new_recall": 5 / 6, "new_precision": 0.625, "new_episodes": 8}
    out = impact_frame(pd.DataFrame([row])).set_index("metric")
    assert out.loc["episodes / week"].tolist() == ["s", "3.14", "7.00"]
    assert out.loc["time in alert (%)", "old"] == "0.123"
    assert out.loc["incidents caught"].tolist() == ["s", "1", "5"]
    # 1 incident: no recall rate; 2 episodes: no precision. 6 incidents / 8 episodes: both, with n
    assert out.loc["recall", "old"] == "insufficient (n=1)" and out.loc["recall", "new"] == "83% (n=6)"
    assert out.loc["precision", "old"] == "insufficient (n=2 episodes)"
    assert out.loc["precision", "new"] == "62% (n=8 episodes)"
    # no episode count in the preview: precision cannot be gated, so it is not shown
    no_eps = {k: v for k, v in row.items() if not k.endswith("_episodes")}
    assert impact_frame(pd.DataFrame([no_eps])).set_index("metric").loc["precision", "new"] == \
        "insufficient (episode count unknown)"
    # a rule added by the change: the old side has nothing
    added = {**row, **{k: None for k in row if k.startswith("old_")}}
    assert set(impact_frame(pd.DataFrame([added]))["old"]) == {"-"}
    zero = {**row, "new_incidents": 0, "new_recall": None, "new_precision": None}
    assert impact_frame(pd.DataFrame([zero])).set_index("metric").loc["recall", "new"] == "no incidents"


def test_sweep_figure_plots_recall_only_with_enough_incidents():
    from ui.thresholds.view import MIN_INCIDENTS_RATE, recall_gate, sweep_figure

    sw = pd.DataFrame({"threshold": [1.0, 2.0], "episodes_per_week": [3.0, 1.0], "time_in_alert_pct": [2.0, 1.0],
                       "recall": [1.0, 0.0]})
    assert [t.name for t in sweep_figure(sw, 1.5, n_incidents=1).data] == ["episodes / week"]
    assert recall_gate(1) == "recall insufficient (n=1): a recall rate needs at least 5 labelled incidents"
    assert recall_gate(0).startswith("no incidents")
    fig = sweep_figure(sw, 1.5, n_incidents=MIN_INCIDENTS_RATE)
    assert [t.name for t in fig.data] == ["episodes / week", "recall (%, n=5)"] and recall_gate(5) is None


# ---------------------------------------------------------------------------- slider-to-chart time
def test_slider_to_chart_time_on_30_days_of_1_minute_points():
    """replay + summary + figure (what one slider move costs) on 43,200 points; goal <= 300 ms."""
    from ui.thresholds.editor import make_series_data
    from ui.thresholds.view import threshold_view

    n = 30 * 1440
    pts = make_points(n, series="lat", seed=3)
    pts["value"] += 20 * np.sin(np.arange(n) * 2 * np.pi / 1440)       # a daily cycle
    pts.loc[::997, "value"] = np.nan
    starts = pd.to_datetime(["2026-01-03", "2026-01-09", "2026-01-14", "2026-01-20", "2026-01-26"], utc=True)
    inc = pd.DataFrame({"series": "lat", "start": starts, "end": starts + pd.Timedelta("2h"), "kind": "x"})
    data = make_series_data("lat", pts, inc, "ms")
    assert len(data.display) <= 4 * 2000 + 10                          # min/max downsampled for the chart
    times = []
    for thr in np.linspace(110.0, 124.0, 8):                           # a drag across the slider
        rule = Rule(name="x", series="lat", warning=float(thr), critical=130.0, for_s=120, recovery=105.0)
        t0 = time.perf_counter()
        view = threshold_view(data, rule, "warning")
        times.append(time.perf_counter() - t0)
        assert view.summary["episodes"] >= 0 and len(view.figure.data) >= 2
    med = float(np.median(times))
    print(f"\nslider-to-chart on {n} points: median {med * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    assert med < 0.3 * 3          # the goal is 300 ms; 3x slack for a shared 2-core machine


@pytest.mark.slow
def test_slider_rerun_time_of_the_whole_page_on_30_days(tmp_path, monkeypatch):
    """The full page script after a slider move (AppTest, cached points and sweep) on one 30-day 1-minute
    series: what the user waits for, server side."""
    from core.data.store import Store

    n = 30 * 1440
    pts = make_points(n, series="lat_ms", seed=5)
    pts["value"] += 20 * np.sin(np.arange(n) * 2 * np.pi / 1440)
    path = tmp_path / "big.duckdb"
    with Store(path) as s:
        s.write_points(pts, name="big.csv", sha256="big", fmt="long", actor="test")
        pol.apply(s, "default", [{"name": "LatHigh", "series": "lat_ms", "warning": 115.0, "for": "2m"}],
                  base_version=0, user=ED, reason="seed")
    monkeypatch.setenv("STUDIO_ROLES", str(tmp_path / "none.toml"))
    with studio_db(path):
        at = ok(open_page("thresholds.py"))
        assert at.slider(key="thr.w").value == 115.0
        times, pcts = [], []
        for v in (116.0, 117.0, 118.0, 119.0, 120.0):
            t0 = time.perf_counter()
            at.slider(key="thr.w").set_value(v).run()
            times.append(time.perf_counter() - t0)
            pcts.append(alert_pct(ok(at)))
    assert pcts == sorted(pcts, reverse=True) and pcts[0] > pcts[-1]
    print(f"\npage rerun after a slider move, 43,200 points: median {np.median(times) * 1000:.0f} ms")
    assert np.median(times) < 3.0


# ---------------------------------------------------------------------------- level x for heat map
def grid_spec(at) -> dict:
    import json

    el = next(e for e in at.get("plotly_chart") if getattr(e, "key", None) == "thr.grid")
    return json.loads(el.proto.spec)


def typed_array(z) -> np.ndarray:
    """A plotly figure's array as JSON gives it: a list, or a base64 typed array ``{dtype, bdata, shape}``."""
    import base64

    if isinstance(z, dict):
        a = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"])
        shape = z.get("shape")
        return a.reshape([int(x) for x in str(shape).split(",")]) if shape else a
    return np.asarray(z, dtype=float)


def cell_texts(spec) -> dict[tuple[str, str], str]:
    cells = next(t for t in spec["data"] if t.get("name") == "cells")
    return {(x, y): t for x, y, t in zip(cells["x"], cells["y"], cells["text"], strict=True)}


def current_cell(spec) -> tuple[str, str]:
    cur = next(t for t in spec["data"] if t.get("name") == "current rule")
    return cur["x"][0], cur["y"][0]


def _cell_summary(db, level: float, for_s: float) -> dict:
    """What replaying CheckoutLatencyHigh with only this warning level and this for reports (the spec
    of a cell: the other settings as in force, the recovery offset held)."""
    from core.alerting.replay import replay

    s = app_store(db)
    d = next(r for r in pol.active_version(s, "default").rule_dicts if r["name"] == "CheckoutLatencyHigh")
    rec = None if d.get("recovery") is None else level - abs(d["warning"] - d["recovery"])
    one = Rule.from_dict({**{k: v for k, v in d.items() if k not in ("critical", "recovery")}, "warning": level,
                          "for": for_s, **({"recovery": rec} if rec is not None else {})})
    pts = s.get_points(CHECKOUT)
    return replay(one, pts, series=CHECKOUT).summary(incidents=s.list_incidents(CHECKOUT))


def test_heat_map_of_levels_by_for_for_the_rule_being_edited(db):
    at = open_checkout(db)
    spec = grid_spec(at)
    heat = spec["data"][0]
    assert heat["type"] == "heatmap" and spec["layout"]["xaxis"]["type"] == "category"
    # 5-minute evaluations: 1m (the rule's for), 2m and 5m are one column; 0s .. 2h otherwise
    assert heat["x"] == ["0s", "1m", "10m", "15m", "30m", "1h", "2h"]
    levels = [float(y) for y in heat["y"]]
    assert levels == sorted(levels) and len(levels) >= 15 and 450.0 in levels    # the rule's own level is a row
    assert current_cell(spec) == ("1m", "450")
    # colour: log10 of episodes per week; the current rule never fires (max 395.6 ms): bottom of the scale
    assert heat["colorbar"]["title"]["text"] == "episodes / week"
    # every hovered number is what a replay of that one level and for reports
    texts_ = cell_texts(spec)
    mid = next(y for y in heat["y"] if float(y) >= 290)
    for (x, y) in [("0s", heat["y"][0]), ("10m", mid), ("1m", "450")]:
        for_s = {"0s": 0.0, "1m": 60.0, "10m": 600.0}[x]
        sm = _cell_summary(db, float(y), for_s)
        n = sm["incidents"]
        delay = "-" if not sm["tp"] else None
        t = texts_[(x, y)]
        assert f"{sm['episodes']} episode(s), {sm['episodes_per_week']:.2f} / week, in alert " \
               f"{sm['time_in_alert_pct']:.2f}%" in t, t
        assert f"incidents caught {sm['tp']}/{n}, missed {n - sm['tp']}" in t
        if delay:
            assert "median detection delay -" in t
    assert "incidents caught 1/1" in texts_[("10m", mid)] and "incidents caught 0/1" in texts_[("1m", "450")]


def test_selected_cell_fills_the_editor_and_apply_previews_it(db):
    at = open_checkout(db)
    y = next(y for y in grid_spec(at)["data"][0]["y"] if float(y) >= 340)
    hover = cell_texts(grid_spec(at))[("10m", y)]
    # what the heat map's selection callback stores; the page applies it before the editor is drawn
    at.session_state["thr.cell"] = ("warning", float(y), 600.0)
    at.run()
    ok(at)
    assert at.slider(key="thr.w").value == float(y) and at.text_input(key="thr.for").value == "10m"
    assert at.slider(key="thr.c").value == 900.0                       # the other level is untouched
    assert current_cell(grid_spec(at)) == ("10m", y)
    # the summary cards (judging the warning level) show the cell's numbers
    epw = float(hover.split(" / week")[0].split(", ")[-1])
    assert metrics(at)["Episodes / week"] == f"{epw:.1f}"
    assert not at.button(key="thr.apply").disabled
    at.button(key="thr.apply").click().run()
    diff = next(df.value for df in ok(at).dataframe if "field" in df.value.columns)
    assert sorted(diff[["field", "before", "after"]].values.tolist()) == [
        ["for", "1m", "10m"], ["warning", "450.0", f"{float(y)}"]]
    assert len(pol.history(app_store(db))) == 1                       # nothing written before the confirm


def test_heat_map_colour_toggle_and_chunks(db, monkeypatch):
    at = ok(open_page("thresholds.py"))
    assert "thr.grid_colour" not in [r.key for r in at.radio]          # no incidents labelled: one colour
    at.selectbox(key="thr.series").set_value(CHECKOUT).run()
    radio = ok(at).radio(key="thr.grid_colour")
    # one labelled incident: a count caught, never a recall rate from fewer than 5
    assert radio.options == ["episodes / week", "incidents caught", "false alarms / week"]
    before = cell_texts(grid_spec(at))
    radio.set_value("incidents caught").run()
    heat = grid_spec(ok(at))["data"][0]
    assert heat["colorbar"]["title"]["text"] == "incidents caught"
    assert set(np.unique(typed_array(heat["z"]))) == {0.0, 1.0}
    # swept in small cached chunks of levels: the same cells
    import ui.thresholds.view as tv

    monkeypatch.setattr(tv, "GRID_CHUNK_CELLS", 2000)
    tv._grid_chunk.clear()
    at.run()
    assert cell_texts(grid_spec(ok(at))) == before


def test_grid_helpers():
    from ui.thresholds.view import cell_of_selection, colour_options, grid_fors

    assert grid_fors(300, 60) == [0, 60, 600, 900, 1800, 3600, 7200]
    assert grid_fors(300, 300) == [0, 300, 600, 900, 1800, 3600, 7200]
    assert grid_fors(60, 45) == [0, 45, 120, 300, 600, 900, 1800, 3600, 7200]
    assert colour_options(0) == ["episodes / week"]
    assert colour_options(5) == ["episodes / week", "recall", "false alarms / week"]
    ev = {"selection": {"points": [{"x": "10m", "y": "350", "customdata": [350.0, 600.0]}]}}
    assert cell_of_selection(ev) == (350.0, 600.0)
    ev = {"selection": {"points": [{"x": "10m", "y": "350", "customdata": {"1": 600.0, "0": 350.0}}]}}
    assert cell_of_selection(ev) == (350.0, 600.0)                     # as the browser sends it
    assert cell_of_selection({"selection": {"points": []}}) is None and cell_of_selection(None) is None


def test_heat_map_follows_a_typed_for_and_a_dragged_level(db):
    at = open_checkout(db)
    at.text_input(key="thr.for").input("45m")
    at.slider(key="thr.w").set_value(372.0).run()
    spec = grid_spec(ok(at))
    heat = spec["data"][0]
    # the typed for is a column of its own, the dragged level a row of its own; the rest stays
    assert heat["x"] == ["0s", "5m", "10m", "15m", "30m", "45m", "1h", "2h"]
    assert "372" in heat["y"] and "450" not in heat["y"]
    assert current_cell(spec) == ("45m", "372")
    sm = _cell_summary(db, 372.0, 2700.0)
    assert f"{sm['episodes']} episode(s), {sm['episodes_per_week']:.2f} / week" in cell_texts(spec)[("45m", "372")]


def test_change_limits_are_edited_and_stored_with_the_rule(db):
    at = ok(open_page("thresholds.py"))
    at.selectbox(key="thr.series").set_value('latency_p95_ms{service="api-gateway"}').run()
    ok(at)
    # the demo policy's bounds for this rule are its stored limits
    assert (at.number_input(key="thr.lim_min").value, at.number_input(key="thr.lim_max").value) == (80.0, 1000.0)
    assert at.number_input(key="thr.lim_change").value is None and at.text_input(key="thr.lim_stab").value == ""
    at.number_input(key="thr.lim_change").set_value(10.0).run()
    at.text_input(key="thr.lim_stab").input("3d").run()
    ok(at)
    at.button(key="thr.apply").click().run()
    diff = next(df.value for df in ok(at).dataframe if "field" in df.value.columns)
    assert sorted(diff["field"]) == ["limits.max_change", "limits.stability"]
    at.text_input(key="thr.reason").input("slower tuning").run()
    at.button(key="thr.confirm").click().run()
    ok(at)
    v2 = pol.history(app_store(db))[-1]
    rule = next(r for r in v2.rule_dicts if r["name"] == "ApiGatewayLatencyHigh")
    assert rule["limits"] == {"min": 80.0, "max": 1000.0, "max_change": 0.1, "stability": "3d"}
    # a level outside the bounds is not a valid rule
    at.number_input(key="thr.lim_max").set_value(120.0).run()
    assert "Not a valid rule: rule.warning: 150 is outside this rule's bounds [80, 120]" in texts(ok(at))
