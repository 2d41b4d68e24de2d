"""SLOs page (AppTest) on the small demo database: define a threshold SLO, read compliance, budget and
the burn-rate pairs, see the low-traffic guard, and add the burn-rate rules to the policy (the SLO
definition goes into the new version's meta)."""

from __future__ import annotations

import pytest

from core.policy import versions as pol
from core.slo import slos_from_meta
from tests.apptest_util import EDITOR_AND_VIEWER_ROLES, app_store, demo_copy, ok, open_page, texts

CHECKOUT = 'latency_p95_ms{service="checkout"}'
ROLES = EDITOR_AND_VIEWER_ROLES


@pytest.fixture
def db(tmp_path, demo_db_bytes, monkeypatch):
    with demo_copy(tmp_path, demo_db_bytes, ROLES, monkeypatch) as p:
        yield p



def defined(at, name="checkout-latency", min_events=100):
    at.text_input(key="slo.name.New SLO...").input(name)
    at.text_input(key="slo.series.New SLO...").input(CHECKOUT)
    at.number_input(key="slo.thr.New SLO...").set_value(400.0)
    at.number_input(key="slo.min.New SLO...").set_value(min_events)
    return ok(at.run())


def test_define_an_slo_and_add_its_burn_rate_rules(db):
    at = defined(ok(open_page("slos.py")))
    labels = {m.label: m.value for m in at.metric}
    pts = app_store(db).get_points(CHECKOUT)
    fin = pts[pts["value"].notna()]
    minutes = fin["ts"].dt.floor("min")
    bad = fin[fin["value"] > 400.0]["ts"].dt.floor("min").nunique()
    assert labels["Events in window"] == f"{minutes.nunique():,}"      # each minute with a finite point
    assert labels["Compliance"] == f"{1 - bad / minutes.nunique():.4%}"
    assert labels["Budget consumed"] == f"{bad / (0.001 * minutes.nunique()):.1%}"
    pairs = at.dataframe[0].value
    assert pairs["windows"].tolist() == ["1h/5m", "6h/30m", "3d/6h"]
    assert pairs["factor"].tolist() == pytest.approx([14.4, 6.0, 1.0])        # 30-day window
    assert "Low-traffic guard: a window with fewer than 100 events" in texts(at)
    at.button(key="slo.apply").click().run()
    ok(at)
    assert any("field" in df.value.columns for df in at.dataframe)      # the apply preview's rule diff
    at.text_input(key="slo.reason").input("checkout latency SLO")
    at.button(key="slo.confirm").click().run()
    ok(at)
    v = pol.history(app_store(db))[-1]
    burn = [r for r in v.rule_dicts if r["name"].startswith("SLOBurn_checkout_latency_")]
    assert {r["name"]: r.get("critical", r.get("warning")) for r in burn} == {
        "SLOBurn_checkout_latency_1h": 14.4, "SLOBurn_checkout_latency_6h": 6.0, "SLOBurn_checkout_latency_3d": 1.0}
    (slo,) = slos_from_meta(v.meta)
    assert (slo.name, slo.series, slo.threshold, slo.target) == ("checkout-latency", CHECKOUT, 400.0, 0.999)
    assert v.status == "pending_approval"          # new rules with a critical level need a second person
    at = ok(at.run())
    assert "checkout-latency (waits for approval)" in at.selectbox(key="slo.pick").options
    at.selectbox(key="slo.pick").set_value("checkout-latency (waits for approval)").run()
    assert ok(at).text_input(key="slo.series.checkout-latency (waits for approval)").value == CHECKOUT


def test_low_traffic_guard_withholds_the_verdict(db):
    at = defined(ok(open_page("slos.py")), min_events=100000)
    assert {m.label: m.value for m in at.metric}["Compliance"] == "insufficient"
    assert "fewer than the 100000 the low-traffic guard needs" in texts(at)


def test_viewer_cannot_add_rules(db, monkeypatch):
    monkeypatch.setenv("STUDIO_USER", "carol")
    at = defined(ok(open_page("slos.py")))
    assert at.button(key="slo.apply").disabled
