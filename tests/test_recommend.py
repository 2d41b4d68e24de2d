"""Suggested levels fit on the early history (labelled incidents left out) and checked on the held-out
later history: percentiles, rates and errors worked out by hand on a constructed series.

The main series: hourly points for exactly two weeks (hours 0..336, 337 points), holdout 0.25, so the
split is at hour 252 (fit: hours 0..251, held out: 252..336 = 84 h = half a week).

* fit period: an incident at hours 100..150 (51 points at 1000); the other 201 fit points are 0..200
  in time order (hours 0..99 -> 0..99, hours 151..251 -> 100..200). Linear-interpolated quantiles of
  0..200: p99 at position 198 -> 198; p99.9 at position 199.8 -> 199.8.
* rule ``> 198`` (warning) / ``> 199.8`` (critical), for 0: in the fit period it fires on the incident
  (100..150) and at hours 250..251 (values 199, 200): 2 episodes in 1.5 weeks = 4/3 per week, 53 hours
  in alert of 252 = 21.03 %.
* held out: 0 everywhere except 300 at hours 260, 270, 280: 3 episodes in half a week = 6 per week,
  3 h of 84 = 3.571 % in alert.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.alerting.recommend import (
    as_rule_dict,
    fit_levels,
    fit_mask,
    poisson_p,
    revise_rationale,
    snap,
    step_decimals,
    suggest_rule,
)
from core.alerting.replay import replay
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
    sug = suggest_rule(s, ">", inc, holdout=0.25, for_s=0)
    assert sug.split == T0 + 252 * H and sug.start == T0 and sug.end == T0 + 336 * H
    assert sug.warning == pytest.approx(198.0) and sug.critical == pytest.approx(199.8)
    assert sug.fit_points == 201 and sug.excluded_points == 51
    # with the incident left in, the outage sets the levels (51 of 252 points at 1000)
    raw = suggest_rule(s, ">", None, holdout=0.25, for_s=0)
    assert raw.warning == 1000.0 and raw.critical is None            # p99.9 = p99 = 1000: warning only
    assert raw.excluded_points == 0 and raw.fit_points == 252
    # held-out values never reach the fit: the 300s after the split do not move the levels
    s2 = s.copy()
    s2.iloc[300:] = 10_000.0
    assert suggest_rule(s2, ">", inc, holdout=0.25, for_s=0).warning == pytest.approx(198.0)


def test_predicted_and_held_out_rates_by_hand():
    s, inc = series()
    sug = suggest_rule(s, ">", inc, holdout=0.25, for_s=0)
    f, h = sug.fit_rate, sug.holdout_rate
    assert f["episodes"] == 2 and f["episodes_per_week"] == pytest.approx(4 / 3)
    assert f["time_in_alert_s"] == 53 * 3600.0 and f["time_in_alert_pct"] == pytest.approx(100 * 53 / 252)
    assert h["episodes"] == 3 and h["episodes_per_week"] == pytest.approx(6.0)
    assert h["span_s"] == 84 * 3600.0 and h["time_in_alert_pct"] == pytest.approx(100 * 3 / 84)
    # 4/3 per week over half a week expects 2/3 of an episode, but 3 were measured: max(2/3, 3) reaches
    # the bar of 3, so the check gives an error: held-out minus predicted
    assert sug.expected_holdout_episodes == pytest.approx(2 / 3)
    assert sug.sufficient
    assert sug.error["episodes_per_week"] == pytest.approx(6 - 4 / 3)
    assert sug.error["episodes_per_week_rel"] == pytest.approx((6 - 4 / 3) / (4 / 3))      # +350 %
    assert sug.error["time_in_alert_pp"] == pytest.approx(100 * 3 / 84 - 100 * 53 / 252)
    # Poisson(2/3): P(X >= 3) = 1 - e^(-2/3) (1 + 2/3 + 2/9) = 0.030212; two-sided: twice that
    tail = 1 - np.exp(-2 / 3) * (1 + 2 / 3 + 2 / 9)
    assert tail == pytest.approx(0.030212, abs=1e-6)
    assert sug.error["p_value"] == pytest.approx(2 * tail)
    assert sug.rows()["error"].iloc[0] == "+4.67 (+350%)"
    assert sug.rows()["held-out (measured)"].tolist() == ["6.00", "3.571", "3", "3.5 days"]
    # a bar of 4: neither the 2/3 expected nor the 3 measured reach it; insufficient, measured rate still said
    thin = suggest_rule(s, ">", inc, holdout=0.25, for_s=0, min_expected_episodes=4)
    assert not thin.sufficient and thin.error is None
    assert "would expect 0.7 episode(s) and it had 3; a check needs at least 4 either way" in thin.note
    assert "measured 6.00 (3 episode(s), 3.57% in alert)" in thin.note
    assert (thin.rows()["error"].iloc[:2] == "insufficient").all()
    assert thin.rows()["held-out (measured)"].iloc[0] == "6.00"


def test_prediction_of_zero_refuted_by_a_busy_holdout_is_checked_not_insufficient():
    """Review case: the fit predicts no alerts, the held-out data fires constantly. Hourly points for 14
    days (hours 0..336), holdout 0.3: split at hour 235.2. Fit (hours 0..235) = hour % 10, so p99 =
    p99.9 = 9: warning > 9 only, which never fires there (predicted 0). Held out: 20 at even hours,
    0 at odd ones: 51 one-hour episodes (hours 236, 238 .. 336) in 100.8 h = 0.6 weeks = 85 per week;
    firing 50 evaluations (the last one, hour 336, has no duration) of 100.8 h = 49.603 %."""
    v = np.r_[np.arange(236) % 10, np.where(np.arange(236, 337) % 2 == 0, 20.0, 0.0)].astype(float)
    s = pd.Series(v, index=pd.date_range(T0, periods=337, freq="1h", tz="UTC"), name="x")
    sug = suggest_rule(s, ">", None, holdout=0.3, for_s=0)
    assert sug.split == T0 + pd.Timedelta(hours=235.2)
    assert (sug.warning, sug.critical) == (9.0, None)
    assert sug.fit_rate["episodes"] == 0 and sug.fit_rate["time_in_alert_s"] == 0.0
    assert sug.expected_holdout_episodes == 0.0
    h = sug.holdout_rate
    assert h["episodes"] == 51 and h["episodes_per_week"] == pytest.approx(85.0)
    assert h["time_in_alert_pct"] == pytest.approx(100 * 50 / 100.8)
    assert sug.sufficient
    assert sug.error["episodes_per_week"] == pytest.approx(85.0) and sug.error["episodes_per_week_rel"] is None
    assert sug.error["time_in_alert_pp"] == pytest.approx(100 * 50 / 100.8)
    assert sug.error["p_value"] == 0.0
    assert "measured 85.00 (51 episode(s), 49.60% in alert)" in sug.note
    assert "51 episodes where 0.0 were expected (Poisson p = 0)" in sug.note
    assert sug.rows()["error"].tolist()[:2] == ["+85.00", "+49.603 pp"]
    d = as_rule_dict(sug, "XHigh", "x")
    assert d["annotations"]["rationale"].endswith("Held-out check: predicted 0.00 episodes/week, measured 85.00.")


def test_poisson_p_by_hand():
    assert poisson_p(0, 0.0) == 1.0 and poisson_p(1, 0.0) == 0.0
    # Poisson(2): P(X <= 0) = e^-2 = 0.135335; two-sided 0.270671
    assert poisson_p(0, 2.0) == pytest.approx(2 * np.exp(-2))
    # observed == expected == 1: P(X <= 1) = 2/e > 1/2 and P(X >= 1) = 1 - 1/e > 1/2: capped at 1
    assert poisson_p(1, 1.0) == 1.0


def test_periods_add_up_to_the_whole_replay():
    s, inc = series()
    sug = suggest_rule(s, ">", inc, holdout=0.25, for_s=0)
    whole = replay(sug.rule(series="lat"), s).summary()
    assert sug.fit_rate["episodes"] + sug.holdout_rate["episodes"] == whole["episodes"] == 5
    assert sug.fit_rate["time_in_alert_s"] + sug.holdout_rate["time_in_alert_s"] == whole["time_in_alert_s"]
    assert sug.fit_rate["span_s"] + sug.holdout_rate["span_s"] == whole["span_s"]


def test_pending_period_is_replayed_too():
    s, inc = series()
    # for 2h: the incident run (51 h) still fires (at hour 102); 250..251 (2 h) and single spikes do not
    sug = suggest_rule(s, ">", inc, holdout=0.25, for_s="2h")
    assert sug.fit_rate["episodes"] == 1 and sug.fit_rate["time_in_alert_s"] == 49 * 3600.0
    assert sug.holdout_rate["episodes"] == 0


def test_short_holdout_is_insufficient():
    s, inc = series()
    short = s.iloc[:73]                       # 72 hours: held out 21.6 h
    sug = suggest_rule(short, ">", None, holdout=0.3, for_s=0)
    assert not sug.sufficient and sug.error is None
    assert "covers only 21h36m; a check needs at least 2d" in sug.note


def test_step_rounding_and_critical_beyond_warning():
    s, inc = series()
    sug = suggest_rule(s, ">", inc, holdout=0.25, for_s=0, step=5)
    # 198 -> 200 and 199.8 -> 200 meet: critical goes one step beyond
    assert (sug.warning, sug.critical) == (200.0, 205.0)
    # ties without a step: warning only, said in the notes
    flat = pd.Series(np.r_[np.zeros(200), [1.0, 1.0, 1.0]], index=pd.date_range(T0, periods=203, freq="1h"))
    one = suggest_rule(flat, ">", None, for_s=0)
    assert one.warning == 0.0 and one.critical is None and "only a warning level" in one.note


def test_lower_tail_for_less_than():
    s, inc = series()
    sug = suggest_rule(s, "<", inc, holdout=0.25, for_s=0)
    # p1 of 0..200 at position 2 -> 2; p0.1 at position 0.2 -> 0.2
    assert sug.warning == pytest.approx(2.0) and sug.critical == pytest.approx(0.2)
    assert sug.quantiles == (0.01, 0.001)


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
        suggest_rule(s, ">", inc, holdout=1.0)
    with pytest.raises(ValidationError, match="comparator"):
        suggest_rule(s, "!=", inc)
    nan = s.copy()
    nan.iloc[:260] = np.nan
    with pytest.raises(InsufficientDataError, match="only 0 finite point"):
        suggest_rule(nan, ">", None)
    with pytest.raises(InsufficientDataError):
        suggest_rule(s.iloc[:1], ">", None)
    # few fit points: the critical percentile is flagged as rough (201 points < 1000)
    assert "needs at least 1,000" in suggest_rule(s, ">", inc, holdout=0.25).note


def test_rule_dict_is_a_valid_rule_with_a_rationale():
    s, inc = series()
    sug = suggest_rule(s, ">", inc, holdout=0.25, for_s="5m")
    d = as_rule_dict(sug, "LatHigh", "lat", {"unit": "ms"})
    r = Rule.from_dict(d)
    assert (r.warning, r.critical, r.for_s, r.unit) == (sug.warning, sug.critical, 300.0, "ms")
    assert "first 75% of the history" in d["annotations"]["rationale"]
    assert "Held-out check insufficient" in d["annotations"]["rationale"]


def test_fit_levels_is_the_suggestion_without_the_replay():
    s, inc = series()
    fl = fit_levels(s, ">", inc, holdout=0.25)
    assert (fl.warning, fl.critical) == (pytest.approx(198.0), pytest.approx(199.8))
    assert (fl.fit_points, fl.excluded_points, fl.split) == (201, 51, T0 + 252 * H)
    stepped = fit_levels(s, ">", inc, holdout=0.25, step=5)
    assert (stepped.warning, stepped.critical) == (200.0, 205.0)
    assert step_decimals(0.2) == 1 and step_decimals(5.0) == 0 and step_decimals(0.002) == 3
    assert snap(0.1 + 0.2, 0.1) == 0.3 and snap(198.0, 5.0) == 200.0 and snap(-0.26, 0.5) == -0.5


def test_revise_rationale_rewrites_only_the_suggestion_text():
    s, inc = series()
    d = as_rule_dict(suggest_rule(s, ">", inc, holdout=0.25, for_s=0), "LatHigh", "lat")
    assert revise_rationale(d, d) == d["annotations"]                       # unchanged rule: kept
    moved = revise_rationale(d, {**d, "warning": 150.0})
    assert moved["rationale"].startswith("Set by hand, starting from a suggestion (>; warning 198, "
                                         "critical 199.8; for 0s)")
    # a rationale a person wrote is theirs: kept whatever the edit
    human = {**d, "annotations": {"rationale": "SLO is 250 ms"}}
    assert revise_rationale(human, {**human, "warning": 150.0}) == {"rationale": "SLO is 250 ms"}
