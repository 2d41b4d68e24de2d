"""Experiments page (AppTest) on a small 8-day demo database: create an experiment with a plan and its
power curve, start it and run it to a verdict, adopt a winning rule B into the apply preview, and a
viewer sees the page but cannot write."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.alerting.rules import Rule
from core.data.store import audit
from core.experiment import lifecycle
from core.experiment.plan import plan_experiment
from tests.apptest_util import EDITOR_AND_VIEWER_ROLES, app_store, demo_copy, ok, open_page, texts

API = 'latency_p95_ms{service="api-gateway"}'
ROLES = EDITOR_AND_VIEWER_ROLES


@pytest.fixture(scope="module")
def demo8(tmp_path_factory) -> bytes:
    """One service, 8 days at 5-minute steps (the simulation bootstraps whole days: it needs 7)."""
    from data.generate import write_demo

    d = tmp_path_factory.mktemp("demo8")
    write_demo(d / "csv", d / "demo.duckdb", services=1, days=8, freq="5min")
    return (d / "demo.duckdb").read_bytes()


@pytest.fixture
def db(tmp_path, demo8, monkeypatch):
    with demo_copy(tmp_path, demo8, ROLES, monkeypatch) as p:
        yield p


@pytest.fixture
def viewer_db(tmp_path, demo8, monkeypatch):
    with demo_copy(tmp_path, demo8, ROLES, monkeypatch, user="carol") as p:
        yield p



def pick(at, eid: int):
    """Rerun (the experiment was written behind the page's back) and select experiment ``eid``."""
    at.run()
    sb = at.selectbox(key="exp.pick")
    return sb.set_value(next(o for o in sb.options if o.startswith(f"#{eid} "))).run()


def new_experiment(at, level_b: float = 200.0):
    at.selectbox(key="exp.series").set_value(API).run()
    at.number_input(key="exp.level_b").set_value(level_b).run()
    at.selectbox(key="exp.metric").set_value("episodes").run()
    at.slider(key="exp.mde").set_value(-0.9).run()
    at.selectbox(key="exp.stopping").set_value("fixed").run()
    return ok(at)


def test_create_plan_start_and_run_to_a_verdict(db):
    at = ok(open_page("experiments.py"))
    at = new_experiment(at)
    t = texts(at)
    assert "ApiGatewayLatencyHigh" in t and "stopping rule needs" in t     # rule A is the rule in force
    assert len(at.get("plotly_chart")) == 1                                 # the power curve
    at.button(key="exp.create").click().run()
    at.button(key="exp.create.yes").click().run()
    ok(at)
    store = app_store(db)
    listing = lifecycle.list_all(store)
    assert len(listing) == 1 and listing.loc[0, "status"] == "planning" and listing.loc[0, "created_by"] == "ed"
    eid = int(listing.loc[0, "id"])
    row = lifecycle.get(store, eid)
    assert row["rule_a"]["warning"] == 150.0 and row["rule_b"]["warning"] == 200.0
    assert row["rule_b"]["name"] == "ApiGatewayLatencyHigh" and row["plan"]["stopping"] == "fixed"
    assert at.selectbox(key="exp.pick").value.startswith(f"#{eid} ")
    at.button(key="exp.start").click().run()
    at.button(key="exp.start.yes").click().run()
    assert lifecycle.get(store, eid)["status"] == "running"
    at.button(key="exp.step").click().run()
    at.button(key="exp.advance.yes").click().run()
    ok(at)
    assert len(lifecycle.recorded_units(store, eid)) == 1
    at.button(key="exp.run").click().run()
    at.button(key="exp.advance.yes").click().run()
    ok(at)
    row = lifecycle.get(store, eid)
    assert row["status"] == "completed" and row["result"]["action"] in ("adopt", "reject")
    assert len(lifecycle.recorded_units(store, eid)) == row["plan"]["units"]    # fixed horizon: all days
    assert row["result"]["action"].upper() in texts(at)
    verdict = next(df.value for df in at.dataframe if "quantity" in df.value.columns)
    assert "difference B - A" in verdict["quantity"].tolist()
    actions = list(audit.list_audit(store, object=f"experiment:{eid}")["action"])[::-1]
    assert actions == ["experiment.create", "experiment.start", "experiment.advance", "experiment.advance",
                       "experiment.complete"]
    assert set(audit.list_audit(store, object=f"experiment:{eid}")["actor"]) == {"ed"}


def _adopted(store) -> int:
    """An experiment completed with verdict adopt (outcomes where B clearly has fewer false episodes)."""
    rng = np.random.default_rng(0)
    n = 40
    arm = rng.permutation(np.arange(n) < n // 2)
    fe = np.where(arm, rng.poisson(0.5, n), rng.poisson(3.0, n)).astype(float)
    out = pd.DataFrame({"unit": np.arange(n), "day": pd.date_range("2026-02-02", periods=n, freq="D", tz="UTC"),
                        "arm": np.where(arm, "B", "A"), "episodes": fe + 1, "false_episodes": fe,
                        "incidents": 1.0, "caught": 1.0, "missed": 0.0, "delay_s": rng.normal(120, 5, n)})
    ra = Rule(name="ApiGatewayLatencyHigh", series=API, comparator=">", warning=150.0, critical=300.0, for_s=300)
    rb = Rule(name="ApiGatewayLatencyHigh", series=API, comparator=">", warning=160.0, critical=300.0, for_s=300)
    eid = lifecycle.create(store, name="raise api warning", series=API, rule_a=ra, rule_b=rb,
                           plan=plan_experiment(1.5, 1.2, mde_rel=-0.5, stopping="msprt"), actor="ed")
    lifecycle.start(store, eid, actor="ed")
    assert lifecycle.advance(store, eid, out, units=None, actor="ed").action == "adopt"
    return eid


def test_adopt_opens_the_apply_preview_and_writes_a_policy_version(db):
    from core.policy import versions as pol

    at = ok(open_page("experiments.py"))
    store = app_store(db)
    eid = _adopted(store)
    ok(pick(at, eid))
    assert "ADOPT" in texts(at)
    before = pol.latest_number(store)
    at.button(key="exp.adopt").click().run()
    ok(at)
    diff = next(df.value for df in at.dataframe if "ApiGatewayLatencyHigh" in df.value.to_string())
    assert "160" in diff.to_string()                                  # the preview shows B's level
    at.button(key="exp.adopt.yes").click().run()
    ok(at)
    assert pol.latest_number(store) == before + 1
    v = pol.get_version(store, pol.DEFAULT_POLICY, before + 1)
    assert v.source == "experiment"
    rule = next(r for r in v.rule_dicts if r["name"] == "ApiGatewayLatencyHigh")
    assert rule["warning"] == 160.0 and v.experiment_id == eid


def test_viewer_sees_but_cannot_write(viewer_db):
    at = ok(open_page("experiments.py"))
    at = new_experiment(at)
    assert at.button(key="exp.create").disabled
    at.slider(key="exp.mde").set_value(-0.05).run()                  # a tiny effect needs far more than 60 days
    assert "Outside the allowed 3-60 days" in texts(ok(at)) and "more than the 60 allowed" in texts(at)
    assert "editor" in texts(at)
    store = app_store(viewer_db)
    eid = _adopted(store)
    ok(pick(at, eid))
    assert at.button(key="exp.adopt").disabled
    # a request made anyway (e.g. roles changed while the page was open) is refused at confirm time
    at.session_state["exp.pending"] = ("stop", {"eid": eid})
    at.run()
    assert lifecycle.get(store, eid)["status"] == "completed"


def test_recommendation_opens_the_page_prefilled(db):
    at = ok(open_page("recommendations.py"))
    at.button(key="rec.run").click().run()
    at.selectbox(key="rec.detail").set_value(API).run()
    ok(at)
    rec_warning = float(at.metric[0].value)
    assert not at.button(key="rec.ab").disabled
    at.button(key="rec.ab").click().run()
    ok(at)
    assert at.title[0].value == "Experiments"
    assert at.selectbox(key="exp.pick").value == "New experiment"
    assert at.selectbox(key="exp.series").value == API
    assert at.number_input(key="exp.level_b").value == pytest.approx(rec_warning, rel=1e-3)
    assert "ApiGatewayLatencyHigh" in texts(at)                 # A stays the rule in force


def test_running_chart_shows_a_daily_boundary_only_for_the_sequential_plan():
    import pandas as pd

    from core.experiment.plan import plan_experiment
    from ui.experiments import running_caption, running_figure

    path = pd.DataFrame({"units": [1, 2, 3], "diff": [0.1, 0.0, -0.2], "cs_low": [-1.0, -0.8, -0.7],
                         "cs_high": [1.0, 0.8, 0.5], "log_lr": [0.1, 0.3, 0.2]})
    for stopping, panels in (("msprt", 2), ("obf", 1), ("fixed", 1)):
        plan = plan_experiment(10.0, 3.0, mde_rel=-0.5, stopping=stopping)
        fig = running_figure(path, plan, None)
        assert len([a for a in fig.layout.annotations if "log LR" in (a.text or "")]) == panels - 1, stopping
        assert ("log likelihood ratio" in running_caption(plan)) == (stopping == "msprt")
