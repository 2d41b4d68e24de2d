"""Policy YAML round trip and errors; Prometheus alerting rules re-parsed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from core.alerting.prometheus import (
    PROM_DURATION,
    PromMapping,
    is_vector_selector,
    prom_duration,
    prometheus_export,
    prometheus_rules,
    to_prometheus_yaml,
)
from core.alerting.replay import replay
from core.alerting.rules import Rule, format_duration, parse_duration
from core.errors import ValidationError
from core.policy.policy_yaml import policy_from_yaml, policy_to_yaml

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo_policy.yaml"


def _rules_yaml(*rule_lines: str, extra: str = "") -> str:
    return extra + "rules:\n" + "".join(f"  - {line}\n" for line in rule_lines)


# ---------------------------------------------------------------------------------------- durations
def test_durations_by_hand():
    import core.alerting.rules

    # one parser and one formatter for the whole studio: core.alerting.rules'
    assert parse_duration is core.alerting.rules.parse_duration and format_duration is core.alerting.rules.format_duration
    assert parse_duration("5m") == 300.0
    assert parse_duration("1h30m") == 5400.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration(90) == 90.0
    assert [format_duration(x) for x in (0, 300, 5400, 86400 + 60, 0.5)] == ["0s", "5m", "1h30m", "1d1m", "500ms"]


@pytest.mark.parametrize("text, seconds", [("90", 90.0), ("5M", 300.0), ("1h 30m", 5400.0), ("1w", 604800.0)])
def test_yaml_import_reads_durations_like_rule_from_dict(text, seconds):
    (r,), _ = policy_from_yaml(_rules_yaml(f"{{name: A, series: a, warning: 5, for: '{text}'}}"))
    assert r.for_s == seconds == Rule.from_dict({"name": "A", "series": "a", "warning": 5, "for": text}).for_s


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (0.5, "500ms"), (30, "30s"), (300, "5m"), (5400, "1h30m"), (604800, "7d"), (1209600 + 1, "14d1s"),
    (61.5, "1m1s500ms"), (3600.25, "1h250ms"), (1.0004, "1s"), (0.0004, "0s"), (90061.001, "1d1h1m1s1ms")])
def test_prom_duration_is_valid_prometheus_syntax(seconds, text):
    assert prom_duration(seconds) == text
    assert PROM_DURATION.match(text)
    assert parse_duration(text) == pytest.approx(round(seconds, 3))


def test_prom_duration_every_millisecond_fraction_is_valid():
    for ms in range(0, 2000):
        t = prom_duration(ms / 1000 + 60)
        assert PROM_DURATION.match(t) and "." not in t, t
        assert round(parse_duration(t) * 1000) == ms + 60000


def test_prometheus_grammar_rejects_what_it_should():
    for bad in ("1.5s", "1m1.5s", "5M", "1h 30m", "90", "1s1m", "1d1w"):
        assert PROM_DURATION.match(bad) is None, bad


def test_week_long_for_exports_as_days_and_fractions_as_ms():
    r = Rule(name="Slow", series='m{h="a"}', warning=5.0, for_s=604800.0, keep_firing_for_s=90.5)
    rule = prometheus_rules([r])["groups"][0]["rules"][0]
    assert (rule["for"], rule["keep_firing_for"]) == ("7d", "1m30s500ms")
    assert "last_over_time" not in rule["expr"]
    assert prometheus_rules([r])["groups"][0]["interval"] == "1m"


# ---------------------------------------------------------------------------------------- YAML
def test_demo_policy_round_trip():
    rules, meta = policy_from_yaml(DEMO.read_text())
    assert len(rules) == 12 and meta["policy"] == "default"
    assert "bounds" not in meta and next(r for r in rules if r.name == "FleetCpuHigh").limits == \
        {"min": 30.0, "max": 99.0}                         # the older spelling lands in the rule's limits
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
                 "{name: C, series: c, warning: 1, for: 5x}"), "rules[2].for", "cannot read duration '5x'"),
    (_rules_yaml("{name: A, series: a, treshold: 1}"), "rules[0].treshold", "unknown field"),
    (_rules_yaml("{name: A, series: a, warning: 9, critical: 5}"), "rules[0].warning", "below critical"),
    (_rules_yaml("{name: A, series: a}"), "rules[0].critical", "warning or a critical"),
    (_rules_yaml("{name: A, series: a, warning: abc}"), "rules[0].warning", "number"),
    (_rules_yaml("{name: A, series: a, warning: 5, bounds: {min: 10, max: 20}}"), "rules[0].warning", "bounds"),
    (_rules_yaml("{name: A, series: a, warning: 5, missing: zero}"), "rules[0].missing", "zero"),
    (_rules_yaml("{name: A, series: a, warning: 5}", "{name: A, series: b, warning: 6}"), "rules[1].name",
     "used twice"),
    (_rules_yaml("{name: A, series: a, warning: 5}", extra="defaults: {for: soon}\n"), "defaults.for",
     "cannot read duration"),
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


def test_yaml_error_names_the_file():
    with pytest.raises(ValidationError) as ei:
        policy_from_yaml(_rules_yaml("{name: A, series: a, warning: abc}"), source="team/alerts.yaml")
    assert str(ei.value) == "team/alerts.yaml: rules[0].warning: expected a number, got 'abc'"
    assert ei.value.path == "rules[0].warning" and ei.value.source == "team/alerts.yaml"
    with pytest.raises(ValidationError, match=r"^x.yaml: line 3, column 1: not valid YAML"):
        policy_from_yaml("rules:\n  - [unclosed\n", source="x.yaml")


# ---------------------------------------------------------------------------------------- Prometheus
# promtool is not available here, so the PromQL shape is checked by hand: brackets balance, and every
# range ``[d]`` follows a plain vector selector while every subquery ``[d:s]`` follows ``)`` or one.
_NAME = r"[A-Za-z_:][A-Za-z0-9_:]*"
_BRACED = r'\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\}'
_SELECTOR_AT_END = re.compile(rf"(?:{_NAME}\s*(?:{_BRACED})?|{_BRACED})\s*$")
_DUR = r"(?:\d+(?:ms|s|m|h|d|w))+"


def promql_shape_errors(expr: str) -> list[str]:
    errors, depth, i, quote = [], [], 0, False
    while i < len(expr):
        ch = expr[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote = True
        elif ch in "([{":
            depth.append(ch)
            if ch == "[":
                close = expr.index("]", i)
                body, before = expr[i + 1:close], expr[:i]
                if re.fullmatch(_DUR, body):
                    if not _SELECTOR_AT_END.search(before) or before.rstrip().endswith(")"):
                        errors.append(f"range [{body}] after a non-selector: ...{before[-30:]}")
                elif re.fullmatch(rf"{_DUR}:(?:{_DUR})?", body):
                    if not (before.endswith(")") or _SELECTOR_AT_END.search(before)):
                        errors.append(f"subquery [{body}] after ...{before[-30:]}")
                else:
                    errors.append(f"bad range body [{body}]")
        elif ch in ")]}":
            if not depth or "([{"[")]}".index(ch)] != depth.pop():
                errors.append(f"unbalanced {ch!r} at {i}")
        i += 1
    if depth or quote:
        errors.append("unclosed bracket or string")
    return errors


def test_promql_shape_checker_can_fail():
    assert promql_shape_errors('last_over_time(m{a="b"}[10m]) > 1') == []
    assert promql_shape_errors("absent_over_time((sum(rate(x[5m])) * 1000)[10m:1m])") == []
    assert promql_shape_errors("last_over_time(sum(rate(x[5m]))[10m])")          # range after a call
    assert promql_shape_errors("absent_over_time(histogram_quantile(0.95, y) * 1000[10m])")
    assert promql_shape_errors("sum(rate(x[5m])")                                  # unbalanced
    assert is_vector_selector('m{a="b",c=~"d.*"}') and is_vector_selector('{__name__=~"m.*"}')
    assert is_vector_selector("m") and not is_vector_selector("sum(m)") and not is_vector_selector("m * 2")
    assert not is_vector_selector("{}") and not is_vector_selector("m offset 5m")


def _alerts(rules, mapping=None):
    doc = yaml.safe_load(to_prometheus_yaml(rules, mapping, policy="default", version=3))
    (group,) = doc["groups"]
    assert group["name"] == "threshold-studio-default"
    for a in group["rules"]:
        assert promql_shape_errors(a["expr"]) == [], a["expr"]
    return group["rules"]


def test_prometheus_one_alert_per_severity_reparsed():
    r = Rule(name="CheckoutLatencyHigh", series='latency_p95_ms{service="checkout"}', warning=450.0,
             critical=900.0, for_s=300, keep_firing_for_s=120, recovery=400.0, unit="ms",
             labels={"team": "checkout"}, severity_labels={"critical": "page"},
             annotations={"summary": "Checkout slow", "rationale": "SLO is 1 s"})
    alerts = _alerts([r])
    assert [a["alert"] for a in alerts] == ["CheckoutLatencyHigh"] * 2 + ["CheckoutLatencyHighNoData"]
    w, c, nd = alerts
    v = 'latency_p95_ms{service="checkout"}'
    # hysteresis: holds at >= 400 while this rule's own alert (this level) was firing
    assert w["expr"] == (f'({v} > 450) or ({v} >= 400 and ignoring(alertname, alertstate, severity, team) '
                         'ALERTS{alertname="CheckoutLatencyHigh",alertstate="firing",team="checkout",'
                         'severity="warning"})')
    assert c["expr"] == (f'({v} > 900) or ({v} >= 400 and ignoring(alertname, alertstate, severity, team) '
                         'ALERTS{alertname="CheckoutLatencyHigh",alertstate="firing",team="checkout",'
                         'severity="page"})')
    assert (w["for"], w["keep_firing_for"], c["for"]) == ("5m", "2m", "5m")
    assert w["labels"] == {"team": "checkout", "severity": "warning"}
    assert c["labels"] == {"team": "checkout", "severity": "page"}
    assert c["annotations"]["summary"] == "Checkout slow"
    assert "Rationale: SLO is 1 s" in c["annotations"]["description"]
    assert "goes below the recovery level 400 ms" in c["annotations"]["description"]
    assert "v3" in c["annotations"]["description"]
    assert nd["expr"] == 'absent_over_time(latency_p95_ms{service="checkout"}[10m])' and "for" not in nd


def _hysteresis_terms(expr: str):
    """(op, threshold, hold op, recovery) read back from an exported hysteresis expression."""
    m = re.fullmatch(r"\((.+) (>=|>|<=|<) (\S+)\) or \((.+) (>=|<=) (\S+) and ignoring\(.+\) ALERTS\{.+\}\)",
                     expr)
    assert m and m.group(1) == m.group(4), expr
    return m.group(2), float(m.group(3)), m.group(5), float(m.group(6))


def _prometheus_firing(values, op, thr, hold_op, rec):
    """What Prometheus does with that expression (for: 0): the alert is firing at an evaluation when the
    expression returns the series, and ALERTS there reflects the previous evaluation."""
    ops = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}
    out, prev = [], False
    for x in values:
        prev = bool(ops[op](x, thr) or (ops[hold_op](x, rec) and prev))
        out.append(prev)
    return out


@pytest.mark.parametrize("comparator, warning, recovery, values", [
    (">", 450.0, 400.0, [300, 500, 420, 400, 399, 420, 460, 380]),
    ("<", 100.0, 120.0, [150, 90, 110, 120, 121, 110, 95, 130]),
])
def test_hysteresis_expression_behaves_like_the_replay(comparator, warning, recovery, values):
    r = Rule(name="H", series="m", comparator=comparator, warning=warning, recovery=recovery,
             missing="resolve")
    (a,) = _alerts([r])
    terms = _hysteresis_terms(a["expr"])
    assert terms == (comparator, warning, ">=" if comparator == ">" else "<=", recovery)
    ts = pd.date_range("2026-01-01", periods=len(values), freq="1min", tz="UTC")
    rep = replay(r, pd.Series(np.asarray(values, dtype=float), index=ts))
    assert _prometheus_firing(values, *terms) == rep.firing["warning"].tolist()
    # worked by hand for '>': fires at 500, holds at 420 and 400 (>= 400), ends at 399, 420 does not re-fire
    if comparator == ">":
        assert rep.firing["warning"].tolist() == [False, True, True, True, False, False, True, False]


def test_hysteresis_ignores_extra_labels_and_pins_them():
    r = Rule(name="Low", series='rate{svc="a"}', comparator="<", warning=300.0, critical=100.0, recovery=350.0,
             labels={"team": "t"}, missing="resolve", severity_labels={"warning": "ticket", "critical": "page"})
    m = PromMapping(extra_labels={"source": "studio"})
    _, c = _alerts([r], m)
    assert c["expr"] == ('(rate{svc="a"} < 100) or (rate{svc="a"} <= 350 and ignoring(alertname, alertstate, '
                         'severity, source, team) ALERTS{alertname="Low",alertstate="firing",source="studio",'
                         'team="t",severity="page"})')


def test_same_severity_label_for_both_levels_is_refused():
    r = Rule(name="X", series="m", warning=1.0, critical=2.0, severity_labels={"warning": "p", "critical": "p"})
    with pytest.raises(ValidationError, match="could not be told apart") as ei:
        prometheus_rules([r])
    assert ei.value.path == "rules.X.severity_labels"


def test_for_adds_consecutive_intervals_and_group_interval_matches_replay():
    r = Rule(name="Slow", series="m", warning=10.0, for_s=300, consecutive=3, missing="resolve")
    fast = Rule(name="Fast", series="f", warning=10.0, for_s=300, consecutive=3, interval_s=30,
                missing="resolve")
    doc = prometheus_rules([r, fast], PromMapping(scrape_interval_s=60))
    g1, g2 = doc["groups"]
    assert (g1["name"], g1["interval"]) == ("threshold-studio-default", "1m")
    assert (g2["name"], g2["interval"]) == ("threshold-studio-default-30s", "30s")
    assert [(a["alert"], a["for"]) for a in g1["rules"]] == [("Slow", "7m")]    # 5m + (3-1) x 1m
    assert [(a["alert"], a["for"]) for a in g2["rules"]] == [("Fast", "6m")]    # 5m + (3-1) x 30s
    # The replay agrees: breaching from minute 10 on, it first fires at minute 17 (= 10 + 7).
    ts = pd.date_range("2026-01-01", periods=30, freq="1min", tz="UTC")
    v = np.where(np.arange(30) >= 10, 20.0, 0.0)
    fire = replay(r, pd.Series(v, index=ts)).firing["warning"]
    assert int(np.argmax(fire)) == 17
    # an evaluation interval set on the mapping overrides the scrape interval
    doc = prometheus_rules([r], PromMapping(scrape_interval_s=15, evaluation_interval_s=120))
    assert doc["groups"][0]["interval"] == "2m" and doc["groups"][0]["rules"][0]["for"] == "9m"
    with pytest.raises(ValidationError):
        PromMapping(scrape_interval_s=0)


HQ = "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))*1000"


def test_mapped_expression_under_keep_last_and_nodata_uses_subqueries():
    m = PromMapping(selectors={"lat": HQ, "lat2": HQ})
    keep = Rule(name="K", series="lat", warning=450.0, missing="keep_last")
    nod = Rule(name="N", series="lat2", warning=450.0, critical=900.0, for_s=900, recovery=400.0)
    by = {}
    for a in _alerts([keep, nod], m):                 # every expr passes the PromQL shape check
        by.setdefault(a["alert"], []).append(a["expr"])
    assert by["K"] == [f"last_over_time(({HQ})[10m:1m]) > 450"]
    # the product is parenthesised before the comparison; for 15m > lookback: window 15m
    assert by["N"][0].startswith(f"(({HQ}) > 450) or (({HQ}) >= 400 and ignoring(")
    assert by["NNoData"] == [f"absent_over_time(({HQ})[15m:1m])"]
    assert not any(f"{HQ}[" in e or "*1000[" in e for es in by.values() for e in es)
    # a plain selector keeps plain range selectors
    plain = prometheus_rules([Rule(name="P", series='m{a="b"}', warning=1.0, missing="keep_last")])
    assert plain["groups"][0]["rules"][0]["expr"] == 'last_over_time(m{a="b"}[10m]) > 1'
    # a top-level 'or' in a mapped expression is kept together
    ored = prometheus_rules([Rule(name="O", series="x", warning=1.0, missing="resolve")],
                            PromMapping(selectors={"x": "a or b"}))
    assert ored["groups"][0]["rules"][0]["expr"] == "(a or b) > 1"


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


@pytest.mark.parametrize("a, b", [("lat-any", "lat_any"), ("X", "XNoData")])
def test_alert_name_collisions_name_both_rules(a, b):
    rules = [Rule(name=a, series="m", warning=1.0), Rule(name=b, series="n", warning=1.0)]
    with pytest.raises(ValidationError) as ei:
        prometheus_rules(rules)
    assert repr(a) in str(ei.value) and repr(b) in str(ei.value) and "rename" in str(ei.value)


def test_export_warnings_are_returned_and_written_as_comments():
    quiet = prometheus_export([Rule(name="Q", series="m", warning=1.0)])
    assert quiet.warnings == () and not quiet.to_yaml().startswith("#")
    r = Rule(name="S", series="m", warning=2.0, recovery=1.0, missing="resolve", interval_s=600)
    slow = prometheus_export([r])
    assert len(slow.warnings) == 1 and "ALERTS" in slow.warnings[0] and "the 10m interval" in slow.warnings[0]
    text = to_prometheus_yaml([r])
    assert text.startswith("# WARNING: S: hysteresis reads") and yaml.safe_load(text) == slow.doc
    # the same hysteresis evaluated every 5m is within Prometheus' lookback: silent
    assert prometheus_export([Rule(name="S", series="m", warning=2.0, recovery=1.0, missing="resolve",
                                   interval_s=300)]).warnings == ()


def test_nodata_keep_firing_for_matches_the_replay_and_is_not_warned():
    """missing: nodata with keep_firing_for: a gap is "condition false" in both, and keep_firing_for holds
    the alert across it, so the export is silent. Replay worked by hand (1-minute samples, > 5, kff 3m):
    breach at 0-1m, gap 2-3m (held: 1m and 2m after the hold stopped), breach at 4m, then 0 from 5m:
    held at 6m, 7m; 8m is 3m after 5m, so the one episode ends at 8m (480 s). The 2m gap is shorter
    than the 10m absent_over_time window, so neither the replay nor the export reports no data."""
    r = Rule(name="G", series="m", warning=5.0, keep_firing_for_s=180)          # missing: nodata
    ex = prometheus_export([r])
    assert ex.warnings == () and not ex.to_yaml().startswith("#")
    alerts = {a["alert"]: a for a in ex.doc["groups"][0]["rules"]}
    assert alerts["G"]["keep_firing_for"] == "3m" and alerts["GNoData"]["expr"] == "absent_over_time(m[10m])"
    ts = pd.date_range("2026-01-01", periods=10, freq="1min", tz="UTC")
    rep = replay(r, pd.Series([10, 10, np.nan, np.nan, 10, 0, 0, 0, 0, 0], index=ts, dtype=float))
    warn = rep.episodes[rep.episodes["severity"] == "warning"]
    assert len(warn) == 1 and warn.iloc[0]["start"] == ts[0] and warn.iloc[0]["end"] == ts[8]
    assert warn.iloc[0]["duration_s"] == 480.0
    nod = rep.episodes[rep.episodes["severity"] == "nodata"]
    assert nod.empty


def test_sparse_samples_are_warned_against_the_lookback_they_are_read_with():
    plain = Rule(name="P", series="m", warning=1.0, missing="resolve")
    nod = Rule(name="N", series="n", warning=1.0)                                 # missing: nodata
    keep = Rule(name="K", series="k", warning=1.0, missing="keep_last")
    keep_long = Rule(name="L", series="l", warning=1.0, missing="keep_last", for_s=1200)
    rules = [plain, nod, keep, keep_long]
    # 5m samples: every one is within Prometheus' 5m lookback and the 10m windows
    assert prometheus_export(rules, PromMapping(scrape_interval_s=300)).warnings == ()
    # 10m samples: plain selectors lose them between samples; keep_last's 10m window still reaches
    w = dict(x.split(":", 1) for x in prometheus_export(rules, PromMapping(scrape_interval_s=600)).warnings)
    assert sorted(w) == ["N", "P"]
    assert "every 10m" in w["P"] and "query lookback (5m)" in w["P"] and "NoData" not in w["P"]
    assert "NoData" not in w["N"]                          # absent_over_time(n[10m]) still sees a sample
    # 15m samples: also beyond the 10m windows; keep_last with for 20m reads over 20m and is fine
    w = dict(x.split(":", 1) for x in prometheus_export(rules, PromMapping(scrape_interval_s=900)).warnings)
    assert sorted(w) == ["K", "N", "P"]
    assert "last_over_time window (10m)" in w["K"] and "NNoData fires (no sample in 10m)" in w["N"]
    # a longer lookback widens the windows again
    assert [x.split(":")[0] for x in prometheus_export(
        rules, PromMapping(scrape_interval_s=900, lookback="15m")).warnings] == ["N", "P"]


def test_mapping_lookback_in_seconds_and_checked():
    assert PromMapping().lookback_s == 600.0 and PromMapping(lookback="1h").lookback_s == 3600.0
    # seconds are written as a PromQL duration
    keep = Rule(name="K", series="k", warning=1.0, missing="keep_last")
    assert prometheus_rules([keep], PromMapping(lookback=900))["groups"][0]["rules"][0]["expr"] == \
        "last_over_time(k[15m]) > 1"
    for bad in ("0s", "ten minutes", -5):
        with pytest.raises(ValidationError) as ei:
            PromMapping(lookback=bad)
        assert ei.value.path == "lookback"


def test_prometheus_export_of_demo_policy_parses():
    rules, _ = policy_from_yaml(DEMO.read_text())
    doc = prometheus_rules(rules)
    alerts = doc["groups"][0]["rules"]
    # 11 rules with both levels + 1 warning-only = 23 threshold alerts; 11 nodata alerts
    assert len(alerts) == 23 + 11
    assert doc["groups"][0]["interval"] == "1m"
    assert yaml.safe_load(to_prometheus_yaml(rules)) == doc
    for a in alerts:
        assert set(a) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
        assert a["labels"]["severity"] in {"ticket", "page"}
        assert promql_shape_errors(a["expr"]) == [], a["expr"]
