"""Per-rule change limits (``Rule.limits``): stored with the rule, carried through the rule dict and the
policy YAML, used by the engine's constraint step (instead of the global defaults only) and reported.

Known answers: noise N(100, 5) at 5 minutes for 3 weeks recommends a warning near p99 (about 112); a
rule in force at 200 with ``max_change: 0.1`` can come down to 200 x 0.9 = 180 exactly, and with
bounds ``min: 190`` the bound wins at 190. A last change that raised the warning 2 days ago is not
reversed inside a 7-day stability period (the warning stays at 200).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.alerting.recommend.constraints import Constraints, LastChange, last_changes
from core.alerting.recommend.engine import recommend
from core.alerting.recommend.fleet import recommend_one, split_points
from core.alerting.rules import Rule, normalise_rules
from core.errors import ValidationError
from core.policy.policy_yaml import policy_from_yaml, policy_to_yaml
from ui.recommendations import constraint_lines

T0 = pd.Timestamp("2026-01-05", tz="UTC")
NOW = T0 + pd.Timedelta(days=30)


def _noise() -> pd.Series:
    idx = pd.date_range(T0, periods=21 * 288, freq="5min")
    return pd.Series(np.random.default_rng(7).normal(100.0, 5.0, idx.size), index=idx, name="lat")


# ---------------------------------------------------------------------------------------- stored
def test_limits_round_trip_through_the_rule_dict_and_normalise():
    r = Rule.from_dict({"name": "L", "series": "lat", "warning": 200.0,
                        "limits": {"min": 150, "max": 400, "max_change": 0.1, "stability": "3d"}})
    assert r.limits == {"min": 150.0, "max": 400.0, "max_change": 0.1, "stability_s": 259200.0}
    d = r.to_dict()
    assert d["limits"] == {"min": 150.0, "max": 400.0, "max_change": 0.1, "stability": "3d"}
    assert Rule.from_dict(d).to_dict() == d and normalise_rules([d])[0] == d
    assert "limits" not in Rule(name="N", series="x", warning=1.0).to_dict()          # unset: left out


@pytest.mark.parametrize("limits, path, words", [
    ({"max_change": 0}, "rule.limits.max_change", "must be > 0"),
    ({"min": 5, "max": 5}, "rule.limits", "below max"),
    ({"step": 1}, "rule.limits.step", "unknown limit"),
    ({"stability": "soon"}, "rule.limits.stability", "duration"),
    ({"min": 250}, "rule.warning", "outside this rule's bounds [250, ]"),
])
def test_bad_limits_name_the_field(limits, path, words):
    with pytest.raises(ValidationError) as exc:
        Rule.from_dict({"name": "L", "series": "lat", "warning": 200.0, "limits": limits}, path="rule")
    assert exc.value.path == path and words in str(exc.value)


def test_limits_round_trip_through_the_policy_yaml_and_bounds_is_read_into_them():
    doc = """
rules:
  - {name: A, series: a, warning: 200, limits: {max_change: 0.1, stability: 3d, max: 500}}
  - {name: B, series: b, warning: 50, bounds: {min: 10, max: 90}, limits: {max_change: 0.3}}
"""
    rules, meta = policy_from_yaml(doc)
    by = {r.name: r for r in rules}
    assert by["A"].limits == {"max": 500.0, "max_change": 0.1, "stability_s": 259200.0}
    assert by["B"].limits == {"min": 10.0, "max": 90.0, "max_change": 0.3} and meta == {}
    text = policy_to_yaml(rules, meta)
    assert "max_change: 0.1" in text and "stability: 3d" in text and "bounds" not in text
    again, _ = policy_from_yaml(text)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in rules]
    with pytest.raises(ValidationError, match="given in both bounds and limits") as exc:
        policy_from_yaml("rules:\n  - {name: A, series: a, warning: 5, bounds: {min: 1}, limits: {min: 2}}\n")
    assert exc.value.path == "rules[0].bounds.min"
    # an older stored policy's meta bounds are still written out (and read back into the rule)
    old = policy_to_yaml([Rule(name="C", series="c", warning=5.0)], {"bounds": {"C": {"min": 1.0}}})
    assert policy_from_yaml(old)[0][0].limits == {"min": 1.0}


# ---------------------------------------------------------------------------------------- enforced
def test_constraints_from_the_rule_override_the_defaults():
    r = Rule(name="L", series="lat", warning=200.0, limits={"max_change": 0.1})
    c = Constraints.from_rule(r, bounds={"min": 5.0, "max": 900.0})
    assert (c.min, c.max, c.max_change, c.stability_s) == (5.0, 900.0, 0.1, 7 * 86400.0)
    c2 = Constraints.from_rule(Rule(name="L", series="lat", warning=200.0, limits={"min": 150, "stability": "1d"}),
                               max_change=0.3, bounds={"min": 5.0})
    assert (c2.min, c2.max_change, c2.stability_s) == (150.0, 0.3, 86400.0)
    assert c.describe() == "max change 10% per apply, stability 7d, bounds [5, 900]"


def test_engine_uses_the_rules_stored_limits_and_reports_the_cut():
    s = _noise()
    cur = Rule(name="L", series="lat", warning=200.0, limits={"max_change": 0.1})
    rec = recommend(s, current=cur, exclude_outages=False, now=NOW)
    assert rec.warning == pytest.approx(180.0)
    assert rec.unconstrained["warning"] < 130.0
    assert any("warning may move at most 10% per apply (from 200)" in n for n in rec.constraint_notes)
    bounded = recommend(s, current=Rule(name="L", series="lat", warning=200.0,
                                        limits={"max_change": 0.1, "min": 190.0}), exclude_outages=False, now=NOW)
    assert bounded.warning == pytest.approx(190.0)


def test_fleet_task_carries_limits_last_change_and_reports_them():
    s = _noise()
    pts = pd.DataFrame({"series": "lat", "ts": s.index, "value": s.to_numpy()})
    cur = Rule(name="L", series="lat", warning=200.0, limits={"max_change": 0.1})
    # v1 at 150, v2 (2 days before NOW) raised it to 200: going back down within 7 days is held back
    hist = [(NOW - pd.Timedelta(days=20), [{"name": "L", "series": "lat", "warning": 150.0}]),
            (NOW - pd.Timedelta(days=2), [cur.to_dict()])]
    (item,) = split_points(pts, None, {"lat": cur}, None, history=hist)
    assert item[6] == (LastChange(150.0, 200.0, NOW - pd.Timedelta(days=2)), None)
    held = recommend_one(item, {"exclude_outages": False, "now": NOW})
    assert held["warning"] == pytest.approx(200.0)
    assert any("stability period is held back" in n for n in held["constraints"])
    free = recommend_one(item[:6], {"exclude_outages": False, "now": NOW})       # no history: only max change
    assert free["warning"] == pytest.approx(180.0)
    assert free["limits"]["text"] == "max change 10% per apply, stability 7d"
    line = constraint_lines(free, "ms")
    assert line == [f"warning cut by max change 10%: unconstrained {free['unconstrained']['warning']:.4g} ms, "
                    "recommended 180 ms",      # and the recommended critical (~130) no longer lies beyond it
                    f"critical cut by the warning/critical order: unconstrained "
                    f"{free['unconstrained']['critical']:.4g} ms, no level set"]
    assert constraint_lines(held)[0].startswith("warning cut by the stability period")


def test_last_changes_by_hand():
    t = [pd.Timestamp(f"2026-01-0{d}", tz="UTC") for d in (1, 2, 3, 4)]
    hist = [(t[0], [{"name": "A", "warning": 1.0, "critical": 5.0}]),
            (t[1], [{"name": "A", "warning": 2.0, "critical": 5.0}]),
            (t[2], [{"name": "A", "warning": 2.0}]),                         # critical removed: not a change
            (t[3], [{"name": "A", "warning": 2.0, "critical": 9.0}])]        # ... nor added back
    assert last_changes(hist, "A") == (LastChange(1.0, 2.0, t[1]), None)
    assert last_changes(hist, "B") == (None, None) and last_changes([], "A") == (None, None)
