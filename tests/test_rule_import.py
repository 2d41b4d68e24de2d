"""Import deployed rules (Prometheus rule files, Grafana alert exports), round trip through the export,
and the policy/CLI around them. ``promtool check rules`` validates every export here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.alerting.prometheus import PromMapping, prometheus_export
from core.alerting.prometheus.importer import parse_threshold, series_of
from core.alerting.promtool import check_rules, promtool_binary
from core.alerting.replay import replay
from core.alerting.rule_import import import_rule_files
from core.alerting.rules import Rule
from core.data.store import audit
from core.errors import ValidationError
from core.policy import versions as pol
from core.policy.identity import User
from core.policy.policy_yaml import policy_from_yaml, policy_to_yaml

DATA = Path(__file__).parent / "data" / "rules"
ED = User("ed", "ed@example.com", frozenset({"viewer", "editor"}), os_account="ed-os")
T0 = pd.Timestamp("2026-01-01T00:00:00Z")
needs_promtool = pytest.mark.skipif(promtool_binary() is None, reason="promtool missing (apt-get install prometheus)")


def _files(*names: str) -> list[tuple[str, str]]:
    return [(n, (DATA / n).read_text(encoding="utf-8")) for n in names]


def _team():
    return import_rule_files(_files("team.rules.yml"))


# ---------------------------------------------------------------------------------------- PromQL
@pytest.mark.parametrize("expr, want", [
    ('x{a="b"} > 3', ('x{a="b"}', ">", 3.0, None)),
    ("0.02 < sum(rate(e[5m])) / sum(rate(r[5m]))", ("sum(rate(e[5m])) / sum(rate(r[5m]))", ">", 0.02, None)),
    ("5 >= x", ("x", "<=", 5.0, None)),
    ("(a - b) <= -1.5", ("a - b", "<=", -1.5, None)),
    ('histogram_quantile(0.99, sum by (le) (rate(h_bucket{j=">"}[5m]))) > 0.5',
     ('histogram_quantile(0.99, sum by (le) (rate(h_bucket{j=">"}[5m])))', ">", 0.5, None)),
    ('(x > 3) or (x >= 2 and ignoring(alertname, alertstate, severity) '
     'ALERTS{alertname="A", alertstate="firing", severity="warning"})', ("x", ">", 3.0, 2.0)),
])
def test_tunable_expressions(expr, want):
    t = parse_threshold(expr)
    assert (t.value, t.comparator, t.level, t.recovery) == want


@pytest.mark.parametrize("expr, why", [
    ("up == 0", "=="), ("x != 1", "!="), ("absent(up)", "not a threshold"), ("x > bool 3", "bool"),
    ("a > b", "two expressions"), ("x > 3 and y < 2", "not a threshold"), ("x > 3 or y > 2", "hysteresis"),
])
def test_not_tunable_expressions_say_why(expr, why):
    r = parse_threshold(expr)
    assert isinstance(r, str) and why in r


def test_invalid_promql_is_an_error_naming_the_field():
    with pytest.raises(ValidationError, match=r"groups\[0\]\.rules\[1\]\.expr: not valid PromQL"):
        parse_threshold("x >", "groups[0].rules[1].expr")


def test_series_of_plain_selectors_only():
    assert series_of('m{b="2",a="1"}') == 'm{a="1",b="2"}'
    assert series_of("m") == "m"
    assert series_of('m{a=~"x.*"}') is None and series_of("rate(m[5m])") is None and series_of("m offset 5m") is None


# ---------------------------------------------------------------------------------------- Prometheus
def test_prometheus_rule_file_written_by_a_team():
    res = _team()
    by = {r.name: r for r in res.rules}
    assert sorted(by) == ["DiskAlmostFull", "ErrorRatio", "HighLatency"]
    hl = by["HighLatency"]
    assert (hl.series, hl.comparator, hl.warning, hl.critical, hl.for_s) == ('latency_p95_ms{service="api"}', ">",
                                                                              450.0, 900.0, 300.0)
    assert hl.labels == {"team": "web"} and hl.promql is None and hl.interval_s == 60.0 and hl.missing == "resolve"
    er = by["ErrorRatio"]
    assert (er.comparator, er.critical, er.for_s, er.keep_firing_for_s) == (">", 0.02, 600.0, 300.0)
    assert er.promql == "sum(rate(errors_total[5m])) / sum(rate(requests_total[5m]))"
    assert er.severity_labels == {"critical": "page"}
    disk = by["DiskAlmostFull"]
    assert disk.severity_labels == {"critical": ""} and disk.interval_s is None       # no severity label
    carried = {c["name"]: c for c in res.carried}
    assert sorted(carried) == ["CpuBusy", "NoScrapes", "TargetDown", "job:errors:ratio5m"]
    assert "recording rule" in carried["job:errors:ratio5m"]["reason"]
    assert "bool" in carried["CpuBusy"]["reason"] and "==" in carried["TargetDown"]["reason"]
    assert carried["TargetDown"]["rule"] == {"alert": "TargetDown", "expr": 'up{job="api"} == 0', "for": "2m",
                                             "labels": {"severity": "critical"}}
    assert any("not tunable" in n and "NoScrapes" in n for n in res.notes)


def _export_doc(rules, carried=(), mapping=None):
    exp = prometheus_export(rules, mapping or PromMapping(), carried=carried)
    return exp, yaml.safe_load(exp.to_yaml())


def _alerts(doc) -> dict[tuple[str, str | None], dict]:
    return {(r.get("alert") or r.get("record"), (r.get("labels") or {}).get("severity")): r
            for g in doc["groups"] for r in g["rules"]}


@needs_promtool
def test_team_file_round_trips_promtool_valid_with_carried_rules_unchanged():
    res = _team()
    exp, doc = _export_doc(res.rules, res.carried)
    assert check_rules(exp.to_yaml()).ok
    got, orig = _alerts(doc), _alerts(yaml.safe_load((DATA / "team.rules.yml").read_text()))
    for key, want in orig.items():
        have = got[key]
        for f in ("for", "keep_firing_for", "labels"):
            assert have.get(f) == want.get(f) or (f == "labels" and not want.get(f) and not have.get(f)), (key, f)
        if key[0] in ("TargetDown", "NoScrapes", "CpuBusy", "job:errors:ratio5m"):
            assert have == want                                          # carried through unchanged
        else:
            assert parse_threshold(have["expr"]).level == parse_threshold(want["expr"]).level
    again = import_rule_files([("export.yml", exp.to_yaml())])
    assert [_no_interval(r) for r in again.rules] == [_no_interval(r) for r in res.rules]
    assert [c["rule"] for c in again.carried] == [c["rule"] for c in res.carried]


def _no_interval(r: Rule) -> dict:
    """A rule's dict without ``interval``: the export always states its group's interval, so a rule
    that had none (replayed at the series' resolution) comes back with the export's evaluation interval."""
    return {k: v for k, v in r.to_dict().items() if k != "interval"}


@needs_promtool
def test_studio_export_forms_read_back():
    """Hysteresis through ALERTS, keep_last (last_over_time), nodata (the NoData companion), severity labels."""
    rules = [Rule(name="Lat", series='lat{svc="a"}', comparator=">=", warning=200, critical=400, recovery=150,
                  for_s=120, keep_firing_for_s=60, missing="keep_last", labels={"team": "t"},
                  severity_labels={"warning": "ticket", "critical": "page"}),
             Rule(name="Low", series='free{d="/"}', comparator="<", critical=5, missing="nodata", for_s=300)]
    exp, _ = _export_doc(rules)
    assert check_rules(exp.to_yaml()).ok
    back = {r.name: r for r in import_rule_files([("x.yml", exp.to_yaml())]).rules}
    lat = back["Lat"]
    assert (lat.comparator, lat.warning, lat.critical, lat.recovery, lat.for_s, lat.keep_firing_for_s, lat.missing) \
        == (">=", 200, 400, 150, 120, 60, "keep_last")
    assert lat.severity_labels == {"warning": "ticket", "critical": "page"} and lat.labels == {"team": "t"}
    assert lat.series == 'lat{svc="a"}' and lat.promql is None
    assert back["Low"].missing == "nodata" and back["Low"].critical == 5


# ---------------------------------------------------------------------------------------- Grafana
def test_grafana_export_written_by_a_team():
    res = import_rule_files(_files("grafana_alerts.yaml"))
    by = {r.name: r for r in res.rules}
    lat = by["CheckoutLatency"]
    assert (lat.series, lat.comparator, lat.warning, lat.critical, lat.recovery, lat.for_s, lat.missing) == \
        ('latency_p95_ms{service="checkout"}', ">", 500.0, 1000.0, 420.0, 300.0, "nodata")
    assert lat.labels == {"team": "checkout"}
    ap = by["ApdexLow"]
    assert (ap.comparator, ap.critical, ap.missing, ap.keep_firing_for_s) == ("<", 0.9, "keep_last", 120.0)
    assert ap.promql.startswith("sum(rate(satisfied_total")
    (band,) = res.carried
    assert band["name"] == "QueueDepthOutOfBand" and band["source"] == "grafana" and "outside_range" in band["reason"]


@needs_promtool
def test_grafana_export_becomes_promtool_valid_prometheus_rules():
    res = import_rule_files(_files("grafana_alerts.yaml"))
    exp, doc = _export_doc(res.rules, res.carried)
    assert check_rules(exp.to_yaml()).ok
    assert any("Grafana rule" in w and "QueueDepthOutOfBand" in w for w in exp.warnings)
    names = {r["alert"] for g in doc["groups"] for r in g["rules"]}
    assert names == {"CheckoutLatency", "CheckoutLatencyNoData", "ApdexLow"}


def test_grafana_json_and_format_forced():
    import json

    doc = yaml.safe_load((DATA / "grafana_alerts.yaml").read_text())
    res = import_rule_files([("g.json", json.dumps(doc))], "grafana")
    assert len(res.rules) == 2
    with pytest.raises(ValidationError, match="g.json: groups"):
        import_rule_files([("g.json", json.dumps({"x": 1}))], "prometheus")


# ---------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("text, where", [
    ("groups: [", "bad.yml: line"),
    ("rules: []", "bad.yml: groups"),
    ("groups:\n- rules: []", "bad.yml: groups[0].name"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n", "bad.yml: group 'g', alert 'A'.expr"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: 'x >'\n", "bad.yml: group 'g', alert 'A'.expr: not valid"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x > 1\n    for: soon\n", "bad.yml: group 'g', alert 'A'.for"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: x > 1\n    severity: high\n",
     "bad.yml: group 'g', alert 'A'.severity"),
    ("groups:\n- name: g\n  rules:\n  - {expr: x}\n", "bad.yml: group 'g', rules[0]"),
    ("apiVersion: 1\ngroups:\n- name: g\n  rules:\n  - title: T\n    condition: Z\n    data: [{refId: A, model: {expr: x}}]\n",
     "bad.yml: group 'g', rule 'T'.condition"),
    ("apiVersion: 1\ngroups:\n- name: g\n  rules:\n  - title: T\n    condition: A\n    noDataState: Maybe\n"
     "    data: [{refId: A, model: {expr: x}}]\n", "bad.yml: group 'g', rule 'T'.noDataState"),
])
def test_malformed_input_names_file_group_rule_field(text, where):
    with pytest.raises(ValidationError) as exc:
        import_rule_files([("bad.yml", text)])
    assert str(exc.value).startswith(where), str(exc.value)


def test_unknown_format_is_an_error():
    with pytest.raises(ValidationError, match="unknown format"):
        import_rule_files(_files("team.rules.yml"), "nagios")


# ---------------------------------------------------------------------------------------- round trip property
_names = st.sampled_from(["A", "B", "LatencyHigh", "ErrRate", "Disk"])


@st.composite
def user_rule_files(draw):
    """Hand-written-looking rule files: thresholds with the number on either side, optional severity pairs."""
    rules, seen = [], set()
    for _ in range(draw(st.integers(1, 4))):
        name = draw(_names)
        if name in seen:
            continue
        seen.add(name)
        cmp = draw(st.sampled_from([">", ">=", "<", "<="]))
        sel = draw(st.sampled_from(['m{job="a"}', "rate(req_total[5m])", 'sum by (job) (x{a="b"}) / 100']))
        a, b = sorted(draw(st.lists(st.integers(-50, 500), min_size=2, max_size=2, unique=True)))
        up = cmp in (">", ">=")
        pair = draw(st.booleans())
        levels = [("warning", a if up else b), ("critical", b if up else a)] if pair else \
            [(draw(st.sampled_from(["warning", "critical", None])), a)]
        common = {}
        if draw(st.booleans()):
            common["for"] = draw(st.sampled_from(["30s", "1m", "5m", "1h"]))
        if draw(st.booleans()):
            common["keep_firing_for"] = draw(st.sampled_from(["1m", "10m"]))
        team = draw(st.sampled_from([None, "web", "db"]))
        for sev, lvl in levels:
            flip = draw(st.booleans())
            rev = {">": "<", "<": ">", ">=": "<=", "<=": ">="}[cmp]
            expr = f"{lvl} {rev} {sel}" if flip else f"{sel} {cmp} {lvl}"
            labels = {k: v for k, v in (("severity", sev), ("team", team)) if v}
            rules.append({"alert": name, "expr": expr, **common, **({"labels": labels} if labels else {})})
    if draw(st.booleans()):
        rules.append({"record": "job:x:sum", "expr": "sum by (job) (x)"})
    if draw(st.booleans()):
        rules.append({"alert": "Down", "expr": "up == 0", "labels": {"severity": "critical"}})
    return {"groups": [{"name": "team", "rules": rules}]}


def _semantics(doc) -> dict:
    """Per (alert, severity): level, for, keep_firing_for, labels; carried rules as they are."""
    out = {}
    for g in doc["groups"]:
        for r in g["rules"]:
            key = (r.get("alert") or r.get("record"), (r.get("labels") or {}).get("severity"))
            t = parse_threshold(r["expr"]) if "alert" in r else "record"
            if isinstance(t, str):
                out[key] = r
            else:
                out[key] = (t.comparator, t.level, r.get("for", "0s"), r.get("keep_firing_for", "0s"),
                            r.get("labels") or {})
    return out


@pytest.mark.slow
@needs_promtool
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user_rule_files())
def test_round_trip_property_import_export(doc):
    text = yaml.safe_dump(doc, sort_keys=False)
    res = import_rule_files([("gen.yml", text)])
    exp = prometheus_export(res.rules, PromMapping(), carried=res.carried)
    check = check_rules(exp.to_yaml())
    assert check.ok, check.output
    assert _semantics(yaml.safe_load(exp.to_yaml())) == _semantics(doc)
    again = import_rule_files([("again.yml", exp.to_yaml())])
    assert [_no_interval(r) for r in again.rules] == [_no_interval(r) for r in res.rules]


# ---------------------------------------------------------------------------------------- policy and CLI
@pytest.fixture
def s(store):
    audit.install(store)
    return store


def _points(key: str, values) -> pd.DataFrame:
    ts = T0 + pd.to_timedelta(np.arange(len(values)) * 60, unit="s")
    return pd.DataFrame({"series": key, "ts": ts, "value": np.asarray(values, float)})


def test_import_becomes_the_policy_in_force_and_carried_rules_survive(s):
    plan = pol.plan_rule_import(s, _team(), now=T0)
    assert any("matches no stored series yet" in n for n in plan.notes)
    v1 = pol.import_rules(s, plan, user=ED, reason="bring our rules", now=T0)
    assert v1.status == "approved" and [r.name for r in v1.rules()] == ["DiskAlmostFull", "ErrorRatio", "HighLatency"]
    assert len(v1.meta["carried_rules"]) == 4
    # a tuning through apply (meta None) keeps them; so does a rollback
    tuned = [r if r.name != "DiskAlmostFull" else Rule.from_dict({**r.to_dict(), "critical": 8}) for r in v1.rules()]
    v2 = pol.apply(s, "default", tuned, base_version=1, user=ED, reason="tune", now=T0 + pd.Timedelta("1h"))
    assert v2.meta["carried_rules"] == v1.meta["carried_rules"]
    # policy YAML keeps them too
    rules, meta = policy_from_yaml(policy_to_yaml(v2.rules(), v2.meta))
    assert meta["carried_rules"] == v1.meta["carried_rules"]
    assert [r.to_dict() for r in rules] == [r.to_dict() for r in v2.rules()]


def test_merge_replaces_only_rules_of_the_same_name(s):
    pol.import_rules(s, pol.plan_rule_import(s, _team(), now=T0), user=ED, reason="team", now=T0)
    g = import_rule_files(_files("grafana_alerts.yaml"))
    plan = pol.plan_rule_import(s, g, merge=True, now=T0)
    assert [r.name for r in plan.rules] == ["ApdexLow", "CheckoutLatency", "DiskAlmostFull", "ErrorRatio",
                                            "HighLatency"]
    assert {c["name"] for c in plan.carried} == {"TargetDown", "NoScrapes", "CpuBusy", "job:errors:ratio5m",
                                                 "QueueDepthOutOfBand"}
    replace = pol.plan_rule_import(s, g, now=T0)
    assert [r.name for r in replace.rules] == ["ApdexLow", "CheckoutLatency"]
    assert [c["name"] for c in replace.carried] == ["QueueDepthOutOfBand"]


def test_imported_expression_replays_once_mapped_to_a_stored_series(s):
    """A rule imported as ratio > 0.02 replays when its series is set to a stored series; its PromQL is
    kept for the export."""
    er = next(r for r in _team().rules if r.name == "ErrorRatio")
    vals = [0.01] * 5 + [0.05] * 15 + [0.01] * 5
    s.write_points(_points('error_ratio{service="api"}', vals), name="x.csv", sha256="x" * 64, fmt="long")
    assert not er.matching(s.series_keys())
    mapped = Rule.from_dict({**er.to_dict(), "series": 'error_ratio{service="api"}', "interval": "1m"})
    rep = replay(mapped, s.get_points(['error_ratio{service="api"}']))
    ep = rep.alert_episodes()
    assert len(ep) == 1 and ep["start"][0] == T0 + pd.Timedelta("15min")   # breaches from 5m, for 10m
    doc = prometheus_export([mapped]).doc
    assert doc["groups"][0]["rules"][0]["expr"] == "(sum(rate(errors_total[5m])) / sum(rate(requests_total[5m]))) > 0.02"
    pv = pol.preview(s, "default", [mapped])
    assert list(pv.impact["series"]) == ['error_ratio{service="api"}']


@pytest.mark.slow
def test_cli_import_rules(tmp_path, monkeypatch, capsys):
    from core.__main__ import main

    db = str(tmp_path / "cli.duckdb")
    monkeypatch.setenv("STUDIO_USER", "ed@example.com")
    monkeypatch.setenv("STUDIO_ROLES", str(tmp_path / "none.toml"))
    team, graf = str(DATA / "team.rules.yml"), str(DATA / "grafana_alerts.yaml")
    assert main(["policy", "--db", db, "import-rules", team, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 tunable rules, 4 kept unchanged" in out and "dry run" in out
    assert main(["policy", "--db", db, "history"]) == 0 and "no versions" in capsys.readouterr().out
    assert main(["policy", "--db", db, "import-rules", team]) == 0
    assert main(["policy", "--db", db, "import-rules", graf, "--merge", "--format", "grafana"]) == 0
    out = capsys.readouterr().out
    assert "v2 created by ed@example.com: pending_approval" in out     # adds critical levels: approval as usual
    assert main(["policy", "--db", db, "export", "--format", "prometheus", "--version", "2",
                 "--out", str(tmp_path / "v2.yml")]) == 0
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: 'x >'\n")
    assert main(["policy", "--db", db, "import-rules", team, str(bad)]) == 2
    assert "bad.yml: group 'g', alert 'A'.expr" in capsys.readouterr().err
    out_file = tmp_path / "out.yml"
    assert main(["policy", "--db", db, "export", "--format", "prometheus", "--out", str(out_file)]) == 0
    assert "CheckoutLatency" not in out_file.read_text()                # v1 is in force until v2 is approved
    out_file = tmp_path / "v2.yml"
    doc = yaml.safe_load(out_file.read_text())
    names = {r.get("alert") or r.get("record") for g in doc["groups"] for r in g["rules"]}
    assert {"TargetDown", "job:errors:ratio5m", "HighLatency", "CheckoutLatency", "ApdexLow"} <= names
    assert main(["policy", "--db", db, "history"]) == 0
    assert "v3" not in capsys.readouterr().out                      # the bad import wrote nothing
    if promtool_binary():
        assert check_rules(out_file.read_text()).ok


@needs_promtool
def test_readme_examples_import_as_documented():
    import re

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "groups:" in b]
    assert len(blocks) == 2
    prom, graf = (import_rule_files([(f"readme{i}.yml", b)]) for i, b in enumerate(blocks))
    hl = next(r for r in prom.rules if r.name == "HighLatency")
    assert (hl.warning, hl.critical, hl.labels) == (450.0, 900.0, {"team": "web"})
    assert [c["name"] for c in prom.carried] == ["job:errors:ratio5m"]
    (cl,) = graf.rules
    assert (cl.comparator, cl.warning, cl.recovery, cl.missing) == (">", 500.0, 420.0, "nodata")
    for res in (prom, graf):
        assert check_rules(prometheus_export(res.rules, carried=res.carried).to_yaml()).ok
