"""Recommendations page (AppTest) on the small demo database: compute the fleet, read the table and a
detail view, and apply a selected recommendation through the preview dialog as one policy version."""

from __future__ import annotations

import pytest

from core.data.store import audit
from core.policy import versions as pol
from tests.apptest_util import EDITOR_AND_VIEWER_ROLES, app_store, demo_copy, ok, open_page, texts

CHECKOUT = 'latency_p95_ms{service="checkout"}'
ROLES = EDITOR_AND_VIEWER_ROLES


@pytest.fixture
def db(tmp_path, demo_db_bytes, monkeypatch):
    with demo_copy(tmp_path, demo_db_bytes, ROLES, monkeypatch) as p:
        yield p



def computed(at):
    at.button(key="rec.run").click().run()
    return ok(at)


def test_fleet_table_detail_and_apply_selected(db):
    at = ok(open_page("recommendations.py"))
    assert "Compute recommendations" in [b.label for b in at.button]
    at = computed(at)
    table = at.dataframe[0].value
    n_series = len(app_store(db).series_keys())
    assert len(table) == n_series
    assert {"series", "warning", "predicted_episodes_per_week", "risk", "noise_reduction"} <= set(table.columns)
    nr = table["noise_reduction"].dropna().to_numpy()
    assert (nr[:-1] >= nr[1:]).all()                                 # sorted by expected noise reduction
    at.text_input(key="rec.glob").input("latency*").run()
    assert set(ok(at).dataframe[0].value["series"]) == {k for k in app_store(db).series_keys()
                                                        if k.startswith("latency")}
    at.selectbox(key="rec.detail").set_value(CHECKOUT).run()
    ok(at)
    assert "Preset:" in texts(at) or "preset:" in texts(at)
    assert len(at.get("plotly_chart")) == 1
    side = next(df.value for df in at.dataframe if "incidents caught" in df.value.columns)
    assert side["rule"].tolist() == ["current", "recommended"]
    assert side["incidents caught"].notna().all() and side["incidents missed"].notna().all()
    # apply the checkout recommendation (its rule selects only this series)
    at.multiselect(key="rec.pick").set_value([CHECKOUT]).run()
    at.button(key="rec.apply").click().run()
    ok(at)
    diff = next(df.value for df in at.dataframe if "field" in df.value.columns)
    assert set(diff["rule"]) == {"CheckoutLatencyHigh"} and "warning" in set(diff["field"])
    at.text_input(key="rec.reason").input("recommended levels")
    at.button(key="rec.confirm").click().run()
    ok(at)
    s = app_store(db)
    hist = pol.history(s)
    assert [v.number for v in hist] == [1, 2]
    v2 = hist[-1]
    rule = next(r for r in v2.rule_dicts if r["name"] == "CheckoutLatencyHigh")
    res = next(r for r in at.session_state["rec.results"][1] if r["series"] == CHECKOUT)
    assert rule["warning"] == pytest.approx(res["warning"])
    assert rule["annotations"]["rationale"].startswith("Recommended (balanced preset")
    assert audit.list_audit(s, object="policy:default")["action"].tolist()[0] == "policy.apply"


def test_viewer_cannot_apply(db, monkeypatch):
    monkeypatch.setenv("STUDIO_USER", "carol")
    at = computed(ok(open_page("recommendations.py")))
    at.multiselect(key="rec.pick").set_value([CHECKOUT]).run()
    assert ok(at).button(key="rec.apply").disabled
    assert at.button(key="rec.ab").disabled


def test_detail_view_shows_each_candidate_with_intervals_and_a_cut_by_the_rules_limits(db):
    from core.policy.identity import User

    s = app_store(db)
    v1 = pol.get_version(s, "default", 1)
    rules = [dict(r, limits={"max_change": 0.05}) if r["name"] == "CheckoutLatencyHigh" else r for r in v1.rule_dicts]
    v2 = pol.apply(s, "default", rules, base_version=1, user=User("ed", None, frozenset({"viewer", "editor"})),
                   reason="slow tuning for checkout")
    if v2.status == "pending_approval":
        boss = User("boss", "b@example.com", frozenset({"viewer", "approver"}), os_account="boss-os")
        pol.approve(s, v2, boss, "ok")
    at = computed(ok(open_page("recommendations.py")))
    at.selectbox(key="rec.detail").set_value(CHECKOUT).run()
    ok(at)
    res = next(r for r in at.session_state["rec.results"][1] if r["series"] == CHECKOUT)
    cur = res["current"]["warning"]
    assert res["limits"]["max_change"] == 0.05
    assert res["warning"] == pytest.approx(cur * 0.95) or res["warning"] == pytest.approx(cur * 1.05)
    unc = res["unconstrained"]["warning"]
    cut = [e.value for e in at.info if "cut by" in str(e.value)]
    assert f"Warning cut by max change 5%: unconstrained {unc:.4g} ms, recommended {res['warning']:.4g} ms" in cut
    assert "Change limits of rule CheckoutLatencyHigh: max change 5% per apply, stability 7d." in texts(at)
    out = next(df.value for df in at.dataframe if "episodes/week" in df.value.columns)
    strategies = [c["strategy"] for c in res["candidates"] if not c["insufficient"] and c["strategy"] != "seasonal"]
    assert out["rule"].str.replace(" (chosen)", "").tolist() == ["in force", "recommended", *strategies]
    assert out["episodes/week"].str.contains(r"^\d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\]$").all()   # each with its interval
    assert {"time in alert %", "caught", "missed", "median detection delay (s)", "reset time (s)"} <= set(out.columns)
    assert out["rule"].str.endswith("(chosen)").sum() == 1
