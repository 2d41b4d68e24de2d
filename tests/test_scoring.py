"""Scorers on hand-built cases; every expected number is worked out in the comments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.analysis.scoring import (
    nab_file_score,
    nab_probation,
    nab_score,
    nab_sigmoid,
    normalised,
    score_events,
)
from core.errors import ValidationError


def _ep(*pairs):
    return pd.DataFrame(pairs, columns=["start", "end"])


# ----------------------------------------------------------------------------- score_events
INCIDENTS = _ep((100, 200), (400, 500), (800, 900))


def test_score_events_hand_case():
    # alerts: [110,120] and [150,160] overlap incident 1 (the second is a duplicate); [430,520] overlaps
    # incident 2; [300,350] and [1000,1100] overlap nothing; [370,380] is 20 s before incident 2 (FP at
    # early_s=0). Incident 3 [800,900] is missed.
    alerts = _ep((110, 120), (150, 160), (300, 350), (370, 380), (430, 520), (1000, 1100))
    r = score_events(alerts, INCIDENTS)
    # tp = caught incidents = 2; fp = 3 episodes overlapping nothing; 1 duplicate; 2 + 3 + 1 = 6 episodes
    assert (r.tp, r.fp, r.fn, r.caught, r.duplicates, r.n_alerts) == (2, 3, 1, 2, 1, 6)
    assert r.precision == pytest.approx(2 / 5)
    assert r.recall == pytest.approx(2 / 3)
    # F1 = 2 * (2/5) * (2/3) / (2/5 + 2/3) = (8/15) / (16/15) = 1/2
    assert r.f1 == pytest.approx(1 / 2)
    # delays: incident 1 first alert 110 -> +10 s; incident 2 first alert 430 -> +30 s; median 20
    assert r.detection_delay_s == pytest.approx(20.0)
    # resets: incident 1 last matching end 160 - 200 = -40; incident 2: 520 - 500 = +20; median -10
    assert r.reset_time_s == pytest.approx(-10.0)
    assert not r.insufficient
    assert r.false_alarms_per_week is None                   # no span given
    per = r.per_incident
    assert list(per.columns) == ["start", "end", "caught", "first_alert", "delay_s", "reset_s", "episodes"]
    assert per["caught"].tolist() == [True, True, False]
    assert per["first_alert"].iloc[:2].tolist() == [110, 430]
    assert per["episodes"].tolist() == [2, 1, 0]
    assert np.isnan(per["delay_s"].iloc[2])


def test_score_events_flapping_does_not_buy_precision():
    # one incident [0, 1000] and one false alarm at [5000, 5010]
    inc = _ep((0, 1000))
    false_alarm = [(5000, 5010)]
    clean = score_events(_ep((10, 900), *false_alarm), inc)
    # ten 10 s flaps inside the incident: [10,20], [110,120], ..., [910,920]
    flappy = score_events(_ep(*[(10 + 100 * k, 20 + 100 * k) for k in range(10)], *false_alarm), inc)
    # both: 1 caught incident, 1 false alarm -> precision 1 / (1 + 1) = 0.5 (the old per-episode rule
    # gave the flappy one 10 / 11 = 0.91); recall 1, F1 = 2 * 0.5 / 1.5 = 2/3
    for r in (clean, flappy):
        assert (r.tp, r.fp, r.caught) == (1, 1, 1)
        assert r.precision == 0.5 and r.recall == 1.0 and r.f1 == pytest.approx(2 / 3)
    assert (clean.duplicates, flappy.duplicates) == (0, 9)
    assert flappy.per_incident["episodes"].tolist() == [10]
    # delay is still from the first flap (+10 s); reset from the last one's end: 920 - 1000 = -80 s
    assert flappy.detection_delay_s == 10.0 and flappy.reset_time_s == -80.0
    # a second false alarm lowers precision to 1/3 however much the rule flaps
    worse = score_events(_ep(*[(10 + 100 * k, 20 + 100 * k) for k in range(10)], *false_alarm, (6000, 6001)), inc)
    assert worse.precision == pytest.approx(1 / 3) and worse.fp == 2


def test_score_events_one_episode_spanning_incidents_catches_each():
    # [50, 450] overlaps incidents 1 and 2: both caught (tp 2), it is the first alert of both (no
    # duplicate); [820, 830] catches incident 3; [860, 870] repeats it (duplicate); no false alarm
    r = score_events(_ep((50, 450), (820, 830), (860, 870)), INCIDENTS)
    assert (r.tp, r.fp, r.fn, r.duplicates) == (3, 0, 0, 1)
    assert r.precision == 1.0 and r.recall == 1.0


def test_score_events_false_alarms_per_week():
    # 3 false alarms (as in the hand case) over 14 days -> 1.5 per week
    alerts = _ep((110, 120), (150, 160), (300, 350), (370, 380), (430, 520), (1000, 1100))
    assert score_events(alerts, INCIDENTS, span_s=14 * 86400).false_alarms_per_week == pytest.approx(1.5)
    # over 1 day the rate extrapolates to 21 per week
    assert score_events(alerts, INCIDENTS, span_s=86400).false_alarms_per_week == pytest.approx(21.0)
    assert score_events(alerts, INCIDENTS, span_s=0).false_alarms_per_week is None
    assert score_events(_ep(), INCIDENTS, span_s=86400).false_alarms_per_week == 0.0
    # no incident labelled: false alarms cannot be told apart, so no rate
    assert score_events(alerts, _ep(), span_s=86400).false_alarms_per_week is None
    with pytest.raises(ValidationError, match="span_s"):
        score_events(alerts, INCIDENTS, span_s=-1)
    d = score_events(alerts, INCIDENTS, span_s=14 * 86400).to_dict()
    assert (d["duplicates"], d["false_alarms_per_week"], d["tp"]) == (1, pytest.approx(1.5), 2)


def test_event_rates_vectorised_matches_definition():
    from core.analysis.scoring import event_rates

    # columns: (caught, fp, incidents) -> precision, recall
    r = event_rates([2, 0, 0, 1, 0], [3, 0, 4, 0, 2], [3, 3, 3, 1, 0])
    np.testing.assert_allclose(r["precision"], [2 / 5, np.nan, 0.0, 1.0, np.nan])
    np.testing.assert_allclose(r["recall"], [2 / 3, 0.0, 0.0, 1.0, np.nan])
    np.testing.assert_allclose(r["f1"], [1 / 2, np.nan, 0.0, 1.0, np.nan])


def test_score_events_early_grace_turns_fp_into_tp():
    alerts = _ep((370, 380))
    assert score_events(alerts, INCIDENTS).tp == 0
    # with 60 s grace incident 2 effectively starts at 340, so [370,380] overlaps it: delay 370-400 = -30
    r = score_events(alerts, INCIDENTS, early_s=60)
    assert (r.tp, r.fp, r.caught, r.duplicates) == (1, 0, 1, 0)
    assert r.detection_delay_s == pytest.approx(-30.0)
    assert r.precision == 1.0 and r.recall == pytest.approx(1 / 3)


def test_score_events_boundaries_inclusive_and_timestamps():
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    inc = pd.DataFrame({"start": [t0], "end": [t0 + pd.Timedelta(minutes=10)]})
    # alert ending exactly at the incident start overlaps (inclusive): delay -5 min, reset -10 min
    al = pd.DataFrame({"start": [t0 - pd.Timedelta(minutes=5)], "end": [t0]})
    r = score_events(al, inc)
    assert r.tp == 1 and r.detection_delay_s == -300.0 and r.reset_time_s == -600.0
    assert r.per_incident["first_alert"].iloc[0] == t0 - pd.Timedelta(minutes=5)


def test_score_events_still_firing_alert_is_open_ended():
    r = score_events(_ep((850, np.nan)), INCIDENTS)
    assert r.tp == 1 and r.caught == 1 and r.detection_delay_s == 50.0
    assert r.reset_time_s is None            # the alert has not ended: no reset time to report


def test_score_events_insufficient_cases():
    r = score_events(_ep((1, 2)), _ep())
    assert r.insufficient and r.precision is None and r.recall is None and r.f1 is None
    assert "no incidents" in r.note and r.fp == 1
    r = score_events(_ep(), INCIDENTS)
    assert r.insufficient and r.precision is None and r.recall == 0.0 and r.fn == 3
    assert "no alert fired" in r.note


def test_score_events_rejects_bad_input():
    with pytest.raises(ValidationError, match="ends before it starts"):
        score_events(_ep((10, 5)), INCIDENTS)
    with pytest.raises(ValidationError, match="start, end"):
        score_events(pd.DataFrame({"begin": [1]}), INCIDENTS)


# ----------------------------------------------------------------------------- NAB
TS = pd.date_range("2026-01-01", periods=100, freq="1min", tz="UTC")
WIN = [(TS[40], TS[49]), (TS[70], TS[79])]          # widths 10 and 10 rows


def _det(*rows):
    d = np.zeros(100, dtype=bool)
    d[list(rows)] = True
    return d


def test_nab_sigmoid_and_probation():
    assert nab_sigmoid(0.0) == 0.0
    # s(-1) = 2 / (1 + e^-5) - 1 = 2 / 1.0067379 - 1 = 0.9866143
    assert float(nab_sigmoid(-1.0)) == pytest.approx(0.9866143, abs=1e-7)
    assert nab_probation(100) == 15 and nab_probation(4032) == 604 and nab_probation(15903) == 750


def test_nab_file_score_hand_case():
    # rows: 10 (probation, ignored), 30 (FP, no earlier window: -0.11),
    # 45 (TP in window 1), 47 (later TP in the same window, ignored), 60 (FP after window 1).
    r = nab_file_score(TS, _det(10, 30, 45, 47, 60), WIN)
    # TP: p = -(49 - 45 + 1) / 10 = -0.5; s(-0.5) = 2/(1+e^-2.5) - 1 = 0.8482836; / s(-1) = 0.8597926
    tp = (2 / (1 + math.exp(-2.5)) - 1) / (2 / (1 + math.exp(-5)) - 1)
    assert tp == pytest.approx(0.8597926, abs=1e-6)
    # FP at 60: q = (60 - 49) / (10 - 1) = 1.2222; s = 2/(1+e^6.1111) - 1 = -0.9955714; x 0.11
    fp60 = 0.11 * (2 / (1 + math.exp(5 * 11 / 9)) - 1)
    assert fp60 == pytest.approx(-0.1095129, abs=1e-6)
    # window 2 missed: -1.  raw = 0.8597926 - 0.11 - 0.1095129 - 1 = -0.3597203
    assert r.raw == pytest.approx(tp - 0.11 + fp60 - 1.0)
    assert r.raw == pytest.approx(-0.3597203, abs=1e-6)
    assert (r.tp, r.fp, r.fn, r.windows, r.null, r.perfect) == (1, 2, 1, 2, -2.0, 2.0)
    # normalised = 100 * (-0.3597203 + 2) / (2 + 2) = 41.007
    assert normalised(r.raw, r.null, r.perfect) == pytest.approx(41.00699, abs=1e-4)


def test_nab_first_row_earns_exactly_tp_and_profiles():
    # both windows caught on their first row, no FP: the perfect score
    r = nab_file_score(TS, _det(40, 70), WIN)
    assert r.raw == pytest.approx(2.0)
    # reward_low_FN doubles the cost of a miss: catch window 1 at its first row, miss window 2
    r = nab_file_score(TS, _det(40, 95), WIN, profile="reward_low_FN")
    # FP at 95: q = (95 - 79) / 9 = 1.778; s = 2/(1+e^8.889) - 1 = -0.9997247; x 0.11 = -0.1099697
    assert r.raw == pytest.approx(1.0 - 2.0 - 0.1099697, abs=1e-6)
    # FP far after a window (q > 3) costs the full FP weight: reward_low_FP weight 0.22
    r = nab_file_score(TS, _det(40, 70, 99), [WIN[0]], profile="reward_low_FP")
    # detections 70 (q = 21/9 = 2.333, s = -0.99998) and 99 (q = 50/9 > 3, s = -1)
    s70 = 2 / (1 + math.exp(5 * 21 / 9)) - 1
    assert r.raw == pytest.approx(1.0 + 0.22 * s70 - 0.22)


def test_nab_score_sums_files_and_normalises():
    files = {"a.csv": (TS, _det(40, 70)), "b.csv": (TS, _det()), "c.csv": (TS, _det(50))}
    wins = {"a.csv": WIN, "b.csv": WIN}     # c has no window: its detection at 50 is a plain FP
    r = nab_score(files, wins)
    # raw = 2 (a perfect) - 2 (b misses both) - 0.11 (c) = -0.11; null = -4; perfect = 4
    assert r.raw == pytest.approx(-0.11) and r.null == -4 and r.perfect == 4
    assert r.normalised == pytest.approx(100 * (4 - 0.11) / 8)
    assert r.per_file.set_index("name").loc["c.csv", "fp"] == 1
    assert nab_score({"c.csv": (TS, _det(50))}, {}).normalised is None
