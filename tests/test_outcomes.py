"""Predicted impact stored at apply, actual against predicted after the change, the effectiveness report and
the automatic rollback triggers (core.policy.prediction, core.policy.outcomes, core.policy.triggers).

The data are hand-built so every number has a known answer: a 5-minute series at 0 with spikes to 20 lasting
3 points (15 min) at fixed times; rule A fires above its warning level with no ``for``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

from core.alerting.rules import Rule
from core.data.store import audit
from core.data.store import outcomes as osql
from core.policy import notify, prediction, triggers
from core.policy import outcomes as oc
from core.policy import versions as pol
from core.policy.identity import User

T0 = pd.Timestamp("2026-01-01T00:00:00Z")
CHANGE = T0 + pd.Timedelta(days=14)
ED = User("ed", "ed@example.com", frozenset({"viewer", "editor", "approver"}), os_account="ed-os")
LOOSE = pol.SignificanceConfig(threshold_change_pct=1e6)   # no approval needed: tests of outcomes, not approvals
NOCHAN = notify.NotifyConfig(channels=())
WEEK_S = 7 * 86400.0


def _frame(start, days, per_day, level=20.0):
    idx = pd.date_range(start, periods=int(days * 288), freq="5min")
    v = np.zeros(len(idx))
    for day in range(int(np.ceil(days))):
        for k in range(per_day):
            i = day * 288 + 10 + k * (280 // max(per_day, 1))
            v[i:i + 3] = level
    return pd.DataFrame({"timestamp": idx, "series": "lat", "value": v})


def _ingest(s, tmp_path, df, name):
    p = tmp_path / name
    df.to_csv(p, index=False)
    s.ingest(str(p), actor="ed")


@pytest.fixture
def s(store):
    audit.install(store)
    return store


def _two_versions(s, tmp_path, old=30.0, new=10.0, meta=None):
    """14 days with one spike a day; v1 (rule A at ``old``) from day 7, v2 (rule A at ``new``) from day 14."""
    _ingest(s, tmp_path, _frame(T0, 14, 1), "before.csv")
    pol.apply(s, "default", [Rule(name="A", series="lat", warning=old)], base_version=0, user=ED, reason="init",
              now=T0 + pd.Timedelta(days=7), meta=meta)
    return pol.apply(s, "default", [Rule(name="A", series="lat", warning=new)], base_version=1, user=ED,
                     reason="tighten", now=CHANGE, significance=LOOSE, meta=meta)


# ---------------------------------------------------------------------------------------- prediction
def test_prediction_stored_with_the_version_known_answers(s, tmp_path):
    v2 = _two_versions(s, tmp_path)
    p = osql.predictions(s, "default", v2.number).set_index("measure")
    span = 14 * 86400 - 300.0                       # first to last evaluation of the 14 days
    ep = p.loc["episodes_per_week"]
    assert ep["source"] == "replay"
    assert ep["predicted"] == pytest.approx(14 / (span / WEEK_S))
    assert json.loads(ep["basis"]) == {"count": 14, "horizon_s": WEEK_S, "phi": 1.0, "span_s": span}
    _, lo, hi = prediction.nb_interval(14, span, WEEK_S, 1.0)
    assert (ep["predicted_low"], ep["predicted_high"]) == pytest.approx((lo, hi))
    assert ep["predicted_low"] < ep["predicted"] < ep["predicted_high"]
    # 3 of 288 evaluations a day fire; the last evaluation has no duration: 42 x 300 s over the span
    assert p.loc["time_in_alert_pct", "predicted"] == pytest.approx(100 * 42 * 300 / span)
    assert np.isnan(p.loc["incidents_caught", "predicted"])
    assert "no labelled incident" in p.loc["incidents_caught", "note"]
    # audited with the version: the entry counts the rows
    entry = audit.list_audit(s, object="policy:default@v2")
    assert entry["detail"].iloc[-1]["predictions"] == 3 and len(entry["detail"].iloc[-1]["predictions_sha256"]) == 64


def test_incident_share_prediction_and_recommendation_supplied(s, tmp_path):
    _ingest(s, tmp_path, _frame(T0, 14, 1), "before.csv")
    spikes = [T0 + pd.Timedelta(days=d, minutes=50) for d in (2, 5, 9)]      # each day's spike at 00:50
    quiet = [T0 + pd.Timedelta(days=11, hours=12)]
    s.add_incidents(pd.DataFrame({"series": "lat", "start": spikes + quiet,
                                  "end": [t + pd.Timedelta(minutes=10) for t in spikes + quiet]}), source="t")
    v = pol.apply(s, "default", [Rule(name="A", series="lat", warning=10.0)], base_version=0, user=ED,
                  reason="init", now=CHANGE,
                  predictions={"lat": {"predicted_episodes_per_week": 6.5, "predicted_interval": [4.0, 9.0]}})
    p = osql.predictions(s, "default", v.number).set_index("measure")
    assert p.loc["incidents_caught", "predicted"] == pytest.approx(75.0)       # 3 of 4 caught
    assert p.loc["incidents_caught", "predicted_low"] == pytest.approx(100 * beta.ppf(0.05, 3.5, 1.5))
    assert p.loc["incidents_caught", "predicted_high"] == pytest.approx(100 * beta.ppf(0.95, 3.5, 1.5))
    ep = p.loc["episodes_per_week"]
    assert (ep["source"], ep["predicted"], ep["predicted_low"], ep["predicted_high"]) == ("recommendation", 6.5, 4.0, 9.0)


def test_prediction_rows_are_written_with_the_version_or_not_at_all(s, tmp_path, monkeypatch):
    _ingest(s, tmp_path, _frame(T0, 14, 1), "before.csv")
    pol.apply(s, "default", [Rule(name="A", series="lat", warning=30.0)], base_version=0, user=ED, reason="init",
              now=T0 + pd.Timedelta(days=7))

    def boom(*a, **k):
        raise RuntimeError("audit down")

    monkeypatch.setattr(pol.audit, "record", boom)
    with pytest.raises(RuntimeError):
        pol.apply(s, "default", [Rule(name="A", series="lat", warning=10.0)], base_version=1, user=ED,
                  reason="tighten", now=CHANGE, significance=LOOSE)
    assert pol.latest_number(s, "default") == 1
    assert set(osql.predictions(s, "default")["version"]) == {1}


# ---------------------------------------------------------------------------------------- outcomes
def test_actual_vs_predicted_known_answers(s, tmp_path):
    _two_versions(s, tmp_path)
    _ingest(s, tmp_path, _frame(CHANGE, 3, 3), "after.csv")           # 3 spikes a day after the change
    o = oc.change_outcomes(s, now=CHANGE + pd.Timedelta(days=3))
    assert list(o.columns) == oc.OUTCOME_COLUMNS
    r = o[(o["version"] == 2) & (o["measure"] == "episodes_per_week")].iloc[0]
    after_span = 3 * 86400 - 300.0
    predicted = 14 / ((14 * 86400 - 300.0) / WEEK_S)
    assert r["hours_since_change"] == pytest.approx(after_span / 3600)
    assert r["actual"] == pytest.approx(9 / (after_span / WEEK_S))
    assert r["relative_error"] == pytest.approx(9 / (after_span / WEEK_S) / predicted - 1)
    _, lo, hi = prediction.nb_interval(14, 14 * 86400 - 300.0, after_span, 1.0)   # re-stated for 72 h
    assert (r["predicted_low"], r["predicted_high"]) == pytest.approx((lo, hi))
    assert r["actual"] > hi and not r["inside_interval"]
    assert r["verdict"] == "above the predicted interval"
    # the actual uses only data after the change: v1's window ends where v2 starts
    v1 = o[(o["version"] == 1) & (o["measure"] == "episodes_per_week")].iloc[0]
    assert v1["actual"] == 0 and v1["hours_since_change"] == pytest.approx((7 * 86400 - 300) / 3600)


def test_thin_data_gives_a_verdict_not_a_number(s, tmp_path):
    _two_versions(s, tmp_path)
    _ingest(s, tmp_path, _frame(CHANGE, 10 / 24, 1), "after.csv")      # 10 hours after the change
    o = oc.change_outcomes(s, now=CHANGE + pd.Timedelta(hours=10))
    mine = o[o["version"] == 2]
    thin = mine[mine["measure"] != "incidents_caught"]
    assert (thin["verdict"] == "too little data since the change (9 h of 24 h needed)").all()   # 9 h 55 min
    assert thin["actual"].isna().all() and thin["inside_interval"].isna().all()
    acc = oc.prediction_accuracy(mine)
    assert acc["n"] == 0 and acc["share_inside"] is None and acc["mape_pct"] is None


def test_prediction_accuracy_arithmetic():
    df = pd.DataFrame({"measure": ["episodes_per_week", "episodes_per_week", "time_in_alert_pct", "incidents_caught"],
                       "inside_interval": [True, False, True, None],
                       "relative_error": [0.1, -0.5, 0.3, None]})
    acc = oc.prediction_accuracy(df)
    assert acc["n"] == 3 and acc["share_inside"] == pytest.approx(2 / 3)
    assert acc["mape_pct"] == pytest.approx(30.0) and acc["n_mape"] == 3
    assert acc["per_measure"]["episodes_per_week"] == {"n": 2, "share_inside": 0.5, "mape_pct": pytest.approx(30.0),
                                                       "n_mape": 2}
    assert acc["per_measure"]["incidents_caught"]["n"] == 0


def test_relative_error_and_judge_edges():
    assert oc.relative_error(3.0, 0.0) is None
    assert oc.relative_error(None, 2.0) is None
    assert oc.relative_error(3.0, 2.0) == pytest.approx(0.5)
    assert oc.judge(5.0, 1.0, 5.0) == (True, "as predicted (inside the interval)")
    assert oc.judge(0.5, 1.0, 5.0) == (False, "below the predicted interval")


# ---------------------------------------------------------------------------------------- report
def test_effectiveness_report_csv_and_html(s, tmp_path):
    _ingest(s, tmp_path, _frame(T0, 14, 1), "before.csv")
    pol.apply(s, "default", [Rule(name="A", series="lat", warning=30.0)], base_version=0, user=ED, reason="init",
              now=T0 + pd.Timedelta(days=7))
    pol.apply(s, "default", [Rule(name="A", series="lat", warning=10.0)], base_version=1, user=ED,
              reason="<script>alert(1)</script> =cmd", now=T0 + pd.Timedelta(days=11), significance=LOOSE)
    rep = oc.effectiveness_report(s, now=CHANGE)
    assert list(rep.columns) == oc.REPORT_COLUMNS and len(rep) == 1
    r = rep.iloc[0]
    # before: v1 (level 30) on days 8-11 fires nothing; after: v2 on days 11-14, 3 spikes in 3 days - 5 min
    assert r["window_h"] == pytest.approx(72.0)
    assert r["before_episodes_per_week"] == 0 and r["after_episodes_per_week"] == pytest.approx(3 / ((3 * 86400 - 300) / WEEK_S))
    assert r["change"] == "changed" and r["verdict"] == "compared"
    csv = oc.report_csv(rep).decode()
    assert csv.splitlines()[0] == ",".join(oc.REPORT_COLUMNS)
    assert "'<script>" in csv.splitlines()[1] or "<script>" in csv         # text kept, formula-safe
    page = oc.report_html(rep, {"share_inside": 0.5, "n": 4, "mape_pct": 20.0, "n_mape": 4})
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "&lt;script&gt;" in page
    assert "src=" not in page and "href=" not in page and "@import" not in page
    assert "50% of actuals inside the predicted interval (n = 4)" in page and "MAPE 20%" in page


# ---------------------------------------------------------------------------------------- triggers
def _storm_setup(s, tmp_path, per_day_after, meta=None):
    _two_versions(s, tmp_path, meta=meta)
    _ingest(s, tmp_path, _frame(CHANGE, 1, per_day_after), "after.csv")
    return CHANGE + pd.Timedelta(days=1)


def test_alert_storm_fires_once_and_rolls_back(s, tmp_path):
    now = _storm_setup(s, tmp_path, 20)                 # 20 episodes in a day against ~1 predicted
    found = triggers.evaluate(s, now=now)
    assert [f.trigger for f in found] == ["alert_storm"]
    ev = found[0].evidence
    assert ev["episodes"] == 20 and ev["actual_episodes_per_week"] > 2 * ev["predicted_high"]
    done = triggers.check_triggers(s, now=now, notify_config=NOCHAN)
    assert done[0].result_version == 3
    v3 = pol.get_version(s, "default", 3)
    assert v3.status == "approved" and v3.source == "rollback" and v3.rule_dicts == pol.get_version(s, "default", 1).rule_dicts
    assert pol.active_version(s, now=now).number == 3
    a = audit.list_audit(s, action="policy.trigger")
    assert len(a) == 1 and a["detail"].iloc[0]["evidence"]["episodes"] == 20
    n = notify.notices(s)
    assert list(n["kind"]).count("rollback") == 1
    # not twice: neither on the same data nor later
    assert triggers.check_triggers(s, now=now, notify_config=NOCHAN) == []
    assert triggers.check_triggers(s, now=now + pd.Timedelta(hours=1), notify_config=NOCHAN) == []
    assert len(osql.firings(s, "default")) == 1


def test_clean_change_fires_nothing(s, tmp_path):
    now = _storm_setup(s, tmp_path, 1)                  # as predicted: one spike a day
    assert triggers.check_triggers(s, now=now, notify_config=NOCHAN) == []
    assert pol.latest_number(s, "default") == 2


def test_storm_needs_enough_hours(s, tmp_path):
    _two_versions(s, tmp_path, meta={"rollback_triggers": {"storm_min_hours": 30}})
    _ingest(s, tmp_path, _frame(CHANGE, 1, 20), "after.csv")
    assert triggers.evaluate(s, now=CHANGE + pd.Timedelta(days=1)) == []


def test_propose_mode_leaves_the_change_in_force_pending_approval(s, tmp_path):
    now = _storm_setup(s, tmp_path, 20, meta={"rollback_triggers": {"mode": "propose"}})
    done = triggers.check_triggers(s, now=now, notify_config=NOCHAN)
    v3 = pol.get_version(s, "default", done[0].result_version)
    assert v3.status == "pending_approval" and "proposed by the alert_storm trigger on v2" in v3.significance
    assert pol.active_version(s, now=now).number == 2
    assert triggers.check_triggers(s, now=now, notify_config=NOCHAN) == []
    kinds = list(notify.notices(s)["kind"])
    assert "rollback" in kinds and "pending_approval" in kinds
    boss = User("boss", "b@example.com", frozenset({"viewer", "approver"}), os_account="ed-os")
    assert pol.approve(s, v3, boss, "agreed", now=now).status == "approved"


def test_failure_inside_the_trigger_write_leaves_nothing(s, tmp_path, monkeypatch):
    now = _storm_setup(s, tmp_path, 20)
    n_audit = len(audit.list_audit(s))

    def boom(*a, **k):
        raise RuntimeError("outbox down")

    monkeypatch.setattr(triggers.notify, "enqueue", boom)
    with pytest.raises(RuntimeError):
        triggers.check_triggers(s, now=now, notify_config=NOCHAN)
    assert pol.latest_number(s, "default") == 2
    assert osql.firings(s, "default").empty and len(audit.list_audit(s)) == n_audit
    assert set(osql.predictions(s, "default")["version"]) == {1, 2}
    monkeypatch.undo()
    assert triggers.check_triggers(s, now=now, notify_config=NOCHAN)[0].result_version == 3


def test_missed_incident_fires_when_the_previous_rule_caught_it(s, tmp_path):
    _two_versions(s, tmp_path, old=10.0, new=30.0)     # loosened: spikes to 20 are no longer caught
    _ingest(s, tmp_path, _frame(CHANGE, 1, 1), "after.csv")
    now = CHANGE + pd.Timedelta(days=1)
    assert triggers.evaluate(s, now=now) == []          # no incident labelled after the change: clean
    inc = CHANGE + pd.Timedelta(minutes=50)
    s.add_incidents(pd.DataFrame({"series": ["lat"], "start": [inc], "end": [inc + pd.Timedelta(minutes=10)]}),
                    source="t")
    found = triggers.evaluate(s, now=now)
    assert [f.trigger for f in found] == ["missed_incident"]
    assert found[0].evidence["caught_by_previous"] == 1 and found[0].evidence["caught_by_new"] == 0


def test_slo_burn_trigger_uses_the_callable(s, tmp_path):
    _two_versions(s, tmp_path)
    _ingest(s, tmp_path, _frame(CHANGE, 1, 1), "after.csv")
    now = CHANGE + pd.Timedelta(days=1)
    seen = {}

    def burn(store, version, since, t):
        seen["since"] = since
        return [{"slo": "avail", "severity": "critical", "windows": "1h/5m", "factor": 14.4, "burn_rate": 20.0,
                 "at": t.isoformat()}]

    found = triggers.evaluate(s, now=now, slo_burn=burn)
    assert [f.trigger for f in found] == ["slo_burn"] and seen["since"] == CHANGE
    assert triggers.evaluate(s, now=now, slo_burn=lambda *a: []) == []


def test_trigger_config_validation():
    assert triggers.trigger_config({}) == triggers.TriggerConfig()
    assert triggers.trigger_config({"rollback_triggers": {"mode": "propose", "storm_factor": 3}}).storm_factor == 3.0
    with pytest.raises(Exception, match="rollback_triggers.mode"):
        triggers.trigger_config({"rollback_triggers": {"mode": "maybe"}})
    with pytest.raises(Exception, match="unknown field"):
        triggers.trigger_config({"rollback_triggers": {"storm": 1}})


def test_cli_ingest_fires_the_trigger_and_report_writes_files(tmp_path, monkeypatch, capsys):
    from core.__main__ import main
    from core.data.store import Store

    monkeypatch.setenv("STUDIO_NOTIFY", str(tmp_path / "none.toml"))
    monkeypatch.delenv("STUDIO_NOTIFY_WEBHOOK", raising=False)
    monkeypatch.delenv("STUDIO_NOTIFY_SLACK", raising=False)
    db = tmp_path / "cli.duckdb"
    with Store(db) as st:
        _two_versions(audit.install(st), tmp_path)
    _frame(CHANGE, 1, 20).to_csv(tmp_path / "storm.csv", index=False)
    assert main(["policy", "--db", str(db), "check-triggers", "--dry-run"]) == 0
    assert "no trigger fired" in capsys.readouterr().out
    assert main(["ingest", "--db", str(db), str(tmp_path / "storm.csv")]) == 0
    out = capsys.readouterr().out
    assert "trigger: alert_storm on v2 rolled back (v3)" in out
    assert main(["policy", "--db", str(db), "check-triggers"]) == 0
    assert "no trigger fired" in capsys.readouterr().out
    csv, page = tmp_path / "eff.csv", tmp_path / "eff.html"
    assert main(["policy", "--db", str(db), "report", "--csv", str(csv), "--html", str(page),
                 "--now", str(CHANGE + pd.Timedelta(days=1))]) == 0
    out = capsys.readouterr().out
    # v1 judged on its 7 days (2 rows inside); v2 has 23 h 55 min of data: a verdict, no number
    assert "prediction accuracy: 100% of actuals inside the predicted interval (n = 2)" in out
    assert "v2 A lat episodes_per_week: predicted 7, actual -: too little data since the change (23 h of 24 h" in out
    assert csv.read_text().startswith("version,applied_at") and "<table>" in page.read_text()


def test_policy_yaml_keeps_and_checks_trigger_settings():
    from core.policy.policy_yaml import policy_from_yaml, policy_to_yaml

    text = ("schema: threshold-studio/policy/v1\nrollback_triggers: {mode: propose, storm_factor: 3}\n"
            "rules:\n  - {name: A, series: lat, warning: 10}\n")
    rules, meta = policy_from_yaml(text)
    assert triggers.trigger_config(meta) == triggers.TriggerConfig(mode="propose", storm_factor=3.0)
    assert policy_from_yaml(policy_to_yaml(rules, meta))[1]["rollback_triggers"] == {"mode": "propose", "storm_factor": 3}
    with pytest.raises(Exception, match="rollback_triggers.storm_factor"):
        policy_from_yaml(text.replace("storm_factor: 3", "storm_factor: 0.5"))


# ---------------------------------------------------------------------------- pages
def test_overview_and_policies_pages_show_outcomes_and_triggers(tmp_path, monkeypatch):
    from core.data.store import Store
    from tests.apptest_util import open_page, studio_db, texts

    monkeypatch.setenv("STUDIO_NOTIFY", str(tmp_path / "none.toml"))
    db = tmp_path / "pages.duckdb"
    with Store(db) as st:
        s = audit.install(st)
        _two_versions(s, tmp_path)
        _ingest(s, tmp_path, _frame(CHANGE, 2, 20), "after.csv")
        triggers.check_triggers(s, now=CHANGE + pd.Timedelta(days=2), notify_config=NOCHAN)
    with studio_db(db):
        at = open_page("overview.py")
        assert not at.exception, [e.value for e in at.exception]
        shown = texts(at)
        assert "Recent changes: predicted vs actual" in shown
        assert "of actuals inside the predicted interval (n = " in shown
        tables = [d.value for d in at.dataframe if "verdict" in d.value.columns]
        assert any((t["verdict"] == "above the predicted interval").any() for t in tables)
        assert "Rollback triggers that fired" in shown
        assert len(at.get("download_button")) == 2
        at = open_page("policies.py")
        assert not at.exception, [e.value for e in at.exception]
        assert any("alert storm" in str(v) for d in at.dataframe for v in d.value.get("evidence", []))


def test_data_page_upload_runs_the_triggers(tmp_path, monkeypatch):
    from core.data.store import Store
    from tests.apptest_util import studio_db
    from ui.widgets import import_files

    monkeypatch.setenv("STUDIO_NOTIFY", str(tmp_path / "none.toml"))
    db = tmp_path / "upload.duckdb"
    with Store(db) as st:
        _two_versions(audit.install(st), tmp_path)
    with studio_db(db):
        from ui import state

        res = import_files([("storm.csv", _frame(CHANGE, 1, 20).to_csv(index=False).encode())], actor="ed")
        assert res[0].ok
        s = state.store()
        assert pol.latest_number(s, "default") == 3
        assert osql.firings(s, "default")["trigger"].tolist() == ["alert_storm"]


def test_slo_burn_trigger_on_the_slos_kept_with_the_version(s, tmp_path):
    from core.slo import SLO
    from core.slo.watch import burn_since, check_rollback_triggers

    slo = SLO(name="lat-ok", series="lat", target=0.999, window_days=30, threshold=10.0, min_events=10)
    _two_versions(s, tmp_path, meta={"slos": [slo.to_dict()]})
    after = _frame(CHANGE, 1, 1)
    clean = CHANGE + pd.Timedelta(hours=23)
    _ingest(s, tmp_path, after[after["timestamp"] < clean], "after1.csv")
    v2 = pol.get_version(s, "default", 2)
    assert burn_since(s, v2, CHANGE, clean) == []              # one 15-minute spike 22 h ago: no page-level burn
    assert check_rollback_triggers(s, now=clean, notify_config=NOCHAN) == []
    late = after[after["timestamp"] >= clean].assign(value=20.0)  # the last hour all bad: burning 1000x
    _ingest(s, tmp_path, late, "after2.csv")
    now = CHANGE + pd.Timedelta(days=1)
    fired = check_rollback_triggers(s, now=now, notify_config=NOCHAN)
    assert [f.trigger for f in fired] == ["slo_burn"] and fired[0].evidence["slo"] == "lat-ok"
    assert fired[0].evidence["severity"] == "critical" and fired[0].evidence["burn_rate"] > 14.4
