"""Alert rule model: durations, validation (with field paths), selectors, (de)serialisation, overlaps."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.alerting.rules import Rule, check_overlaps, format_duration, glob_to_regex, parse_duration
from core.errors import ValidationError


# ----------------------------------------------------------------------------------- durations
@pytest.mark.parametrize("text, seconds", [
    ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("1h", 3600.0), ("2d", 172800.0), ("1w", 604800.0),
    ("250ms", 0.25), ("1m30s", 90.0), ("1.5s", 1.5), ("0s", 0.0), ("90", 90.0), (45, 45.0), (2.5, 2.5),
    (" 5M ", 300.0), ("1d2h3m4s", 93784.0),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5x", "m5", "", "-5m", "1h-30m", "five", -1, math.inf, math.nan, True, None])
def test_parse_duration_rejects_with_path(bad):
    with pytest.raises(ValidationError) as exc:
        parse_duration(bad, path="rules[0].for")
    assert exc.value.path == "rules[0].for"


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (30, "30s"), (300, "5m"), (5400, "1h30m"), (90, "1m30s"), (86400, "1d"), (93784, "1d2h3m4s"),
    (0.25, "250ms"), (1.5, "1.5s"), (604800, "7d"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(0, 10**7), st.integers(0, 10**6).map(lambda ms: ms / 1000)))
def test_duration_round_trip(seconds):
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-9)


# ----------------------------------------------------------------------------------- validation
def test_rule_normalises_durations_and_defaults():
    r = Rule("cpu high", 'cpu_pct{host="a"}', ">", warning=80, critical=95, for_s="5m", keep_firing_for_s="1m30s")
    assert (r.for_s, r.keep_firing_for_s, r.consecutive, r.missing) == (300.0, 90.0, 1, "nodata")
    assert r.triggers() == {"warning": 80.0, "critical": 95.0}
    assert r.label_for("critical") == "critical"
    assert Rule("x", "m", critical=1, severity_labels={"critical": "page"}).label_for("critical") == "page"


@pytest.mark.parametrize("kwargs, path, words", [
    (dict(comparator=">", warning=95, critical=80), "rule.warning", "below critical"),
    (dict(comparator=">", warning=90, critical=90), "rule.warning", "below critical"),
    (dict(comparator="<", warning=10, critical=20), "rule.warning", "above critical"),
    (dict(comparator=">", warning=80, critical=95, recovery=85), "rule.recovery", "below the warning"),
    (dict(comparator=">", critical=95, recovery=95), "rule.recovery", "below the critical"),
    (dict(comparator="<=", critical=10, recovery=5), "rule.recovery", "above the critical"),
    (dict(comparator="=>", critical=1), "rule.comparator", "expected one of"),
    (dict(), "rule.critical", "warning or a critical"),
    (dict(critical=math.inf), "rule.critical", "finite"),
    (dict(critical=math.nan), "rule.critical", "finite"),
    (dict(critical="high"), "rule.critical", "expected a number"),
    (dict(critical=1, for_s=-60), "rule.for", ">= 0"),
    (dict(critical=1, for_s="5 minutes"), "rule.for", "cannot read duration"),
    (dict(critical=1, keep_firing_for_s="-1m"), "rule.keep_firing_for", "cannot read duration"),
    (dict(critical=1, interval_s=0), "rule.interval", "> 0"),
    (dict(critical=1, consecutive=0), "rule.consecutive", ">= 1"),
    (dict(critical=1, consecutive=1.5), "rule.consecutive", "whole number"),
    (dict(critical=1, missing="zero"), "rule.missing", "expected one of"),
    (dict(critical=120, unit="percent"), "rule.critical", "outside [0, 100]"),
    (dict(critical=1.5, unit="ratio"), "rule.critical", "outside [0, 1]"),
    (dict(critical=-5, unit="ms"), "rule.critical", "outside [0, inf]"),
    (dict(critical=5, unit="m s!"), "rule.unit", "not a unit"),
    (dict(critical=5, severity_labels={"page": "x"}), "rule.severity_labels.page", "unknown severity"),
    (dict(critical=5, annotations={"summary": ["a"]}), "rule.annotations.summary", "must be text"),
])
def test_rule_validation_names_the_field(kwargs, path, words):
    with pytest.raises(ValidationError) as exc:
        Rule("r", "m", **kwargs)
    assert exc.value.path == path
    assert words in str(exc.value)


def test_rule_valid_edge_cases():
    Rule("r", "m", "<", warning=20, critical=10, recovery=25)         # < : warning above critical
    Rule("r", "m", ">", critical=95, recovery=94.9)                     # recovery just below
    Rule("r", "m", ">", critical=100, unit="percent")                   # bound is inclusive
    Rule("r", "m", ">", critical=5, unit="widgets/s")                   # unknown unit names are allowed


# ----------------------------------------------------------------------------------- selectors
def test_exact_key_matches_only_itself_label_order_insensitive():
    r = Rule("r", 'cpu{zone="b",host="a"}', critical=1)
    assert r.matches('cpu{host="a",zone="b"}')
    assert not r.matches('cpu{host="a",zone="b",x="1"}')
    assert not r.matches('cpu{host="a"}')


def test_glob_selectors():
    r = Rule("r", 'latency_p95_ms{service="*"}', critical=1)
    assert r.matches('latency_p95_ms{service="api"}')
    assert not r.matches('latency_p95_ms{service="api",zone="a"}')   # * inside quotes stops at "
    assert not r.matches('latency_p50_ms{service="api"}')
    r2 = Rule("r", "latency_p95_ms*", critical=1)
    assert r2.matches('latency_p95_ms{service="api",zone="a"}') and r2.matches("latency_p95_ms")
    assert not r2.matches("latency_p50_ms")
    assert glob_to_regex("a?c").match("abc") and not glob_to_regex("a?c").match("a.bc")
    assert glob_to_regex("a.c").match("a.c") and not glob_to_regex("a.c").match("abc")  # '.' literal


def test_label_matchers():
    r = Rule("r", "latency*", critical=1, matchers={"service": "api-*", "zone": "eu"})
    assert r.matches('latency{service="api-1",zone="eu"}')
    assert not r.matches('latency{service="web",zone="eu"}')
    assert not r.matches('latency{service="api-1"}')                 # required label missing
    assert r.matching(['latency{service="api-1",zone="eu"}', 'latency{zone="eu"}']) == [
        'latency{service="api-1",zone="eu"}']


# ----------------------------------------------------------------------------------- serialisation
def test_to_dict_from_dict_round_trip():
    r = Rule("api latency", 'latency_p95_ms{service="*"}', ">", warning=250, critical=400, for_s=300,
             keep_firing_for_s=600, recovery=200, consecutive=3, missing="keep_last",
             matchers={"zone": "eu-*"}, labels={"team": "web"}, severity_labels={"critical": "page"},
             annotations={"summary": "p95 latency high", "rationale": "p99.5 of last 30 days"},
             unit="ms", interval_s=60)
    d = r.to_dict()
    assert d["for"] == "5m" and d["keep_firing_for"] == "10m" and d["interval"] == "1m"
    assert Rule.from_dict(d) == r
    minimal = Rule("x", "m", critical=1).to_dict()
    assert minimal == {"name": "x", "series": "m", "comparator": ">", "critical": 1.0, "for": "0s",
                       "missing": "nodata"}


def test_from_dict_errors_carry_the_path():
    with pytest.raises(ValidationError) as exc:
        Rule.from_dict({"name": "x", "series": "m", "critical": 1, "for": "5 min"}, path="rules[2]")
    assert exc.value.path == "rules[2].for"
    with pytest.raises(ValidationError) as exc:
        Rule.from_dict({"name": "x", "series": "m", "critical": 1, "treshold": 5}, path="rules[1]")
    assert exc.value.path == "rules[1].treshold" and "unknown field" in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        Rule.from_dict({"series": "m", "critical": 1}, path="rules[0]")
    assert exc.value.path == "rules[0].name"
    with pytest.raises(ValidationError) as exc:
        Rule.from_dict({"name": "x", "series": "m", "critical": 1, "for": "1m", "for_s": 60})
    assert exc.value.path == "rules[0].for_s"
    with pytest.raises(ValidationError) as exc:
        Rule.from_dict(["x"], path="rules[4]")
    assert exc.value.path == "rules[4]"
    r = Rule.from_dict({"name": "x", "series": "m", "warning": 5, "for": 90})
    assert r.for_s == 90.0 and r.critical is None


# ----------------------------------------------------------------------------------- overlaps
KEYS = ['cpu{host="a"}', 'cpu{host="b"}', 'mem{host="a"}']


def test_overlap_same_direction_is_duplicate():
    rules = [Rule("hi", 'cpu{host="*"}', ">", warning=80, critical=95), Rule("hi2", 'cpu{host="a"}', ">=", critical=90)]
    out = check_overlaps(rules, KEYS)
    assert out == ["rules 'hi' and 'hi2' overlap on 1 series (e.g. cpu{host=\"a\"}): both fire when "
                   "value >= 90 (duplicate alerts)"]


def test_overlap_opposite_directions():
    hi = Rule("hi", "cpu*", ">", critical=50)
    lo = Rule("lo", "cpu*", "<", critical=80)
    out = check_overlaps([hi, lo], KEYS)
    assert len(out) == 1 and "50 < value < 80" in out[0] and "2 series" in out[0]
    assert "contradictory" in out[0]
    # disjoint ranges: > 80 and < 50 never fire together
    assert check_overlaps([Rule("hi", "cpu*", ">", critical=80), Rule("lo", "cpu*", "<", critical=50)], KEYS) == []
    # touching at one value: only when both are inclusive
    assert check_overlaps([Rule("a", "cpu*", ">", critical=50), Rule("b", "cpu*", "<", critical=50)], KEYS) == []
    assert check_overlaps([Rule("a", "cpu*", ">=", critical=50), Rule("b", "cpu*", "<", critical=50)], KEYS) == []
    both = check_overlaps([Rule("a", "cpu*", ">=", critical=50), Rule("b", "cpu*", "<=", critical=50)], KEYS)
    assert len(both) == 1 and "50 <= value <= 50" in both[0]


def test_no_overlap_without_shared_series():
    assert check_overlaps([Rule("a", "cpu*", ">", critical=1), Rule("b", "mem*", ">", critical=1)], KEYS) == []
    assert check_overlaps([Rule("a", "disk*", ">", critical=1), Rule("b", "disk*", ">", critical=2)], KEYS) == []
