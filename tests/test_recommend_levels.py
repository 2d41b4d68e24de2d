"""The engine's ``levels=`` path (:func:`core.alerting.recommend.engine.recommend`): given levels are
evaluated, not chosen, and their held-out check has a known answer.

30 days at 5 minutes of a flat series (noise in [0, 1)) with one-hour spikes to 10: daily at 12:00
during the first 21 days (the fit period at ``train_fraction=0.7`` ends 20.99 days in) and twice a
day (06:00 and 18:00) afterwards. A warning at 5 with the balanced ``for`` (5 minutes) fires once
per spike, so the prediction is 21 episodes over the fit span and the measurement 18 over the
held-out span, exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.alerting.recommend.constraints import Constraints
from core.alerting.recommend.engine import recommend
from core.alerting.rules import Rule
from core.errors import ValidationError

T0 = pd.Timestamp("2026-01-05", tz="UTC")
WEEK = 7 * 86400.0


def _spiky() -> pd.Series:
    idx = pd.date_range(T0, periods=30 * 288, freq="5min")
    v = np.random.default_rng(1).uniform(0, 1, idx.size)
    day, hour = (idx - T0).days, idx.hour
    spike = ((day < 21) & (hour == 12)) | ((day >= 21) & ((hour == 6) | (hour == 18)))
    v[np.asarray(spike)] = 10.0
    return pd.Series(v, index=idx, name="lat")


def test_given_levels_predicted_from_the_fit_period_and_measured_on_the_held_out_part():
    s = _spiky()
    rec = recommend(s, levels=(5.0, 20.0), exclude_outages=False)
    span = (s.index[-1] - s.index[0]).total_seconds()
    fit_span, held_span = 0.7 * span, 0.3 * span
    assert rec.strategy == "given" and rec.insufficient is None
    assert (rec.warning, rec.critical) == (5.0, 20.0)
    assert rec.predicted_episodes_per_week == pytest.approx(21 / (fit_span / WEEK), rel=1e-6)
    v = rec.validation
    assert v["actual"] == pytest.approx(18 / (held_span / WEEK), rel=1e-6)
    assert v["in_sample"] is False and v["sufficient"] is True
    assert v["relative_error"] == pytest.approx(v["actual"] / v["predicted"] - 1, rel=1e-9)
    assert v["within"] is False                       # 5.0 vs 14.0 a week: twice the rate, not within 15 %
    lo, hi = rec.predicted_interval
    assert lo < rec.predicted_episodes_per_week < hi
    assert "Levels given: warning 5, critical 20." in rec.rationale


def test_given_levels_are_not_cut_by_constraints_and_a_lone_critical_stays_critical():
    s = _spiky()
    cur = Rule(name="r", series="lat", warning=8.0)
    rec = recommend(s, levels=(None, 5.0), current=cur, constraints=Constraints(max=6.0), exclude_outages=False)
    assert (rec.warning, rec.critical) == (None, 5.0) and not rec.constraint_notes
    assert rec.validation["severity"] == "critical"
    assert rec.validation["held_episodes"] == 18


@pytest.mark.parametrize("levels", [(None, None), ("x", 1.0), (5.0, 4.0), (1.0,)])
def test_bad_levels_name_the_field(levels):
    with pytest.raises(ValidationError) as exc:
        recommend(_spiky(), levels=levels, exclude_outages=False)
    assert exc.value.path.startswith("levels") or exc.value.path.endswith("warning")
