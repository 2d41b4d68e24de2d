"""Alarm post-processing (core.analysis.detect.alarms): refractory merging, rate calibration, causality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.analysis.detect import AlarmRule, alarm_ids, alarm_starts, alarm_table, run_detection
from core.errors import ValidationError


def _ts(n, freq="1h"):
    return pd.date_range("2026-01-01", periods=n, freq=freq, tz="UTC")


def test_refractory_merges_repeats_and_ids_cover_the_span():
    score = np.array([0, 1, 1, 1, 0, 1, 0, np.nan, 1, 1], dtype=float)
    ids = alarm_ids(_ts(10), score, AlarmRule(0.5, 3 * 3600))
    # alarm 1 opens at 1 h and covers [1 h, 4 h); alarm 2 opens at 5 h covering 5-7 h; 8 h opens alarm 3
    assert ids.tolist() == [0, 1, 1, 1, 0, 2, 2, 2, 3, 3]
    assert np.flatnonzero(alarm_starts(ids)).tolist() == [1, 5, 8]
    assert alarm_ids(_ts(10), score, AlarmRule(0.5, 0)).tolist() == [0, 1, 2, 3, 0, 4, 0, 0, 5, 6]
    tab = alarm_table(_ts(10), ids)
    assert tab["points"].tolist() == [3, 3, 2] and tab["start"].iloc[1] == _ts(10)[5]


def test_false_alarm_rate_sets_the_threshold_from_the_step():
    rule = AlarmRule(refractory_s=0, false_alarms_per_week=2.0)
    assert rule.threshold_for(300.0) == pytest.approx(1 - 2 * 300 / 604800)      # 5-min data
    assert rule.threshold_for(3600.0) == pytest.approx(1 - 2 / 168)              # hourly data
    # uniform scores (a calibrated detector on normal data): about 2 over-threshold points per week
    rng = np.random.default_rng(0)
    ts = _ts(2016 * 50, "5min")
    n_alarms = alarm_ids(ts, rng.uniform(size=ts.size), rule).max()
    assert 70 <= n_alarms <= 130                  # 100 expected over 50 weeks
    with pytest.raises(ValidationError):
        AlarmRule(false_alarms_per_week=0)
    with pytest.raises(ValidationError):
        AlarmRule(threshold=1.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=2, max_size=80), st.integers(1, 79), st.floats(0, 20000))
def test_alarms_are_causal(scores, cut, refractory):
    """Appending future points never changes earlier alarm ids or alerts."""
    cut = min(cut, len(scores) - 1)
    ts = _ts(len(scores), "17min")
    rule = AlarmRule(0.7, refractory)
    full = alarm_ids(ts, np.array(scores), rule, step_s=1020)
    part = alarm_ids(ts[:cut], np.array(scores[:cut]), rule, step_s=1020)
    assert full[:cut].tolist() == part.tolist()


def test_detection_scores_and_alerts_are_causal():
    rng = np.random.default_rng(5)
    ts = _ts(6000, "5min")
    v = 50 + 10 * np.sin(np.arange(ts.size) * 2 * np.pi / 288) + rng.normal(0, 1, ts.size)
    v[5000:5010] += 40
    s = pd.Series(v, index=ts)
    full = run_detection(s)
    part = run_detection(s.iloc[:5100].copy())
    # same training window (750 points) for both lengths: earlier outputs unchanged
    assert full.train == part.train == 750
    np.testing.assert_allclose(full.score[:5100], part.score, equal_nan=True)
    assert (full.alarm_id[:5100] == part.alarm_id).all()
    assert full.alert[5000:5010].any()
