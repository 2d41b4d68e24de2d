"""Policy YAML round trip and errors; Prometheus alerting rules re-parsed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.errors import ValidationError
from core.export import (
    PromMapping,
    format_duration,
    parse_duration,
    policy_from_yaml,
    policy_to_yaml,
    prometheus_rules,
    to_prometheus_yaml,
)
from core.rules import Rule

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo_policy.yaml"


def _rules_yaml(*rule_lines: str, extra: str = "") -> str:
    return extra + "rules:\n" + "".join(f"  - {line}\n" for line in rule_lines)


# ---------------------------------------------------------------------------------------- durations
def test_durations_by_hand():
    assert parse_duration("5m", "p") == 300.0
    assert parse_duration("1h30m", "p") == 5400.0
    assert parse_duration("250ms", "p") == 0.25
    assert parse_duration(90, "p") == 90.0
    assert [format_duration(x) for x in (0, 300, 5400, 86400 + 60, 0.5)] == ["0s", "5m", "1h30m", "1d1m", "500ms"]


# ---------------------------------------------------------------------------------------- YAML
def test_demo_policy_round_trip():
    rules, meta = policy_from_yaml(DEMO.read_text())
    assert len(rules) == 12 and meta["policy"] == "default"
    assert meta["bounds"]["FleetCpuHigh"] == {"min": 30.0, "max": 99.0}
    text = policy_to_yaml(rules, meta)
    rules2, meta2 = policy_from_yaml(text)
    assert meta2 == meta
    by = {r.name: r.to_dict() for r in rules}
    assert {r.name: r.to_dict() for r in rules2} == by
    # defaults were applied on the way in
    assert all(r.severity_labels == {"warning": "ticket", "critical": "page"} for r in rules)
    assert by["CheckoutTrafficLow"]["missing"] == "resolve" and by["CheckoutLatencyHigh"]["missing"] == "nodata"


def test_yaml_fields_map_to_rule():
    (r,), meta = policy_from_yaml(_rules_yaml(
        "{name: L, series: 'lat{svc=\"a\"}', comparator: '>', warning: 400, critical: 800, for: 5m, "
        "keep_firing_for: 90s, recovery: 350, consecutive: 2, missing: keep_last, unit: ms, "
        "labels: {team: t}, annotations: {rationale: why}}"))
    assert isinstance(r, Rule) and meta == {}
    assert (r.warning, r.critical, r.for_s, r.keep_firing_for_s, r.recovery, r.consecutive) == \
        (400.0, 800.0, 300.0, 90.0, 350.0, 2)
    assert (r.missing, r.unit, r.labels, r.annotations) == ("keep_last", "ms", {"team": "t"}, {"rationale": "why"})


@pytest.mark.parametrize("doc, path, words", [
    (_rules_yaml("{name: A, series: a, warning: 1}", "{name: B, series: b, warning: 1}",
                 "{name: C, series: c, warning: 1, for: 5x}"), "rules[2].for", '"5x" is not a duration like 5m'),
    (_rules_yaml("{name: A, series: a, treshold: 1}"), "rules[0].treshold", "unknown field"),
    (_rules_yaml("{name: A, series: a, warning: 9, critical: 5}"), "rules[0].warning", "below critical"),
    (_rules_yaml("{name: A, series: a}"), "rules[0].critical", "warning or a critical"),
    (_rules_yaml("{name: A, series: a, warning: abc}"), "rules[0].warning", "number"),
    (_rules_yaml("{name: A, series: a, warning: 5, bounds: {min: 10, max: 20}}"), "rules[0].warning", "bounds"),
    (_rules_yaml("{name: A, series: a, warning: 5, missing: zero}"), "rules[0].missing", "zero"),
    (_rules_yaml("{name: A, series: a, warning: 5}", "{name: A, series: b, warning: 6}"), "rules[1].name",
     "used twice"),
    (_rules_yaml("{name: A, series: a, warning: 5}", extra="defaults: {for: soon}\n"), "defaults.for",
     "not a duration"),
    (_rules_yaml("{name: A, series: a, warning: 5}", extra="owner: me\n"), "owner", "unknown top-level"),
    ("rules: {name: A}\n", "rules", "list of rules"),
    ("rules:\n  - [unclosed\n", None, "not valid YAML"),
    ("just text\n", "(top)", "mapping"),
])
def test_bad_yaml_names_the_path(doc, path, words):
    with pytest.raises(ValidationError) as ei:
        policy_from_yaml(doc)
    if path is not None:
        assert ei.value.path == path
    else:
        assert ei.value.path.startswith("line ")
    assert words in str(ei.value)
    assert str(ei.value).startswith(f"{ei.value.path}: ")


# ---------------------------------------------------------------------------------------- Prometheus
def _alerts(rules, mapping=None):
    doc = yaml.safe_load(to_prometheus_yaml(rules, mapping, policy="default", version=3))
    (group,) = doc["groups"]
    assert group["name"] == "threshold-studio-default"
    return group["rules"]


def test_prometheus_one_alert_per_severity_reparsed():
    r = Rule(name="CheckoutLatencyHigh", series='latency_p95_ms{service="checkout"}', warning=450.0,
             critical=900.0, for_s=300, keep_firing_for_s=120, recovery=400.0, unit="ms",
             labels={"team": "checkout"}, severity_labels={"critical": "page"},
             annotations={"summary": "Checkout slow", "rationale": "SLO is 1 s"})
    alerts = _alerts([r])
    assert [a["alert"] for a in alerts] == ["CheckoutLatencyHigh"] * 2 + ["CheckoutLatencyHighNoData"]
    w, c, nd = alerts
    assert w["expr"] == 'latency_p95_ms{service="checkout"} > 450'
    assert c["expr"] == 'latency_p95_ms{service="checkout"} > 900'
    assert (w["for"], w["keep_firing_for"], c["for"]) == ("5m", "2m", "5m")
    assert w["labels"] == {"team": "checkout", "severity": "warning"}
    assert c["labels"] == {"team": "checkout", "severity": "page"}
    assert c["annotations"]["summary"] == "Checkout slow"
    assert "Rationale: SLO is 1 s" in c["annotations"]["description"]
    assert "recovery level 400 ms" in c["annotations"]["description"]
    assert "v3" in c["annotations"]["description"]
    assert nd["expr"] == 'absent_over_time(latency_p95_ms{service="checkout"}[10m])' and "for" not in nd


def test_prometheus_selectors_globs_mapping_and_modes():
    rules = [
        Rule(name="cpu", series='cpu_pct{service="*"}', warning=80.0, missing="resolve"),
        Rule(name="web", series='cpu_pct{host="web-?",zone="eu"}', critical=95.0, missing="resolve"),
        Rule(name="lat-any", series="latency_p95_ms*", warning=500.0, missing="resolve"),
        Rule(name="low traffic", series='request_rate{service="checkout"}', comparator="<", warning=300.0,
             critical=100.0, consecutive=3, missing="keep_last"),
        Rule(name="mapped", series='errors{svc="x"}', warning=2.5, for_s=60, missing="resolve"),
    ]
    m = PromMapping(selectors={'errors{svc="x"}': 'sum(rate(http_errors_total{svc="x"}[5m]))'},
                    extra_labels={"source": "studio"}, scrape_interval_s=30)
    by = {}
    for a in _alerts(rules, m):
        by.setdefault(a["alert"], []).append(a)
    assert by["cpu"][0]["expr"] == 'cpu_pct{service=~".+"} > 80'
    assert by["web"][0]["expr"] == 'cpu_pct{host=~"web-.",zone="eu"} > 95'
    dotted = prometheus_rules([Rule(name="d", series='m{v="1.2*"}', warning=1.0, missing="resolve")])
    assert dotted["groups"][0]["rules"][0]["expr"] == 'm{v=~"1\\\\.2.*"} > 1'   # PromQL string for the regex 1\.2.*
    assert by["lat_any"][0]["expr"] == '{__name__=~"latency_p95_ms.*"} > 500'
    lt = by["low_traffic"]
    assert [a["expr"] for a in lt] == ['last_over_time(request_rate{service="checkout"}[10m]) < 300',
                                       'last_over_time(request_rate{service="checkout"}[10m]) < 100']
    assert lt[0]["for"] == "1m"                      # 3 consecutive samples 30 s apart = 2 intervals
    assert by["mapped"][0]["expr"] == 'sum(rate(http_errors_total{svc="x"}[5m])) > 2.5'
    assert by["mapped"][0]["for"] == "1m" and "keep_firing_for" not in by["mapped"][0]
    assert all(a["labels"]["source"] == "studio" for alerts in by.values() for a in alerts)
    assert not any(k.endswith("NoData") for k in by)    # no rule here asks for nodata alerts


def test_prometheus_export_of_demo_policy_parses():
    rules, _ = policy_from_yaml(DEMO.read_text())
    doc = prometheus_rules(rules)
    alerts = doc["groups"][0]["rules"]
    # 11 rules with both levels + 1 warning-only = 23 threshold alerts; 11 nodata alerts
    assert len(alerts) == 23 + 11
    assert yaml.safe_load(to_prometheus_yaml(rules)) == doc
    for a in alerts:
        assert set(a) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
        assert a["labels"]["severity"] in {"ticket", "page"}
