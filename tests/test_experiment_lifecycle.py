"""Experiment lifecycle in the store: transitions, refusals that write nothing, audit entries in the
same transaction, running day by day and to a verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.alerting.rules import Rule
from core.data.store import audit
from core.errors import ConflictError, NotFound, ValidationError
from core.experiment import lifecycle
from core.experiment.plan import plan_experiment

RA = Rule(name="A", series="lat", comparator=">", warning=100.0, for_s=120)
RB = Rule(name="B", series="lat", comparator=">", warning=120.0, for_s=120)


def _outcomes(n: int = 40, seed: int = 0, effect: float = 2.5) -> pd.DataFrame:
    """Per-day outcomes where B clearly has fewer false episodes and misses nothing more."""
    rng = np.random.default_rng(seed)
    arm = rng.permutation(np.arange(n) < n // 2)
    fe = np.where(arm, rng.poisson(0.5, n), rng.poisson(0.5 + effect, n)).astype(float)
    return pd.DataFrame({"unit": np.arange(n), "day": pd.date_range("2026-02-02", periods=n, freq="D", tz="UTC"),
                         "arm": np.where(arm, "B", "A"), "episodes": fe + 1, "false_episodes": fe,
                         "incidents": 1.0, "caught": 1.0, "missed": 0.0,
                         "delay_s": rng.normal(120, 5, n)})


@pytest.fixture
def plan():
    return plan_experiment(1.5, 1.2, mde_rel=-0.5, stopping="msprt")


def _actions(store) -> list[str]:
    return list(audit.list_audit(store, object="experiment:")["action"])[::-1]


def test_happy_path_day_by_day_then_to_the_verdict(store, plan):
    eid = lifecycle.create(store, name="raise latency warning", series="lat", rule_a=RA, rule_b=RB, plan=plan,
                           settings={"seed": 3}, actor="alice")
    row = lifecycle.get(store, eid)
    assert row["status"] == "planning" and row["plan"]["stopping"] == "msprt"
    assert lifecycle.plan_of(row) == plan and row["rule_b"]["warning"] == 120.0
    lifecycle.replan(store, eid, plan_experiment(1.5, 1.2, mde_rel=-0.6, stopping="msprt"), actor="alice")
    lifecycle.start(store, eid, actor="alice")
    out = _outcomes()
    d = lifecycle.advance(store, eid, out, units=3, actor="alice")
    assert d.action == "extend" and len(lifecycle.recorded_units(store, eid)) == 3
    assert lifecycle.get(store, eid)["status"] == "running"
    d = lifecycle.advance(store, eid, out, units=None, actor="alice")
    row = lifecycle.get(store, eid)
    assert d.action == "adopt" and row["status"] == "completed" and row["result"]["action"] == "adopt"
    n = len(lifecycle.recorded_units(store, eid))
    assert n == d.units < len(out)                       # stopped at the first deciding look
    pd.testing.assert_frame_equal(lifecycle.recorded_units(store, eid)[["arm", "false_episodes"]],
                                  out.iloc[:n][["arm", "false_episodes"]].reset_index(drop=True))
    assert _actions(store) == ["experiment.create", "experiment.plan", "experiment.start", "experiment.advance",
                               "experiment.advance", "experiment.complete"]
    assert audit.verify_audit(store)[0]
    listed = lifecycle.list_all(store)
    assert listed.loc[0, "status"] == "completed" and listed.loc[0, "action"] == "adopt"
    assert listed.loc[0, "units"] == n


def test_invalid_transitions_are_refused_and_write_nothing(store, plan):
    eid = lifecycle.create(store, name="x", series="lat", rule_a=RA, rule_b=RB, plan=plan, actor="bob")
    with pytest.raises(ValidationError, match="start it first"):
        lifecycle.advance(store, eid, _outcomes(), actor="bob")
    lifecycle.start(store, eid, actor="bob")
    before = len(audit.list_audit(store))
    with pytest.raises(ValidationError, match="running: 'plan' .* only from planning"):
        lifecycle.replan(store, eid, plan, actor="bob")
    with pytest.raises(ValidationError, match="running: 'start'"):
        lifecycle.start(store, eid, actor="bob")
    with pytest.raises(ValidationError, match="reason"):
        lifecycle.stop(store, eid, " ", actor="bob")
    assert len(audit.list_audit(store)) == before and lifecycle.get(store, eid)["status"] == "running"
    lifecycle.stop(store, eid, "the candidate rule was withdrawn", actor="bob")
    row = lifecycle.get(store, eid)
    assert row["status"] == "stopped" and row["stop_reason"] == "the candidate rule was withdrawn"
    for act in (lambda: lifecycle.start(store, eid), lambda: lifecycle.stop(store, eid, "again"),
                lambda: lifecycle.advance(store, eid, _outcomes())):
        with pytest.raises(ValidationError):
            act()
    assert _actions(store)[-1] == "experiment.stop"
    with pytest.raises(NotFound):
        lifecycle.start(store, 999)
    with pytest.raises(ValidationError, match="A/A"):
        lifecycle.create(store, name="same", series="lat", rule_a=RA, rule_b=RA, plan=plan)


def test_a_transition_and_its_audit_entry_commit_together(store, plan, monkeypatch):
    eid = lifecycle.create(store, name="x", series="lat", rule_a=RA, rule_b=RB, plan=plan)

    def broken(*a, **k):
        raise RuntimeError("audit down")

    monkeypatch.setattr(lifecycle.audit, "record", broken)
    with pytest.raises(RuntimeError):
        lifecycle.start(store, eid)
    assert lifecycle.get(store, eid)["status"] == "planning"


def test_a_stale_read_is_a_conflict(store, plan):
    eid = lifecycle.create(store, name="x", series="lat", rule_a=RA, rule_b=RB, plan=plan)
    stale = lifecycle.get(store, eid)
    lifecycle.start(store, eid)
    lifecycle.stop(store, eid, "changed my mind")
    stale["status"] = "running"
    with pytest.raises(ConflictError):
        with store.transaction():
            lifecycle._move(store, stale, "experiment.complete", "eve")
    assert lifecycle.get(store, eid)["status"] == "stopped"


def test_advance_refuses_outcomes_that_do_not_continue_the_record(store, plan):
    eid = lifecycle.create(store, name="x", series="lat", rule_a=RA, rule_b=RB, plan=plan)
    lifecycle.start(store, eid)
    lifecycle.advance(store, eid, _outcomes(seed=0), units=5)
    with pytest.raises(ValidationError, match="do not continue"):
        lifecycle.advance(store, eid, _outcomes(seed=1), units=1)
    assert len(lifecycle.recorded_units(store, eid)) == 5


def test_adoption_hands_rule_b_to_the_policy_preview(store, plan):
    from core.policy import versions as pol
    from core.policy.identity import User

    ed = User("ed", "ed@example.com", frozenset({"viewer", "editor"}), os_account="ed-os")
    other = Rule(name="errors", series="err", comparator=">", warning=5.0)
    pol.apply(store, pol.DEFAULT_POLICY, [RA, other], base_version=0, user=ed, reason="seed")
    eid = lifecycle.create(store, name="x", series="lat", rule_a=RA, rule_b=RB, plan=plan)
    with pytest.raises(ValidationError, match="verdict is adopt"):
        lifecycle.adoption(store, eid)
    lifecycle.start(store, eid)
    assert lifecycle.advance(store, eid, _outcomes(), units=None).action == "adopt"
    rules, prev = lifecycle.adoption(store, eid)
    assert [r["name"] for r in rules] == ["A", "errors"] and rules[0]["warning"] == 120.0
    assert prev.diff.affected == ["A"] and prev.base_version == 1
    v = pol.apply(store, pol.DEFAULT_POLICY, rules, base_version=prev.base_version, user=ed,
                  reason=f"experiment {eid}: adopt", source="experiment")
    assert v.number == 2 and pol.active_version(store).rule_dicts[0]["warning"] == 120.0
