"""Default levels fit on the early history (labelled incidents left out), and a recommendation turned
into a new rule: percentiles worked out by hand on a constructed series.

The main series: hourly points for exactly two weeks (hours 0..336, 337 points), holdout 0.25, so the
split is at hour 252 (fit: hours 0..251, held out: 252..336 = 84 h = half a week).

* fit period: an incident at hours 100..150 (51 points at 1000); the other 201 fit points are 0..200
  in time order (hours 0..99 -> 0..99, hours 151..251 -> 100..200). Linear-interpolated quantiles of
  0..200: p99 at position 198 -> 198; p99.9 at position 199.8 -> 199.8.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.alerting.recommend import (
    SUGGESTED_PREFIX,
    as_rule_dict,
    fit_levels,
    fit_mask,
    recommend,
    revise_rationale,
    snap,
    step_decimals,
)
from core.alerting.rules import Rule
from core.errors import InsufficientDataError, ValidationError

T0 = pd.Timestamp("2026-03-02", tz="UTC")
H = pd.Timedelta("1h")


def series() -> tuple[pd.Series, pd.DataFrame]:
    v = np.zeros(337)
    v[0:100] = np.arange(100)
    v[100:151] = 1000.0
    v[151:252] = np.arange(100, 201)
    v[[260, 270, 280]] = 300.0
    s = pd.Series(v, index=pd.date_range(T0, periods=337, freq="1h", tz="UTC"), name="lat")
    inc = pd.DataFrame({"start": [T0 + 100 * H], "end": [T0 + 150 * H]})
    return s, inc


def test_levels_come_from_the_fit_period_without_incidents():
    s, inc = series()
    fl = fit_levels(s, ">", inc, holdout=0.25)
    assert fl.split == T0 + 252 * H and fl.start == T0 and fl.end == T0 + 336 * H
    assert fl.warning == pytest.approx(198.0) and fl.critical == pytest.approx(199.8)
    assert fl.fit_points == 201 and fl.excluded_points == 51
    # with the incident left in, the outage sets the levels (51 of 252 points at 1000)
    raw = fit_levels(s, ">", None, holdout=0.25)
    assert raw.warning == 1000.0 and raw.critical is None            # p99.9 = p99 = 1000: warning only
    assert raw.excluded_points == 0 and raw.fit_points == 252
    # held-out values never reach the fit: the 300s after the split do not move the levels
    s2 = s.copy()
    s2.iloc[300:] = 10_000.0
    assert fit_levels(s2, ">", inc, holdout=0.25).warning == pytest.approx(198.0)


def test_step_rounding_and_critical_beyond_warning():
    s, inc = series()
    # 198 -> 200 and 199.8 -> 200 meet: critical goes one step beyond
    assert (lambda f: (f.warning, f.critical))(fit_levels(s, ">", inc, holdout=0.25, step=5)) == (200.0, 205.0)
    # ties without a step: warning only, said in the notes
    flat = pd.Series(np.r_[np.zeros(200), [1.0, 1.0, 1.0]], index=pd.date_range(T0, periods=203, freq="1h"))
    one = fit_levels(flat, ">", None)
    assert one.warning == 0.0 and one.critical is None and "only a warning level" in " ".join(one.notes)


def test_lower_tail_for_less_than():
    s, inc = series()
    fl = fit_levels(s, "<", inc, holdout=0.25)
    # p1 of 0..200 at position 2 -> 2; p0.1 at position 0.2 -> 0.2
    assert fl.warning == pytest.approx(2.0) and fl.critical == pytest.approx(0.2)
    assert fl.quantiles == (0.01, 0.001)


def test_open_incident_excludes_to_the_end_and_fit_mask():
    idx = pd.date_range(T0, periods=6, freq="1h", tz="UTC")
    inc = pd.DataFrame({"start": [T0 + H, T0 + 4 * H], "end": [T0 + 2 * H, pd.NaT]})
    assert fit_mask(idx, inc).tolist() == [True, False, False, True, False, False]
    assert fit_mask(idx, None).all()
    with pytest.raises(ValidationError, match="start"):
        fit_mask(idx, pd.DataFrame({"end": [T0]}))


def test_thin_or_bad_input():
    s, inc = series()
    with pytest.raises(ValidationError, match="holdout"):
        fit_levels(s, ">", inc, holdout=1.0)
    with pytest.raises(ValidationError, match="comparator"):
        fit_levels(s, "!=", inc)
    nan = s.copy()
    nan.iloc[:260] = np.nan
    with pytest.raises(InsufficientDataError, match="only 0 finite point"):
        fit_levels(nan, ">", None)
    with pytest.raises(InsufficientDataError):
        fit_levels(s.iloc[:1], ">", None)
    # few fit points: the critical percentile is flagged as rough (201 points < 1000)
    assert "needs at least 1,000" in " ".join(fit_levels(s, ">", inc, holdout=0.25).notes)


def _recommendation():
    """A 3-week 5-minute series with noise and hourly-long spikes: the engine recommends levels."""
    rng = np.random.default_rng(3)
    idx = pd.date_range(T0, periods=21 * 288, freq="5min")
    v = rng.normal(100.0, 5.0, idx.size)
    v[np.asarray((idx.hour == 3) & (idx.day_of_week == 2))] = 200.0
    return recommend(pd.Series(v, index=idx, name="lat"), exclude_outages=False)


def test_rule_dict_from_a_recommendation_is_a_valid_rule_with_a_rationale():
    rec = _recommendation()
    assert rec.insufficient is None and rec.warning is not None
    d = as_rule_dict(rec, "LatHigh", "lat", extra={"unit": "ms"})
    r = Rule.from_dict(d)
    assert (r.warning, r.critical, r.for_s, r.unit, r.missing) == (rec.warning, rec.critical, rec.for_s, "ms", "nodata")
    why = d["annotations"]["rationale"]
    assert why.startswith(SUGGESTED_PREFIX + "the balanced recommendation (" + rec.strategy)
    assert f"predicted {rec.predicted_episodes_per_week:.2f} (90% interval" in why and f"risk {rec.risk}" in why
    # on a slider grid: snapped, critical kept one step beyond warning
    g = as_rule_dict(rec, "LatHigh", "lat", step=50.0)
    assert g["warning"] == snap(rec.warning, 50.0) and (g.get("critical") is None or g["critical"] > g["warning"])
    insufficient = recommend(pd.Series(np.ones(500), index=pd.date_range(T0, periods=500, freq="1min"), name="x"))
    with pytest.raises(ValidationError, match="no recommendation for x: the series is constant"):
        as_rule_dict(insufficient, "X", "x")


def test_fit_levels_snap_and_decimals():
    s, inc = series()
    stepped = fit_levels(s, ">", inc, holdout=0.25, step=5)
    assert (stepped.warning, stepped.critical) == (200.0, 205.0)
    assert step_decimals(0.2) == 1 and step_decimals(5.0) == 0 and step_decimals(0.002) == 3
    assert snap(0.1 + 0.2, 0.1) == 0.3 and snap(198.0, 5.0) == 200.0 and snap(-0.26, 0.5) == -0.5


def test_revise_rationale_rewrites_only_the_suggestion_text():
    d = {"name": "LatHigh", "series": "lat", "comparator": ">", "warning": 198.0, "critical": 199.8, "for": "0s",
         "annotations": {"rationale": SUGGESTED_PREFIX + "the balanced recommendation (percentile ...)."}}
    assert revise_rationale(d, d) == d["annotations"]                       # unchanged rule: kept
    moved = revise_rationale(d, {**d, "warning": 150.0})
    assert moved["rationale"].startswith("Set by hand, starting from a suggestion (>; warning 198, "
                                         "critical 199.8; for 0s)")
    # a rationale a person wrote is theirs: kept whatever the edit
    human = {**d, "annotations": {"rationale": "SLO is 250 ms"}}
    assert revise_rationale(human, {**human, "warning": 150.0}) == {"rationale": "SLO is 250 ms"}
