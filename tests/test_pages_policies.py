"""Policies page (AppTest): history, rollback through the confirm dialog, approvals, viewer mode, import
validation, audit integrity; plus the pure helpers of ui/policies.py, ui/policy_tables.py and ui/session.py."""

from __future__ import annotations

import pandas as pd
import pytest

from core.data.store import audit
from core.policy import versions as pol
from core.policy.identity import User
from core.policy.policy_yaml import policy_to_yaml
from tests.apptest_util import app_store, demo_copy, open_page, texts

ED = User("ed", None, frozenset({"viewer", "editor"}))
ROLES = """
[local]
user = "nobody"
[roles]
ed = ["editor"]
ann = ["editor", "approver"]
carol = ["viewer"]
default = ["viewer"]
"""


@pytest.fixture
def db(tmp_path, demo_db_bytes, monkeypatch):
    with demo_copy(tmp_path, demo_db_bytes, ROLES, monkeypatch) as p:
        yield p



def refresh() -> None:
    """What the Thresholds page does after a write: drop the cached queries."""
    from ui import state

    state.after_write()


def frame_with(at, column: str) -> pd.DataFrame:
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no table with a {column!r} column")


def add_rule(v: pol.PolicyVersion, **kw) -> list[dict]:
    """v's rules plus a warning-only rule (not a significant change)."""
    return v.rule_dicts + [{"name": "ZzExtra", "series": 'cpu_pct{service="checkout"}', "warning": 95.0, **kw}]


def bump_gateway(v: pol.PolicyVersion) -> list[dict]:
    """v's rules with the gateway warning 150 -> 225: a rule with a critical level, so significant."""
    return [dict(r, warning=225.0) if r["name"] == "ApiGatewayLatencyHigh" else r for r in v.rule_dicts]


def test_page_renders_history_and_integrity(db):
    at = open_page("policies.py")
    assert not at.exception, [e.value for e in at.exception]
    hist = frame_with(at, "version")
    assert hist["version"].tolist() == [1] and hist["author"].tolist() == ["seed"]
    assert hist["status"].tolist() == ["approved"] and bool(hist["in force"].iloc[0])
    assert len(frame_with(at, "comparator")) == 12                      # the demo policy's rules
    out = texts(at)
    assert "**ed**" in out and "editor, viewer" in out                  # who, and their roles
    n = len(audit.list_audit(app_store(db)))                            # demo build writes + the seed
    assert audit.list_audit(app_store(db))["action"].iloc[0] == "policy.seed"
    assert f"Audit chain intact, {n} entr{'y' if n == 1 else 'ies'}." in out


def test_page_reports_a_removed_newest_entry_with_the_anchor_and_what_to_do(db):
    s = app_store(db)
    v1 = pol.get_version(s, "default", 1)
    pol.apply(s, "default", add_rule(v1), base_version=1, user=ED, reason="extra cpu rule")
    r = audit.check_integrity(s)
    assert r.ok and r.anchor_seq == r.entries
    s.query_all("DELETE FROM audit WHERE seq = ?", [r.entries])
    refresh()
    at = open_page("policies.py")
    out = texts(at)
    assert f"Audit chain broken at entry #{r.entries}: anchored audit entry {r.entries}" in out
    assert f"the database ends at entry {r.entries - 1}" in out and "Do not write further changes" in out


def test_page_says_unverifiable_without_the_key(db, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_AUDIT_DIR", str(tmp_path / "no-key-here"))
    refresh()
    at = open_page("policies.py")
    out = texts(at)
    assert "Audit chain unverifiable: unverifiable: key missing" in out and "restore the audit key" in out
    assert "Audit chain intact" not in out


def test_apply_then_rollback_through_the_dialog(db):
    at = open_page("policies.py")
    s = app_store(db)
    v1 = pol.get_version(s, "default", 1)
    v2 = pol.apply(s, "default", add_rule(v1), base_version=1, user=ED, reason="extra cpu rule")
    assert v2.status == "approved"
    refresh()
    at.run()
    assert frame_with(at, "version")["version"].tolist() == [2, 1]
    assert at.selectbox(key="pol.rollback_to").options == ["v1: demo policy from demo_policy.yaml"]
    at.button(key="pol.rollback").click().run()
    assert not at.exception, [e.value for e in at.exception]
    # the dialog states what will change: v2 (in force) -> v1 removes the extra rule
    assert "Against the version in force (v2): 0 added, 1 removed, 0 changed, 12 unchanged" in texts(at)
    assert frame_with(at, "change")["rule"].tolist() == ["ZzExtra"]
    at.text_input(key="pdlg.reason").input("extra rule pages too often")
    at.button(key="pdlg.yes").click().run()
    assert not at.exception, [e.value for e in at.exception]
    hist = pol.history(s)
    assert [v.number for v in hist] == [1, 2, 3]
    v3 = hist[-1]
    assert (v3.content, v3.content_hash, v3.source, v3.author) == (v1.content, v1.content_hash, "rollback", "ed")
    assert v3.reason == "rollback to v1: extra rule pages too often"
    entries = audit.list_audit(s, object="policy:default")
    assert entries["action"].tolist() == ["policy.rollback", "policy.apply", "policy.seed"]
    assert entries["actor"].tolist()[:2] == ["ed", "ed"]
    assert "Rolled back: v3 has the rules of v1." in texts(at)
    assert frame_with(at, "version")["version"].tolist() == [3, 2, 1]   # the page shows fresh data
    assert f"Audit chain intact, {len(audit.list_audit(s))} entries." in texts(at)


def test_far_rollback_says_it_needs_approval_and_waits(db):
    s = app_store(db)
    v1 = pol.get_version(s, "default", 1)
    pol.apply(s, "default", add_rule(v1), base_version=1, user=ED, reason="extra rule")              # v2
    pol.apply(s, "default", add_rule(v1, warning=96.0), base_version=2, user=ED, reason="nudge")     # v3
    at = open_page("policies.py")
    # v2 was in force before v3: restoring it is an undo, v1 would remove ZzExtra (a significant change)
    assert at.selectbox(key="pol.rollback_to").options[:2] == ["v2: extra rule", "v1: demo policy from "
                                                                "demo_policy.yaml"]
    at.selectbox(key="pol.rollback_to").set_value(1).run()
    at.button(key="pol.rollback").click().run()
    assert not at.exception, [e.value for e in at.exception]
    out = texts(at)
    assert "needs a second person's approval" in out and "removes rule 'ZzExtra'" in out
    at.text_input(key="pdlg.reason").input("back to the demo policy")
    at.button(key="pdlg.yes").click().run()
    assert not at.exception, [e.value for e in at.exception]
    v4 = pol.get_version(s, "default", 4)
    assert (v4.status, v4.source, v4.content_hash) == ("pending_approval", "rollback", v1.content_hash)
    assert "Rolled back: v4 has the rules of v1. It waits for a second person's approval" in texts(at)
    assert pol.active_version(s).number == 3


def test_export_shows_where_prometheus_differs_from_the_replay(db):
    at = open_page("policies.py")
    warned = [str(w.value) for w in at.warning if "Prometheus will differ" in str(w.value)]
    assert warned == []              # the demo policy, scraped every 1m, runs in Prometheus as it replays
    at.number_input(key="pol.scrape").set_value(900.0).run()
    warned = [str(w.value) for w in at.warning if "Prometheus will differ" in str(w.value)]
    # 15m samples: the hysteresis rule cannot see ALERTS through the 5m lookback, and all 12 rules lose
    # their samples between scrapes (the nodata ones also raise NoData)
    assert len(warned) == 13 and "ApiGatewayLatencyHigh: hysteresis reads" in warned[0]
    assert "every 15m" in warned[1] and "ApiGatewayLatencyHighNoData fires" in warned[1]


def test_cancel_writes_nothing(db):
    at = open_page("policies.py")
    s = app_store(db)
    pol.apply(s, "default", add_rule(pol.get_version(s, "default", 1)), base_version=1, user=ED, reason="x")
    refresh()
    at.run()
    at.button(key="pol.rollback").click().run()
    at.button(key="pdlg.no").click().run()
    assert not at.exception and len(pol.history(s)) == 2
    assert "Against the version in force" not in texts(at)


def test_approval_queue_author_cannot_approve_second_person_can(db, monkeypatch):
    at = open_page("policies.py")
    s = app_store(db)
    v1 = pol.get_version(s, "default", 1)
    rules = bump_gateway(v1)
    v2 = pol.apply(s, "default", rules, base_version=1, user=ED, reason="double gateway warning")
    assert v2.status == "pending_approval"
    refresh()
    at.run()
    assert at.button(key="pol.approve.2").disabled and not at.button(key="pol.reject.2").disabled
    assert "Disabled: ed may not approve: that needs the 'approver' role" in texts(at)
    notices = next(df.value for df in at.dataframe if "channels" in df.value.columns)   # Notifications expander
    assert notices[["kind", "title"]].values.tolist() == [["pending_approval", "default v2 waits for approval"]]
    monkeypatch.setenv("STUDIO_USER", "ann")                 # same OS account as ed: not a second person
    at.run()
    assert at.button(key="pol.approve.2").disabled
    assert "this approval comes from the same account" in texts(at)
    from core.policy import identity

    monkeypatch.setattr(identity, "os_account", lambda: "ann-os")   # ann at her own OS account
    at.run()
    assert not at.button(key="pol.approve.2").disabled
    at.button(key="pol.approve.2").click().run()
    at.text_input(key="pdlg.reason").input("replay looks fine")
    at.button(key="pdlg.yes").click().run()
    assert not at.exception, [e.value for e in at.exception]
    v2 = pol.get_version(s, "default", 2)
    assert (v2.status, v2.decided_by) == ("approved", "ann")
    assert pol.active_version(s).number == 2
    assert "Approved v2; it is in force." in texts(at)


def test_viewer_sees_everything_with_write_controls_disabled(db, monkeypatch):
    s = app_store(db)
    v1 = pol.get_version(s, "default", 1)
    rules = bump_gateway(v1)
    pol.apply(s, "default", rules, base_version=1, user=ED, reason="pending one")        # v2, pending
    monkeypatch.setenv("STUDIO_USER", "carol")
    at = open_page("policies.py")
    assert not at.exception, [e.value for e in at.exception]
    out = texts(at)
    assert "**carol**" in out and "roles: **viewer**" in out and "Read-only: carol has roles viewer" in out
    assert frame_with(at, "version")["version"].tolist() == [2, 1]      # sees everything
    assert at.button(key="pol.rollback").disabled
    assert at.button(key="pol.approve.2").disabled and at.button(key="pol.reject.2").disabled
    assert at.text_area(key="pol.import_text").disabled
    assert f"Audit chain intact, {len(audit.list_audit(s))} entries." in out


def test_import_shows_validation_error_with_path_then_imports(db):
    at = open_page("policies.py")
    at.text_area(key="pol.import_text").input("rules:\n  - {name: X, warning: 1}\n").run()
    assert "Not importable: pasted YAML: rules[0].series: missing required field 'series'" in texts(at)
    s = app_store(db)
    v1 = pol.get_version(s, "default", 1)
    good = policy_to_yaml(pol.to_rules(add_rule(v1)), v1.meta)
    at.text_area(key="pol.import_text").input(good).run()
    assert "1 added, 0 removed, 0 changed, 12 unchanged" in texts(at)
    assert "Takes effect at once" in texts(at)
    at.button(key="pol.import").click().run()
    at.button(key="pdlg.yes").click().run()                             # default reason "import pasted YAML"
    assert not at.exception, [e.value for e in at.exception]
    v2 = pol.get_version(s, "default", 2)
    assert (v2.source, v2.reason, v2.status) == ("import", "import pasted YAML", "approved")
    assert "Imported pasted YAML as v2; it is in force." in texts(at)


def test_broken_audit_chain_is_shown_red(db):
    s = app_store(db)
    with s.transaction() as con:   # tamper with the stored entry behind the app's back
        con.execute("UPDATE audit SET reason = 'forged' WHERE seq = 1")
    at = open_page("policies.py")
    assert [e.value for e in at.error][0].startswith("Audit chain broken at entry #1:")



def tab_containers(at) -> list[tuple[int, str]]:
    """``(position in the main area, block id)`` of each tab container on the page."""
    from streamlit.testing.v1.element_tree import Block

    main = at._tree.children[0]
    return [(i, c.proto.id) for i, c in main.children.items()
            if isinstance(c, Block) and c.proto.WhichOneof("type") == "tab_container"]


def test_tabs_keep_their_place_and_key_across_the_flash_after_a_write(db):
    """The browser remembers the open tab by the container's key, and only while the container stays
    where it was: the success line after a write must not shift it (the next run drops that line)."""
    at = open_page("policies.py")
    before = tab_containers(at)
    assert len(before) == 1 and before[0][1].endswith("pol.tabs")
    s = app_store(db)
    pol.apply(s, "default", add_rule(pol.get_version(s, "default", 1)), base_version=1, user=ED, reason="x")
    refresh()
    at.run()
    at.button(key="pol.rollback").click().run()
    at.text_input(key="pdlg.reason").input("undo")
    at.button(key="pdlg.yes").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [str(m.value) for m in at.success if "Rolled back" in str(m.value)] == [
        "Rolled back: v3 has the rules of v1."]                          # the flash is on screen ...
    assert tab_containers(at) == before
    at.run()
    assert not [m for m in at.success if "Rolled back" in str(m.value)]  # ... and gone on the next run
    assert tab_containers(at) == before


def test_export_version_follows_the_version_in_force(db):
    at = open_page("policies.py")
    box = lambda: at.selectbox(key="pol.export_v")                       # noqa: E731
    assert (box().options, box().value) == (["v1"], 1)
    s = app_store(db)
    v1 = pol.get_version(s, "default", 1)
    pol.apply(s, "default", add_rule(v1), base_version=1, user=ED, reason="x")         # a write elsewhere
    refresh()
    at.run()
    assert (box().options, box().value) == (["v2", "v1"], 2)
    box().set_value(1).run()
    at.run()
    assert box().value == 1                                              # the user's choice stands ...
    at.button(key="pol.rollback").click().run()                          # ... until a write here: v3 = v1
    at.text_input(key="pdlg.reason").input("back")
    at.button(key="pdlg.yes").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert pol.active_version(s).number == 3
    assert (box().options, box().value) == (["v3", "v2", "v1"], 3)
    at.run()
    assert box().value == 3
    box().set_value(2).run()                                             # choosing an older one still works
    assert box().value == 2


def test_demo_generator_writes_are_audited_as_demo_generator(db):
    """Every write ``data.generate.write_demo`` made to the fixture database names its actor."""
    e = audit.list_audit(app_store(db))
    assert "unknown" not in set(e["actor"])
    by_action = e.groupby("action")["actor"].agg(lambda a: sorted(set(a))).to_dict()
    assert by_action == {"upload": ["demo-generator"], "set_series_meta": ["demo-generator"],
                         "import_incidents": ["demo-generator"], "policy.seed": ["demo-generator"]}
    assert len(e[e["action"] == "set_series_meta"]) == 2 * 5                # 2 services x 5 metrics


# ---------------------------------------------------------------------------- pure helpers
def test_diff_frame_and_versions_frame_by_hand():
    from ui import policy_tables as pu

    a = [{"name": "A", "series": "m", "warning": 1.0}, {"name": "B", "series": "n", "warning": 2.0}]
    b = [{"name": "A", "series": "m", "warning": 3.0}, {"name": "C", "series": "o", "critical": 9.0}]
    df = pu.diff_frame(pol.diff(a, b))
    assert df.values.tolist() == [["C", "added", "", "", "o > w=None c=9.0"],
                                  ["B", "removed", "", "n > w=2.0 c=None", ""],
                                  ["A", "changed", "warning", "1.0", "3.0"]]
    assert pu.diff_frame(pol.diff(a, a)).empty


def test_session_user_uses_st_user_only_when_login_is_configured(db, monkeypatch):
    import streamlit as st

    from ui import session as pu

    assert pu.oidc_configured() is False                     # no [auth] secret here
    assert pu.session_user() == (User("ed", None, frozenset({"viewer", "editor"})), None)
    monkeypatch.setattr(st, "user", {"is_logged_in": False})   # [auth] configured, nobody logged in
    assert pu.oidc_configured() is True
    assert pu.session_user()[0].roles == frozenset({"viewer"})
    monkeypatch.setattr(st, "user", {"is_logged_in": True, "email": "ann", "name": "Ann"})
    u, err = pu.session_user()
    assert (u.id, u.roles, err) == ("ann", frozenset({"viewer", "editor", "approver"}), None)
    (db.parent / "roles.toml").write_text("[roles]\nann = ['admin']\n")          # unknown role
    u, err = pu.session_user()
    assert u.roles == frozenset({"viewer"}) and "unknown role" in err


# ---------------------------------------------------------------------------------------- deployed rules
TEAM_RULES = """groups:
  - name: api
    rules:
      - record: job:errors:ratio5m
        expr: sum by (job) (rate(errors_total[5m]))
      - alert: CheckoutErrorRatio
        expr: sum(rate(errors_total[5m])) / sum(rate(requests_total[5m])) > 0.02
        for: 10m
        labels: {team: checkout, severity: warning}
"""


def test_import_deployed_rules_then_map_an_expression_to_a_series(db):
    at = open_page("policies.py")
    at.text_area(key="pol.rules_text").input("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: 'x >'\n").run()
    assert "Not importable: pasted rules: group 'g', alert 'A'.expr: not valid PromQL" in texts(at)
    at.checkbox(key="pol.rules_merge").check().run()
    at.text_area(key="pol.rules_text").input(TEAM_RULES).run()
    page = texts(at)
    assert "The new version: 13 tunable rules, 1 kept unchanged (not tunable)." in page
    assert "1 added, 0 removed, 0 changed, 12 unchanged" in page
    at.button(key="pol.rules_import").click().run()
    at.button(key="pdlg.yes").click().run()
    assert not at.exception, [e.value for e in at.exception]
    s = app_store(db)
    v2 = pol.get_version(s, "default", 2)
    assert (v2.source, v2.reason) == ("import", "import-rules pasted rules")
    assert [c["name"] for c in v2.meta["carried_rules"]] == ["job:errors:ratio5m"]
    rule = next(r for r in v2.rules() if r.name == "CheckoutErrorRatio")
    assert rule.promql.startswith("sum(rate(errors_total") and rule.series == "CheckoutErrorRatio"
    if v2.status != "approved":
        pytest.skip("import needs approval in this demo")
    at.text_area(key="pol.rules_text").input("").run()
    assert frame_with(at, "promql")["rule"].tolist() == ["CheckoutErrorRatio"]
    assert frame_with(at, "reason")["name"].tolist() == ["job:errors:ratio5m"]
    # the mapping editor's change goes through the usual confirm dialog and apply
    at.session_state["policy_ui.pending"] = ("map_series", {"changes": {
        "CheckoutErrorRatio": 'error_rate_pct{service="checkout"}'}, "base": 2})
    at.run()
    at.button(key="pdlg.yes").click().run()
    assert not at.exception, [e.value for e in at.exception]
    v3 = pol.get_version(s, "default", 3)
    mapped = next(r for r in v3.rules() if r.name == "CheckoutErrorRatio")
    assert mapped.series == 'error_rate_pct{service="checkout"}' and mapped.promql == rule.promql
    assert v3.meta["carried_rules"] == v2.meta["carried_rules"]
    assert mapped.matching(s.series_keys()) == ['error_rate_pct{service="checkout"}']


def test_series_changes_and_expression_frame():
    import json

    from ui import policies as pu
    from ui import policy_tables as tables

    dicts = [{"name": "E", "series": "E", "comparator": ">", "critical": 1.0, "for": "0s", "missing": "resolve",
              "promql": "a / b"}, {"name": "P", "series": "p", "warning": 1.0}]
    v = pol.PolicyVersion(policy="default", number=1, parent_number=None, author="a", created_at=None, reason="r",
                          content=json.dumps(dicts), content_hash="h", effective_at=None, status="approved",
                          requires_approval=False)
    frame = tables.expression_frame(v)
    assert frame.to_dict("records") == [{"rule": "E", "promql": "a / b", "series": "E"}]
    frame.loc[0, "series"] = 'x{a="1"}'
    assert pu.series_changes(v, frame) == {"E": 'x{a="1"}'}
    assert pu.series_changes(v, tables.expression_frame(v)) == {}


def test_export_offers_promtool_tests_with_the_rules(db):
    at = open_page("policies.py")
    at.toggle(key="pol.with_tests").set_value(True).run()
    assert not at.exception
    caption = next(str(c.value) for c in at.caption if "promtool test rules" in str(c.value))
    assert "2 alerts fired on the history, 2 with firing and quiet assertions" in caption
    assert "6 of 6 changes the history can tell apart" in caption
    assert "promtool test rules default-v1.test.yml" in caption
