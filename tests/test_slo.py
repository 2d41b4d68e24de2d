"""SLOs: error-budget and burn-rate arithmetic against the SRE workbook's worked examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.alerting.prometheus.export import to_prometheus_yaml
from core.alerting.promtool import check_rules, promtool_binary
from core.errors import InsufficientDataError, ValidationError
from core.slo import (
    SLO,
    budget_alerts,
    budget_report,
    burn_pairs,
    burn_rate,
    burn_rules,
    events,
    pair_signal,
    replay_pair,
    slos_from_meta,
    slos_to_meta,
)

T0 = pd.Timestamp("2026-01-01", tz="UTC")
ERR, REQ = 'errors{svc="api"}', 'requests{svc="api"}'


def _ratio(days: float = 30, per_min: float = 1000.0, bad: dict[int, float] | None = None):
    """``days`` of per-minute request counts with zero errors, except minute -> errors in ``bad``."""
    idx = pd.date_range(T0, periods=int(days * 1440), freq="min")
    total = pd.Series(per_min, index=idx)
    errors = pd.Series(0.0, index=idx)
    for i, v in (bad or {}).items():
        errors.iloc[i] = v
    return errors, total


def _slo(**kw) -> SLO:
    base = dict(name="api", series=ERR, total=REQ, sli="ratio", target=0.999, window_days=30)
    return SLO(**{**base, **kw})


def test_workbook_pairs_for_a_30_day_window_and_scaled_for_28_days():
    p30 = burn_pairs(_slo())
    assert [(p.long_s, p.short_s, p.factor) for p in p30] == [
        (3600.0, 300.0, 14.4), (21600.0, 1800.0, 6.0), (259200.0, 21600.0, 1.0)]
    # the same budget shares over 28 days: 2 % in 1 h = 13.44x, 5 % in 6 h = 5.6x, 10 % in 3 d = 0.933x
    p28 = burn_pairs(_slo(window_days=28))
    assert [p.factor for p in p28] == pytest.approx([13.44, 5.6, 0.933333], abs=1e-6)


def test_budget_of_a_999_slo_over_30_days_is_43_2_bad_minutes():
    """Workbook: 99.9 % over 30 days allows 43.2 minutes of bad service."""
    idx = pd.date_range(T0, periods=43200, freq="min")
    v = pd.Series(100.0, index=idx)
    v.iloc[1000:1043] = 900.0            # 43 bad minutes: 43 / 43.2 of the budget
    slo = SLO("lat", "lat", 0.999, comparator=">", threshold=500.0)
    r = budget_report(slo, events(slo, v))
    assert r.events == 43200 and r.bad == 43 and r.allowed_bad == pytest.approx(43.2)
    assert r.consumed == pytest.approx(43 / 43.2) and r.remaining == pytest.approx(0.2 / 43.2)
    assert r.compliance == pytest.approx(1 - 43 / 43200) and r.met is True
    v.iloc[2000:2001] = 900.0            # the 44th bad minute overspends it
    r2 = budget_report(slo, events(slo, v))
    assert r2.consumed == pytest.approx(44 / 43.2) and r2.met is False and r2.remaining < 0


def test_one_hour_at_14_4x_spends_2_percent_of_a_30_day_budget():
    errors, total = _ratio(bad={i: 14.4 for i in range(43200 - 60, 43200)})
    slo = _slo()
    ev = events(slo, errors, total)
    r = budget_report(slo, ev)
    assert r.consumed == pytest.approx(0.02)
    # burn rate over the last hour is 14.4 exactly (not above: the pair does not fire at equality)
    assert burn_rate(slo, ev, 3600.0).iloc[-1] == pytest.approx(14.4)
    assert budget_alerts(slo, ev) == []


def test_detection_time_matches_the_workbook_formula():
    """Workbook: time to detect = (1 - SLO) / error ratio x long window x burn factor. At an error ratio
    of 1.5 % (15x) the 1 h / 14.4x pair needs 0.001 / 0.015 x 60 min x 14.4 = 57.6 min: it fires at the
    58th bad minute, once."""
    start = 20000
    errors, total = _ratio(days=20, bad={i: 15.0 for i in range(start, start + 300)})
    slo = _slo()
    ev = events(slo, errors, total)
    p1, p6, p3d = burn_pairs(slo)
    sig = pair_signal(slo, ev, p1)
    first = np.flatnonzero((sig > p1.factor).to_numpy())[0]
    assert first - start + 1 == 58
    rp = replay_pair(slo, ev, p1)
    assert len(rp.episodes) == 1
    assert pd.Timestamp(rp.episodes["start"].iloc[0]) == ev.index[start + 57]
    # 6 h / 6x: 0.001 / 0.015 x 360 x 6 = 144 min is equality; strictly above from the 145th minute
    first6 = np.flatnonzero((pair_signal(slo, ev, p6) > p6.factor).to_numpy())[0]
    assert first6 - start + 1 == 145
    # 3 d / 1x: 0.001 / 0.015 x 4320 x 1 = 288 min, so from the 289th; after 300 min the 3 d burn is 4500 / 4320
    first3d = np.flatnonzero((pair_signal(slo, ev, p3d) > p3d.factor).to_numpy())[0]
    assert first3d - start + 1 == 289
    assert burn_rate(slo, ev, 259200.0).iloc[start + 299] == pytest.approx(4500 / 4320)


def test_low_traffic_guard_withholds_verdict_and_alerts():
    errors, total = _ratio(days=1, per_min=1.0, bad={i: 1.0 for i in range(1380, 1440)})
    slo = _slo(min_events=5000)
    ev = events(slo, errors, total)
    r = budget_report(slo, ev)
    assert not r.sufficient and r.compliance is None and "fewer than the 5000" in r.reason
    assert burn_rate(slo, ev, 3600.0).isna().all()
    assert budget_alerts(slo, ev) == []
    # the same data with a small guard: 60 errors of 60 requests in the last hour is a 1000x burn
    slo2 = _slo(min_events=10)
    alerts = budget_alerts(slo2, events(slo2, errors, total))
    assert [a["windows"] for a in alerts] == ["1h/5m", "6h/30m", "3d/6h"]
    assert alerts[0]["burn_rate"] == pytest.approx(1000.0)


def test_threshold_sli_counts_minutes_with_data_only():
    idx = pd.DatetimeIndex(["2026-01-01T00:00:10Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z",
                            "2026-01-01T00:05:00Z", "2026-01-01T00:06:00Z"])
    v = pd.Series([100.0, 700.0, 100.0, np.nan, 100.0], index=idx)
    slo = SLO("lat", "lat", 0.99, comparator=">", threshold=500.0, min_events=1)
    ev = events(slo, v)
    assert ev["total"].tolist() == [1.0, 1.0, 1.0]           # minutes 0, 1, 6; the NaN minute is no event
    assert ev["bad"].tolist() == [1.0, 0.0, 0.0]             # any breaching point makes the minute bad
    r = budget_report(slo, ev)
    assert r.window_minutes_without_data == 30 * 1440 - 3


def test_ratio_sli_refuses_more_errors_than_requests_and_empty_data():
    errors, total = _ratio(days=1, bad={5: 2000.0})
    with pytest.raises(ValidationError, match="more errors than events"):
        events(_slo(), errors, total)
    with pytest.raises(InsufficientDataError):
        budget_report(_slo(), events(_slo(), errors.iloc[:0], total.iloc[:0]))


@pytest.mark.parametrize("kw, field", [({"target": 99.9}, "slo.target"), ({"window_days": 14}, "slo.window_days"),
                                       ({"total": None}, "slo.total"), ({"min_events": 0}, "slo.min_events")])
def test_bad_definitions_name_the_field(kw, field):
    with pytest.raises(ValidationError) as e:
        _slo(**kw)
    assert e.value.path == field


def test_slos_round_trip_through_policy_meta():
    a, b = _slo(), SLO("lat", 'lat{svc="*"}', 0.995, window_days=7, threshold=300.0)
    meta = slos_to_meta({"owner": "sre"}, [a, b])
    assert meta["owner"] == "sre" and slos_from_meta(meta) == [a, b]
    with pytest.raises(ValidationError, match="unique"):
        slos_to_meta({}, [a, a])


def test_burn_rules_are_policy_rules_that_export(tmp_path):
    rules = burn_rules(_slo()) + burn_rules(SLO("lat", "lat", 0.995, threshold=300.0))
    assert [r.critical or r.warning for r in rules[:3]] == [14.4, 6.0, 1.0]
    assert [("critical" if r.critical else "warning") for r in rules[:3]] == ["critical", "critical", "warning"]
    text = to_prometheus_yaml(rules)
    assert "> 14.4" in text and "rate(errors{svc=\"api\"}[1h])" in text and "[3d:1m]" in text
    if promtool_binary():
        res = check_rules(text)
        assert res.ok, res.output


def test_label_glob_sums_the_minutes_of_every_matching_series():
    from core.slo import combine_events, matching_keys
    slo = SLO("lat", 'lat{svc="*"}', 0.99, threshold=500.0, min_events=1)
    keys = ['lat{svc="a"}', 'lat{svc="b"}', 'cpu{svc="a"}']
    assert matching_keys(slo, keys) == ['lat{svc="a"}', 'lat{svc="b"}']
    idx = pd.date_range(T0, periods=3, freq="min")
    a = events(slo, pd.Series([100.0, 900.0, 100.0], index=idx))
    b = events(slo, pd.Series([900.0, 900.0], index=idx[:2]))
    ev = combine_events([a, b])
    assert ev["bad"].tolist() == [1.0, 2.0, 0.0] and ev["total"].tolist() == [2.0, 2.0, 1.0]
    assert budget_report(slo, ev).compliance == pytest.approx(2 / 5)
