"""Fleet health (core.commands.fleet_health) on a small hand-built store with known answers: alerts/week of
a rule replayed over the last 7 days, an SLO's budget, open and closed drift notices, a pending approval,
and the order of "needs attention first"; derived values kept until their signature changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.alerting.rules import Rule
from core.commands import fleet_health as fh
from core.data.store import audit
from core.policy import notify
from core.policy import versions as pol
from core.policy.identity import User
from core.slo import SLO, slos_to_meta

T0 = pd.Timestamp("2026-01-01T00:00:00Z")
DAYS = 10
END = T0 + pd.Timedelta(days=DAYS) - pd.Timedelta("1min")      # the last point of every series
NOW = T0 + pd.Timedelta(days=DAYS)
ED = User("ed", "ed@example.com", frozenset({"viewer", "editor"}), os_account="ed-os")
A, B, C, D = (f'lat{{svc="{x}"}}' for x in "abcd")
SLO_B = SLO(name="b-latency", series=B, target=0.99, window_days=7, threshold=50.0)
BAD_B = 80                                   # bad minutes of B in its last 7 days


def _series(key: str, spikes_at: list[pd.Timestamp], minutes: int = 5) -> pd.DataFrame:
    """One-minute points at 10 with ``minutes``-long spikes to 100 starting at ``spikes_at``."""
    ts = pd.date_range(T0, END, freq="1min")
    v = np.full(len(ts), 10.0)
    for t in spikes_at:
        i = ts.get_loc(t)
        v[i:i + minutes] = 100.0
    return pd.DataFrame({"series": key, "ts": ts, "value": v})


def _rules(a_warning: float = 50.0) -> list[Rule]:
    return [Rule(name="RA", series=A, warning=a_warning), Rule(name="RD", series=D, warning=50.0)]


@pytest.fixture
def s(store):
    audit.install(store)
    day = pd.Timedelta(days=1)
    # A: one spike before the last 7 days (not counted) and three inside them
    a = _series(A, [T0 + day, T0 + 4 * day, T0 + 6 * day, T0 + 8 * day])
    # B: 80 bad single minutes in its last 7 days (16 spikes of 5 minutes), none before
    b = _series(B, [T0 + 4 * day + pd.Timedelta(hours=5 * i) for i in range(16)])
    c = _series(C, [])
    # D: 30 spikes in its last 7 days: an alert storm
    d = _series(D, [T0 + 3 * day + pd.Timedelta(hours=2 + 5 * i) for i in range(30)])
    store.write_points(pd.concat([a, b, c, d], ignore_index=True), name="hand.csv", sha256="hand", fmt="long")
    meta = slos_to_meta({}, [SLO_B])
    pol.apply(store, "default", _rules(), base_version=0, user=ED, reason="v1", now=T0, meta=meta)
    conf = notify.NotifyConfig(channels=())
    notify.enqueue(store, "drift", "drift:a", "Drift: a", "shifted", {"series": A, "since": str(T0)},
                   config=conf, now=T0 + day)
    # v2 re-tunes A after its drift notice: that closes it
    pol.apply(store, "default", _rules(55.0), base_version=1, user=ED, reason="re-tune a", now=T0 + 2 * day,
              meta=meta)
    notify.enqueue(store, "drift", "drift:c", "Drift: c", "shifted", {"series": C, "since": str(T0 + 5 * day)},
                   config=conf, now=T0 + 9 * day)
    # v3 adds a critical level: waits for a second person
    v3 = pol.apply(store, "default", [*_rules(55.0), Rule(name="RC", series=C, warning=50.0, critical=90.0)],
                   base_version=2, user=ED, reason="page on c", now=T0 + 9 * day, meta=meta)
    assert v3.status == "pending_approval"
    return store


def test_known_answers_and_attention_order(s):
    base = fh.fleet_base(s, now=NOW)
    assert base.version.number == 2                              # v3 waits, so v2 is in force
    derived = fh.derive(s, base, base.series["key"].tolist(), groups=fh.FAST_GROUPS)
    t = fh.fleet_table(base, derived).set_index("series")
    assert t.loc[A, "alerts_per_week"] == pytest.approx(3.0)    # 3 episodes in 7 days (the day-1 one is older)
    assert t.loc[D, "alerts_per_week"] == pytest.approx(30.0)
    assert pd.isna(t.loc[B, "alerts_per_week"]) and pd.isna(t.loc[B, "rules"])   # no rule selects B
    assert t.loc[B, "slo"] == "b-latency"
    events = 7 * 1440
    assert t.loc[B, "slo_compliance"] == pytest.approx(1 - BAD_B / events)
    assert t.loc[B, "budget_remaining"] == pytest.approx(1 - BAD_B / (0.01 * events))   # 20.6 % left
    assert pd.isna(t.loc[A, "budget_remaining"])                 # no SLO covers A
    assert bool(t.loc[C, "drift"]) and not bool(t.loc[A, "drift"])   # A was re-tuned after its notice
    assert set(t["grade"]) == {"B"}                              # constant between spikes: the flat-line penalty (20)

    att = fh.needs_attention(t.reset_index(), base.approvals)
    assert att["reason"].tolist() == ["slo_budget", "alert_storm", "pending_approval", "drift"]
    assert att["subject"].tolist() == [B, D, "default v3", C]
    assert att["priority"].tolist() == [1, 2, 3, 4]
    assert "21% of the error budget left" in att["detail"].iloc[0]
    assert base.approvals["version"].tolist() == ["default v3"]
    assert base.approvals["waiting_s"].iloc[0] == pytest.approx(86400.0)
    assert base.notifications["kind"].tolist() == ["pending_approval", "drift", "drift"]   # newest first


def test_derived_values_are_kept_until_their_signature_changes(s):
    base = fh.fleet_base(s, now=NOW)
    sigs = fh.signatures(base)
    kept = fh.keep_derived({}, fh.derive(s, base, [A, C], groups=fh.FAST_GROUPS), sigs)
    fresh = fh.freshness(kept, sigs)
    assert (fresh["quality"]["n"], fresh["quality"]["of"], fresh["anomalies"]["n"]) == (2, 4, 0)
    assert set(fh.derived_frame(kept, sigs)["series"]) == {A, C}
    # a new rule for A changes only A's rule-dependent groups
    moved = {**sigs, A: {**sigs[A], "alerts": "other", "recommendation": "other"}}
    frame = fh.derived_frame(kept, moved).set_index("series")
    assert pd.isna(frame.loc[A, "alerts_per_week"]) and frame.loc[A, "grade"] == "B"
    # new data (an upload) changes every signature
    s.write_points(_series(A, []).tail(5).assign(value=11.0), name="more.csv", sha256="more", fmt="long")
    sigs2 = fh.signatures(fh.fleet_base(s, now=NOW))
    assert fh.derived_frame(fh.keep_derived(kept, pd.DataFrame(), sigs2), sigs2).empty


def test_needs_attention_ranks_within_a_reason_and_skips_what_is_not_computed():
    t = pd.DataFrame({
        "series": ["x", "y", "z", "w"], "slo": ["s1", "s2", None, None],
        "budget_remaining": [0.2, -0.5, None, None], "alerts_per_week": [None, 25.0, 40.0, None],
        "rules": ["R", "R", "R", None], "drift": [False, False, False, False], "drift_since": [None] * 4,
        "recommendation_open": [None, True, True, True], "episodes_per_week_now": [None, 10.0, 4.0, 0.5],
        "expected_reduction": [None, 6.0, 1.0, 0.5], "predicted_episodes_per_week": [None, 4.0, 3.0, 0.0],
        "grade": [None, "B", "F", "D"], "quality_score": [None, 85.0, 30.0, 65.0]})
    att = fh.needs_attention(t)
    pd.testing.assert_frame_equal(att, fh.needs_attention(t.astype({"recommendation_open": "boolean"})))
    assert list(zip(att["reason"], att["subject"], strict=True)) == [
        ("slo_budget", "y"), ("slo_budget", "x"),           # overspent before 20 % left
        ("alert_storm", "z"), ("alert_storm", "y"),          # 40/week before 25/week
        ("recommendation", "y"),                             # 60 % cut; z's 25 % and w's < 1/week are not
        ("quality", "z"), ("quality", "w")]                  # F (30) before D (65)
    assert "(overspent)" in att["detail"].iloc[0]
    assert fh.needs_attention(t.iloc[:0]).empty


def test_recommendation_summary_and_filter():
    r = {"warning": 80.0, "current": {"warning": 60.0}, "predicted_episodes_per_week": 2.0,
         "comparison": {"current": {"held_episodes_per_week": 10.0}}}
    got = fh.recommendation_summary(r)
    assert got["expected_reduction"] == pytest.approx(8.0) and got["recommendation_open"] is True
    same = fh.recommendation_summary({**r, "warning": 60.0})
    assert same["recommendation_open"] is False
    assert fh.recommendation_summary({"insufficient": "too short", "current": None})["recommendation_open"] is False
    t = pd.DataFrame({"series": [A, B, 'cpu{svc="a"}']})
    assert fh.filter_series(t, "lat*")["series"].tolist() == [A, B]
    assert fh.filter_series(t, 'svc="a"')["series"].tolist() == [A, 'cpu{svc="a"}']


def test_cli_prints_the_table_and_the_attention_list(s, capsys):
    from core.__main__ import main

    path = s.path
    s.close()
    assert main(["fleet_health", "--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Needs attention first:" in out and "[pending_approval] default v3" in out


def test_matching_rules_agrees_with_rule_matches():
    keys = [A, B, 'lat{zone="eu",svc="a"}', 'lat{svc="a",zone="eu"}', "plain", 'cpu{svc="a"}']
    rules = [Rule(name="R1", series='lat{zone="eu",svc="a"}', warning=1.0), Rule(name="R2", series="lat*", warning=1.0),
             Rule(name="R3", series="plain", warning=1.0),
             Rule(name="R4", series="*", matchers={"svc": "a"}, warning=1.0)]
    got = fh.matching_rules([r.to_dict() for r in rules], keys)
    want = {k: [r.name for r in rules if r.matches(k)] for k in keys}
    assert {k: [r.name for r in v] for k, v in got.items()} == {k: v for k, v in want.items() if v}
    assert [r.name for r in got['lat{svc="a",zone="eu"}']] == ["R1", "R2", "R4"]


def test_alerts_per_week_on_a_short_history_uses_the_history_it_has():
    ts = pd.date_range(T0, periods=2 * 1440, freq="1min")          # 2 days (minus a minute)
    v = np.full(len(ts), 10.0)
    v[600:605] = v[2000:2005] = 100.0                                # two episodes
    pts = pd.DataFrame({"series": A, "ts": ts, "value": v})
    got = fh.current_alerts(pts, {A: [Rule(name="RA", series=A, warning=50.0)]}).iloc[0]
    window = (ts[-1] - ts[0]).total_seconds() / 86400.0
    assert got["alert_episodes"] == 2 and got["window_days"] == pytest.approx(window)
    assert got["alerts_per_week"] == pytest.approx(2 / window * 7)
    assert "less than 7" in got["alert_notes"]
    none = fh.current_alerts(pts.iloc[:0], {A: [Rule(name="RA", series=A, warning=50.0)]}).iloc[0]
    assert none["alerts_per_week"] is None


@pytest.mark.parametrize("cmp_, thr", [(">", 50.0), (">=", 100.0), ("<", 20.0), ("<=", 10.0)])
def test_sql_minute_events_equal_the_slo_module_over_the_window(s, cmp_, thr):
    from core.data.store import fleet as fsql
    from core.slo import budget_report
    from core.slo.watch import slo_events

    # a glob over two series, one with NaN and infinite values and a gap in its window
    s.write_points(pd.DataFrame({"series": B, "ts": [END - pd.Timedelta("3h"), END - pd.Timedelta("2h")],
                                 "value": [np.nan, np.inf]}), name="odd.csv", sha256="odd", fmt="long")
    slo = SLO(name="g", series="lat*", target=0.99, window_days=7, comparator=cmp_, threshold=thr)
    keys = [A, B, C, D]
    want = slo_events(s, slo)
    got = fsql.threshold_minute_events(s, keys, cmp_, thr, slo.window_s)
    start = got.index[0]
    assert start <= want.index[-1] - pd.Timedelta(days=7)          # the window is covered
    pd.testing.assert_frame_equal(got, want[want.index >= start], check_freq=False, check_names=False)
    assert budget_report(slo, got) == budget_report(slo, want)


def test_slo_results_are_kept_until_the_data_change(s):
    cache: dict = {}
    first = fh.fleet_base(s, now=NOW, slo_cache=cache)
    assert len(cache) == 1
    cache[next(iter(cache))][0]["budget_remaining"] = -9.0                  # a marker: served from the cache
    again = fh.fleet_base(s, now=NOW, slo_cache=cache)
    assert again.slo.set_index("series").loc[B, "budget_remaining"] == -9.0
    s.write_points(_series(C, []).tail(3).assign(value=12.0), name="new.csv", sha256="new", fmt="long")
    fresh = fh.fleet_base(s, now=NOW, slo_cache=cache)                      # new data: recomputed
    assert fresh.slo.set_index("series").loc[B, "budget_remaining"] == pytest.approx(
        first.slo.set_index("series").loc[B, "budget_remaining"])


def test_a_recent_rollback_comes_first_and_old_firings_drop_off(s):
    t = pd.DataFrame({"series": ["x"], "slo": ["s1"], "budget_remaining": [-0.5], "alerts_per_week": [None],
                      "rules": ["R"], "drift": [False], "drift_since": [None], "recommendation_open": [None],
                      "episodes_per_week_now": [None], "expected_reduction": [None],
                      "predicted_episodes_per_week": [None], "grade": [None], "quality_score": [None]})
    fired = pd.DataFrame({"version": [2, 4], "trigger": ["alert_storm", "missed_incident"],
                          "fired_at": [pd.Timestamp("2026-01-02T00:00Z"), pd.Timestamp("2026-01-03T00:00Z")],
                          "mode": ["rollback", "propose"], "result_version": [3, 5],
                          "evidence": [{"series": "x", "rule": "R"}, {}]})
    att = fh.needs_attention(t, rollbacks=fired)
    assert list(zip(att["reason"], att["subject"], strict=True)) == [
        ("rollback", "v4"), ("rollback", "x"), ("slo_budget", "x")]        # newest firing first
    assert att["detail"].iloc[0] == "missed incident on v4: a rollback (v5) waits for approval"
    assert att["detail"].iloc[1] == "alert storm on v2: rolled back to v3 (rule R)"
    assert fh.recent_rollbacks(s).empty                                    # no firing stored
