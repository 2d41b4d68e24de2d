"""Per-candidate outcomes on the held-out period (core.alerting.recommend.outcomes), known answers.

The spiky series of tests/test_recommend_levels.py: 30 days at 5 minutes, one-hour spikes to 10
daily at 12:00 for the first 21 days and at 06:00 and 18:00 afterwards. A warning at 5 with ``for``
5 minutes fires at 5 past each held-out spike and stays firing through its last point (11
evaluations of 300 s = 3300 s): 18 episodes, 18 x 3300 s in alert over the held-out span. Four of
the held-out spikes are labelled incidents (start to 55 minutes later): all caught, each 300 s after
it began; the Clopper-Pearson 90 % interval of 4 of 4 is [0.05^(1/4), 1], so caught is 4 in
[4 x 0.4729, 4] and missed 0 in [0, 4 x 0.5271].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.alerting.recommend.engine import recommend
from core.alerting.recommend.outcomes import OUTCOME_COLUMNS, candidate_outcomes
from core.errors import ValidationError
from tests.test_recommend_levels import WEEK, _spiky


def test_outcomes_by_hand():
    s = _spiky()
    idx = s.index
    starts = idx[(idx >= idx[0] + pd.Timedelta(days=22)) & (idx.minute == 0) & ((idx.hour == 6) | (idx.hour == 18))][:4]
    inc = pd.DataFrame({"series": ["lat"] * 4, "start": starts, "end": starts + pd.Timedelta("55min")})
    rec = recommend(s, levels=(5.0, 20.0), incidents=inc, exclude_outages=False).to_dict()
    rec["current"] = {"warning": 9.5, "critical": None, "for_seconds": 0.0}      # as a fleet result carries it
    out = candidate_outcomes(s, rec, inc)
    assert list(out.columns) == OUTCOME_COLUMNS
    assert out["rule"].tolist() == ["in force", "recommended", "given"]
    held_s = 0.3 * (idx[-1] - idx[0]).total_seconds()
    r = out.set_index("rule").loc["recommended"]
    assert r["episodes_per_week"] == pytest.approx(18 / (held_s / WEEK))
    assert r["episodes_low"] < r["episodes_per_week"] < r["episodes_high"]
    assert r["time_in_alert_pct"] == pytest.approx(100 * 18 * 3300 / held_s)
    assert r["time_in_alert_low"] <= r["time_in_alert_pct"] <= r["time_in_alert_high"]
    assert (r["incidents"], r["caught"], r["missed"]) == (4, 4, 0)
    assert r["caught_low"] == pytest.approx(4 * 0.05 ** 0.25) and r["caught_high"] == 4.0
    assert r["missed_low"] == 0.0 and r["missed_high"] == pytest.approx(4 * (1 - 0.05 ** 0.25))
    assert (r["delay_s"], r["delay_low"], r["delay_high"]) == (300.0, 300.0, 300.0)
    assert np.isfinite(r["reset_s"]) and r["reset_low"] == r["reset_high"] == r["reset_s"]
    # the rule in force (9.5, no for) fires on every spike too, from its first point: delay 0
    cur = out.set_index("rule").loc["in force"]
    assert (cur["caught"], cur["delay_s"]) == (4, 0.0)
    assert cur["time_in_alert_pct"] == pytest.approx(100 * 18 * 3600 / held_s)
    # same inputs, same rows (fixed seed)
    pd.testing.assert_frame_equal(out, candidate_outcomes(s, rec, inc))


def test_without_incidents_or_a_recommendation():
    s = _spiky()
    rec = recommend(s, levels=(5.0, None), exclude_outages=False).to_dict()
    out = candidate_outcomes(s, rec, None)
    assert out["incidents"].tolist() == [0, 0] and out["caught"].isna().all()
    assert out["note"].str.contains("no labelled incident in the held-out period").all()
    short = recommend(s.iloc[: 6 * 288], levels=(5.0, None), exclude_outages=False).to_dict()
    note = candidate_outcomes(s.iloc[: 6 * 288], short, None)["note"].iloc[0]
    assert "time-in-alert interval needs at least 6 held-out days (2)" in note
    with pytest.raises(ValidationError, match="no recommendation for x"):
        candidate_outcomes(s, {"series": "x", "insufficient": "constant"}, None)
