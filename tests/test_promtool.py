"""The studio against the real Prometheus engine (Debian's ``promtool``).

* ``promtool check rules`` accepts the export of every policy shape the studio holds;
* the differential property test: random series (scrape gaps as staleness markers) and random rules
  (a quarter of them read back through the rule importer first), exported by the studio, run by ``promtool test rules`` with the replay's firing timeline as the
  expected alerts at every evaluation. A failure prints the first differing case (series, rules,
  expected timeline and promtool's report).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import yaml

from core.alerting.prometheus import PromMapping, prometheus_export
from core.alerting.promtool import (
    alert_test_case,
    check_rules,
    describe_case,
    promtool_binary,
    run_cases,
    series_values,
)
from core.alerting.replay import replay
from core.alerting.rule_import import import_rule_files
from core.alerting.rules import Rule

pytestmark = pytest.mark.skipif(promtool_binary() is None,
                                reason="promtool missing: apt-get install prometheus (.ci/run does)")

T0 = pd.Timestamp("2026-03-01", tz="UTC")
COMPARATORS = (">", ">=", "<", "<=")


# ---------------------------------------------------------------------------------------- generators
def random_series(rng: np.random.Generator, key: str, n: int) -> pd.Series:
    """Whole values 0..10 in runs (so alerts pend, fire and resolve), with gaps of 1..15 evaluations."""
    vals = np.empty(n)
    i = 0
    level = float(rng.integers(0, 11))
    while i < n:
        run = int(rng.integers(1, 8))
        vals[i:i + run] = level + rng.integers(-1, 2, size=min(run, n - i))
        level = float(np.clip(level + rng.integers(-4, 5), 0, 10))
        i += run
    vals = np.clip(vals, 0, 10)
    for _ in range(int(rng.integers(0, 4))):
        s = int(rng.integers(1, n))
        vals[s:s + int(rng.choice([1, 2, 3, 5, 8, 12, 15]))] = np.nan
    return pd.Series(vals, index=T0 + pd.to_timedelta(np.arange(n) * 60, unit="s"), name=key)


def random_rule(rng: np.random.Generator, name: str, key: str) -> Rule:
    cmp = str(rng.choice(COMPARATORS))
    up = cmp in (">", ">=")
    a, b = sorted(int(x) for x in rng.choice(np.arange(1, 10), size=2, replace=False))
    warn, crit = (a, b) if up else (b, a)
    shape = rng.integers(0, 3)
    warning = warn if shape in (0, 2) else None
    critical = crit if shape in (1, 2) else None
    edge = (warning if warning is not None else critical)
    recovery = None
    if rng.random() < 0.35:
        gap = int(rng.integers(1, 4))
        recovery = edge - gap if up else edge + gap
    labels = {"team": "t" + str(int(rng.integers(0, 3)))} if rng.random() < 0.5 else {}
    return Rule(name=name, series=key, comparator=cmp, warning=warning, critical=critical,
                for_s=float(rng.choice([0, 0, 60, 120, 180, 300])),
                keep_firing_for_s=float(rng.choice([0, 0, 60, 120, 300])),
                recovery=recovery, consecutive=int(rng.choice([1, 1, 2, 3])),
                missing=str(rng.choice(["nodata", "resolve", "keep_last"])), labels=labels)


def random_case(seed: int):
    rng = np.random.default_rng(seed)
    job = f"j{seed}"
    key = f'm_{seed}{{job="{job}",instance="i{int(rng.integers(0, 3))}"}}'
    name = f"Rule{seed}"
    rule = random_rule(rng, name, key)
    lookback = str(rng.choice(["2m", "5m", "10m"]))
    selectors = {}
    if rng.random() < 0.25:  # a mapped expression (keeps the series' labels, drops the name)
        selectors[key] = f"{key} * 1"
    mapping = PromMapping(selectors=selectors, lookback=lookback)
    values = random_series(rng, key, int(rng.integers(20, 60)))
    if rng.random() < 0.25:  # through the importer: export, read back, export again
        text = prometheus_export([rule], mapping).to_yaml()
        (rule,) = import_rule_files([(f"c{seed}.yml", text)]).rules
    return alert_test_case(rule, values, mapping, name=f"c{seed}")


def _run_differential(seeds) -> tuple[int, float]:
    cases = [random_case(s) for s in seeds]
    t = time.perf_counter()
    res = run_cases(cases)
    elapsed = time.perf_counter() - t
    bad = [c for c in cases if res[c.name] is not None]
    if bad:
        first = bad[0]
        pytest.fail(f"{len(bad)} of {len(cases)} cases differ from Prometheus; first:\n"
                    f"{describe_case(first)}\npromtool:\n{res[first.name]}")
    return len(cases), elapsed


# ---------------------------------------------------------------------------------------- tests
def test_series_values_write_gaps_as_staleness_markers():
    assert series_values(np.array([1.0, np.nan, -2.5, 1e-05])) == "1.0 stale -2.5 1e-05"


def test_harness_finds_a_planted_difference():
    """The harness can fail: a rule whose expected timeline is shifted by one evaluation is caught."""
    key = 'm_plant{job="p"}'
    values = pd.Series([1, 5, 5, 5, 1, 1], index=T0 + pd.to_timedelta(np.arange(6) * 60, unit="s"), name=key,
                       dtype=float)
    rule = Rule(name="Plant", series=key, comparator=">", warning=3, missing="resolve")
    good = alert_test_case(rule, values, name="good")
    bad = alert_test_case(rule, values, name="bad")
    tests = bad.test_doc["tests"][0]["alert_rule_test"]
    tests[1]["exp_alerts"], tests[4]["exp_alerts"] = tests[4]["exp_alerts"], tests[1]["exp_alerts"]
    res = run_cases([good, bad])
    assert res["good"] is None
    assert res["bad"] is not None and "time: 1m" in res["bad"] and "time: 4m" in res["bad"]
    assert good.expected["Plant"].tolist() == [False, True, True, True, False, False]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_differential_default_suite():
    """A few hundred random cases (every comparator, for, keep_firing_for, consecutive, recovery
    through ALERTS, nodata/keep_last/resolve, mapped expressions): Prometheus == replay everywhere."""
    n, elapsed = _run_differential(range(300))
    assert n == 300
    print(f"differential: {n} cases equal to Prometheus in {elapsed:.1f}s of promtool")


@pytest.mark.bench
@pytest.mark.timeout(3600)
def test_differential_bench():
    n, elapsed = _run_differential(range(1000, 4000))
    print(f"differential (bench): {n} cases equal to Prometheus in {elapsed:.1f}s of promtool")


def test_plain_gap_is_a_documented_difference():
    """A missing row that is not a staleness marker: Prometheus keeps reading the previous sample for
    its 5m lookback, the replay treats the evaluation as missing. The test states the difference."""
    key = 'm_gap{job="g"}'
    rule = Rule(name="Gap", series=key, comparator=">", warning=3, missing="resolve")
    values = pd.Series([5, 5, np.nan, np.nan, 5, 1], dtype=float,
                       index=T0 + pd.to_timedelta(np.arange(6) * 60, unit="s"), name=key)
    case = alert_test_case(rule, values, name="gap")
    assert run_cases([case])["gap"] is None                 # as staleness markers: equal
    inp = case.test_doc["tests"][0]["input_series"][0]
    inp["values"] = inp["values"].replace("stale", "_")     # as absent rows: Prometheus holds 5 for 5m
    diff = run_cases([case])["gap"]
    assert diff is not None and "time: 2m" in diff and "time: 3m" in diff
    # and the export warns where samples are further apart than Prometheus' lookback
    warn = prometheus_export([rule], PromMapping(scrape_interval_s=600)).warnings
    assert any("longer than Prometheus' query lookback" in w for w in warn)


# ---------------------------------------------------------------------------------------- check rules
CARRIED = [{"source": "prometheus", "group": "team", "interval": "30s", "name": "job:x:sum", "reason": "a recording rule",
            "rule": {"record": "job:x:sum", "expr": "sum by (job) (rate(x[5m]))"}},
           {"source": "prometheus", "group": "team", "interval": "30s", "name": "Down", "reason": "==",
            "rule": {"alert": "Down", "expr": "up == 0", "for": "2m", "labels": {"severity": "critical"}}},
           {"source": "grafana", "group": "g", "interval": "1m", "name": "Band", "reason": "range",
            "rule": {"title": "Band", "condition": "B", "data": []}}]


def _shapes() -> list[tuple[str, list[Rule], PromMapping]]:
    k = 'latency_ms{service="api"}'
    base = dict(name="Lat", series=k, comparator=">", warning=200.0, critical=400.0)
    return [
        ("threshold", [Rule(**base)], PromMapping()),
        ("below", [Rule(name="Low", series=k, comparator="<=", critical=1.0, missing="resolve")], PromMapping()),
        ("hysteresis", [Rule(**base, recovery=150.0, labels={"team": "web"})], PromMapping()),
        ("keep_firing_for", [Rule(**base, keep_firing_for_s=300, for_s=120)], PromMapping()),
        ("consecutive", [Rule(**base, consecutive=3, for_s=60)], PromMapping()),
        ("nodata", [Rule(**base, missing="nodata")], PromMapping(lookback="5m")),
        ("keep_last", [Rule(**base, missing="keep_last", for_s=900)], PromMapping()),
        ("glob", [Rule(name="G", series='latency_ms{service="*"}', warning=1.0)], PromMapping()),
        ("mapped", [Rule(**base, recovery=100.0, missing="keep_last")],
         PromMapping(selectors={k: 'sum(rate(errors_total{service="api"}[5m])) / sum(rate(req_total[5m]))'})),
        ("interval", [Rule(**base, interval_s=300), Rule(name="Other", series=k, warning=1.0)], PromMapping()),
        ("severity_labels", [Rule(**base, severity_labels={"warning": "ticket", "critical": "page"})],
         PromMapping(extra_labels={"source": "studio"})),
        ("no_severity_label", [Rule(name="N", series=k, critical=5.0, severity_labels={"critical": ""})],
         PromMapping()),
        ("imported_expression", [Rule(name="E", series="E", critical=0.02, recovery=0.01, missing="nodata",
                                      promql="sum(rate(errors_total[5m])) / sum(rate(requests_total[5m]))")],
         PromMapping()),
        ("carried", [Rule(**base)], PromMapping()),
    ]


@pytest.mark.parametrize("shape, rules, mapping", _shapes(), ids=[s[0] for s in _shapes()])
def test_promtool_check_rules_accepts_every_export_shape(shape, rules, mapping):
    exp = prometheus_export(rules, mapping, policy=shape, carried=CARRIED if shape == "carried" else ())
    res = check_rules(exp.to_yaml())
    assert res.ok, res.output
    assert "SUCCESS" in res.output
    if shape == "carried":
        doc = exp.doc
        team = next(g for g in doc["groups"] if g["name"] == "team")
        assert team["interval"] == "30s" and team["rules"] == [c["rule"] for c in CARRIED[:2]]
        assert any("Band" in w and "Grafana" in w for w in exp.warnings)


def test_promtool_check_rules_rejects_a_broken_file():
    bad = yaml.safe_dump({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "x >"}]}]})
    res = check_rules(bad)
    assert not res.ok and "FAILED" in res.output


def test_expected_timeline_is_the_replay():
    """The expected alerts written into a case are the replay's own firing masks, level by level."""
    key = 'm_x{job="x"}'
    values = pd.Series([1, 5, 9, 9, 5, 1, np.nan, 9], dtype=float, name=key,
                       index=T0 + pd.to_timedelta(np.arange(8) * 60, unit="s"))
    rule = Rule(name="X", series=key, comparator=">", warning=4, critical=8, missing="resolve")
    case = alert_test_case(rule, values, name="x")
    rep = replay(rule, values)
    assert case.expected["X"].tolist() == (rep.firing["warning"] | rep.firing["critical"]).tolist()
    at2 = case.test_doc["tests"][0]["alert_rule_test"][2]
    assert at2["eval_time"] == "2m"
    assert sorted(a["exp_labels"]["severity"] for a in at2["exp_alerts"]) == ["critical", "warning"]
    assert run_cases([case])["x"] is None
