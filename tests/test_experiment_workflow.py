"""core.experiment.workflow: stored points to a history, the pilot's baseline, the seeded simulation of
a stored experiment, and the policy rule a series falls under."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.alerting.rules import Rule
from core.errors import InsufficientDataError
from core.experiment.plan import plan_experiment
from core.experiment.simulate import synthetic_history
from core.experiment.workflow import (
    baseline,
    history_of,
    lower_is_better,
    pilot,
    rule_for_series,
    simulation_of,
)

H = synthetic_history(8, seed=1, step_s=300)
RA = Rule(name="A", series="s", comparator=">", warning=float(np.nanquantile(H.to_numpy(), 0.995)), for_s=120)
RB = Rule(name="A", series="s", comparator=">", warning=float(np.nanquantile(H.to_numpy(), 0.999)), for_s=120)


def test_history_of_points_and_empty():
    pts = pd.DataFrame({"ts": H.index, "value": H.to_numpy()})
    h = history_of(pts, "s")
    assert h.name == "s" and len(h) == len(H) and str(h.index.tz) == "UTC"
    with pytest.raises(InsufficientDataError, match="'s' has no stored points"):
        history_of(pts.iloc[:0], "s")


def test_baseline_known_answer_and_direction():
    y, m, sd = baseline(pd.DataFrame({"x": [1.0, 2.0, np.nan, 3.0]}), "x")
    assert list(y) == [1.0, 2.0, 3.0] and m == 2.0 and sd == 1.0
    assert lower_is_better("false_episodes") and not lower_is_better("caught")


def test_pilot_is_seeded_and_simulation_of_is_reproducible():
    p1, m1, s1 = pilot(H, RA, days=20, seed=4)
    p2, m2, s2 = pilot(H, RA, days=20, seed=4)
    assert len(p1) == 20 and (m1, s1) == (m2, s2)
    plan = plan_experiment(1.5, 1.2, mde_rel=-0.9, stopping="fixed")
    row = {"rule_a": RA.to_dict(), "rule_b": RB.to_dict(), "plan": plan.to_dict(), "settings": {"seed": 2}}
    a, b = simulation_of(row, H).outcomes, simulation_of(row, H).outcomes
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == plan.days and (a["arm"] == "B").sum() == round(plan.split * plan.days)


def test_rule_for_series_first_match_in_policy_order():
    rules = [{"name": "Other", "series": "x", "comparator": ">", "warning": 1.0},
             {"name": "Fleet", "series": "lat{service=\"*\"}", "comparator": ">", "warning": 2.0},
             {"name": "Api", "series": "lat{service=\"api\"}", "comparator": ">", "warning": 3.0}]
    assert rule_for_series(rules, 'lat{service="api"}').name == "Fleet"
    assert rule_for_series(rules, "nothing") is None
