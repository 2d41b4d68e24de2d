"""Policy files: the studio's YAML policy format and Prometheus alerting rules.

Policy YAML (schema ``threshold-studio/policy/v1``)::

    schema: threshold-studio/policy/v1
    policy: default                  # policy name (optional; default "default")
    description: Hand-set thresholds for the demo fleet
    detection: {evaluation_interval: 1m}     # free-form settings kept with the policy
    response:                                # free-form: who is told what, per severity
      warning: {notify: [slack:#sre]}
      critical: {notify: [pagerduty]}
    defaults: {for: 5m, missing: nodata}     # applied to every rule that does not set the field
    rules:
      - name: CheckoutLatencyHigh            # unique within the policy
        series: 'latency_p95_ms{service="checkout"}'   # a series key, or a glob ('cpu_pct{host="web-*"}')
        comparator: ">"                      # > >= < <=  (alert when value <comparator> threshold)
        warning: 450                         # at least one of warning / critical, in the series' unit
        critical: 900
        bounds: {min: 100, max: 3000}        # optional: thresholds must stay inside (tuning guard rail)
        for: 5m                              # duration: 30s, 5m, 1h30m, or a number of seconds
        keep_firing_for: 2m
        recovery: 400                        # optional hysteresis: clears only once past this value
        consecutive: 1                       # breaching samples in a row before pending starts
        missing: nodata                      # nodata | keep_last | resolve
        unit: ms
        labels: {team: checkout}             # added to the alert's labels
        severity_labels: {warning: ticket, critical: page}   # value of the severity label per level
        annotations: {summary: ..., rationale: why this threshold}

In memory a rule is the dict of :class:`core.rules.Rule` (durations as ``for_s`` and
``keep_firing_for_s`` in seconds); bounds live in the policy meta (``meta["bounds"][rule name]``).

Prometheus export writes one alerting rule per rule and severity (same ``alert`` name, different
``severity`` label, so Alertmanager can inhibit the warning while the critical fires), plus a
``<Name>NoData`` rule when ``missing: nodata``. ``keep_firing_for`` needs Prometheus 2.42 or later.
Prometheus has no hysteresis: ``recovery`` is stated in the description, not enforced.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from core.errors import ValidationError
from core.frame import parse_key

SCHEMA = "threshold-studio/policy/v1"
MISSING = ("nodata", "keep_last", "resolve")
SEVERITIES = ("warning", "critical")
TOP_KEYS = ("schema", "policy", "version", "description", "detection", "response", "defaults", "rules")
RULE_KEYS = ("name", "series", "comparator", "warning", "critical", "bounds", "for", "keep_firing_for",
             "recovery", "consecutive", "missing", "interval", "unit", "matchers", "labels", "severity_labels",
             "annotations")
DURATION_KEYS = ("for", "keep_firing_for", "interval")
DEFAULTABLE = ("comparator", "for", "keep_firing_for", "consecutive", "missing", "interval", "unit", "labels",
               "severity_labels")
_DUR_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d|w))+$")
_DUR_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# ---------------------------------------------------------------------------------------- durations
def parse_duration(value: Any, path: str) -> float:
    """Seconds from ``"5m"``, ``"1h30m"``, ``"90s"`` or a number of seconds. Raises ValidationError at ``path``."""
    if isinstance(value, bool):
        raise ValidationError(f"{value!r} is not a duration like 5m", path=path)
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValidationError(f"{value!r} is not a duration like 5m (must be >= 0 seconds)", path=path)
        return float(value)
    text = str(value).strip()
    if not _DUR_RE.match(text):
        raise ValidationError(f'"{value}" is not a duration like 5m (units ms, s, m, h, d, w: 30s, 5m, 1h30m)',
                              path=path)
    return float(sum(float(n) * _UNIT_S[u] for n, u in _DUR_PART.findall(text)))


def format_duration(seconds: float | None) -> str:
    """Prometheus-style duration: 300 -> ``5m``, 5400 -> ``1h30m``, 0 -> ``0s``."""
    if seconds is None:
        return "0s"
    ms = int(round(float(seconds) * 1000))
    if ms == 0:
        return "0s"
    out = []
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
                       ("ms", 1)):
        n, ms = divmod(ms, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)


# ---------------------------------------------------------------------------------------- YAML in
def _number(v: Any, path: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValidationError(f"{v!r} is not a finite number", path=path)
    return float(v)


def _parse_rule(raw: Any, i: int, defaults: Mapping[str, Any]) -> tuple[Any, dict[str, float] | None]:
    from core.rules import Rule

    p = f"rules[{i}]"
    if not isinstance(raw, Mapping):
        raise ValidationError(f"each rule must be a mapping with name, series and thresholds, not {raw!r}",
                              path=p)
    unknown = sorted(set(map(str, raw)) - set(RULE_KEYS))
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}; expected some of {sorted(RULE_KEYS)}",
                              path=f"{p}.{unknown[0]}")
    r = {**{k: v for k, v in defaults.items() if k in DEFAULTABLE}, **raw}
    bounds_raw = r.pop("bounds", None)
    for k in DURATION_KEYS:
        if k in r:
            r[k] = parse_duration(r[k], f"{p}.{k}")
    rule = Rule.from_dict(r, path=p)
    bounds = None
    if bounds_raw is not None:
        if not isinstance(bounds_raw, Mapping) or not bounds_raw or set(map(str, bounds_raw)) - {"min", "max"}:
            raise ValidationError("bounds must be a mapping with min and/or max", path=f"{p}.bounds")
        lo = _number(bounds_raw.get("min"), f"{p}.bounds.min")
        hi = _number(bounds_raw.get("max"), f"{p}.bounds.max")
        if lo is not None and hi is not None and lo >= hi:
            raise ValidationError(f"min {lo:g} must be below max {hi:g}", path=f"{p}.bounds")
        for lvl, v in rule.triggers().items():
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ValidationError(f"{v:g} is outside this rule's bounds [{lo}, {hi}]", path=f"{p}.{lvl}")
        bounds = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
    return rule, bounds


def policy_from_yaml(text: str) -> tuple[list[Any], dict[str, Any]]:
    """Parse a policy YAML into ``(rules, meta)``.

    ``rules`` are :class:`core.rules.Rule` objects; ``meta`` holds ``policy``, ``description``,
    ``detection``, ``response`` and ``bounds`` (rule name -> ``{min, max}``) when given. Raises
    :class:`ValidationError` whose ``path`` names the offending field, e.g. ``rules[2].for``.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        raise ValidationError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", path=where) from exc
    if not isinstance(doc, Mapping):
        raise ValidationError("a policy file must be a mapping with a 'rules' list", path="(top)")
    unknown = sorted(set(map(str, doc)) - set(TOP_KEYS))
    if unknown:
        raise ValidationError(f"unknown top-level field; expected some of {list(TOP_KEYS)}", path=unknown[0])
    schema = doc.get("schema", SCHEMA)
    if schema != SCHEMA:
        raise ValidationError(f"unsupported schema {schema!r}; this studio reads {SCHEMA!r}", path="schema")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise ValidationError("defaults must be a mapping of rule fields", path="defaults")
    bad = sorted(set(map(str, defaults)) - set(DEFAULTABLE))
    if bad:
        raise ValidationError(f"{bad[0]!r} cannot have a default; expected some of {list(DEFAULTABLE)}",
                              path=f"defaults.{bad[0]}")
    for k in DURATION_KEYS:
        if k in defaults:
            parse_duration(defaults[k], f"defaults.{k}")
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list):
        raise ValidationError("expected a list of rules", path="rules")
    rules, bounds = [], {}
    for i, raw in enumerate(raw_rules):
        rule, b = _parse_rule(raw, i, defaults)
        rules.append(rule)
        if b:
            bounds[rule.name] = b
    from core.policy import normalise_rules  # names present and unique

    normalise_rules(rules)
    meta: dict[str, Any] = {}
    for k in ("policy", "description", "detection", "response"):
        if doc.get(k) is not None:
            meta[k] = doc[k]
    if bounds:
        meta["bounds"] = bounds
    return rules, meta


# ---------------------------------------------------------------------------------------- YAML out
def _rule_obj(r: Any) -> Any:
    from core.rules import Rule

    if isinstance(r, Rule):
        return r
    from core.policy import rule_to_dict

    return Rule.from_dict(rule_to_dict(r), path="rules")


def _clean_num(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def policy_to_yaml(rules: Iterable[Any], meta: Mapping[str, Any] | None = None) -> str:
    """The policy as YAML in the documented schema; :func:`policy_from_yaml` reads it back unchanged."""
    meta = dict(meta or {})
    bounds = meta.get("bounds") or {}
    doc: dict[str, Any] = {"schema": SCHEMA}
    for k in ("policy", "description", "detection", "response"):
        if meta.get(k) is not None:
            doc[k] = meta[k]
    out = []
    for rule in sorted((_rule_obj(x) for x in rules), key=lambda r: r.name):
        d = rule.to_dict()
        y: dict[str, Any] = {}
        for k, v in d.items():
            y[k] = _clean_num(v)
            if k == "critical" or (k == "warning" and "critical" not in d):
                if rule.name in bounds:
                    y["bounds"] = {bk: _clean_num(bv) for bk, bv in bounds[rule.name].items()}
        out.append(y)
    doc["rules"] = out
    header = ("# threshold studio policy (schema threshold-studio/policy/v1); fields are documented in "
              "core/export.py.\n# Import with: python -m core policy import FILE --reason '...'\n")
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110)


# ---------------------------------------------------------------------------------------- Prometheus
_RE_SPECIAL = set("\\.^$*+?()[]{}|")


def _glob_to_regex(glob: str) -> str:
    """RE2 regex (as Prometheus anchors it) for a shell glob: ``*`` any run, ``?`` one character."""
    out = []
    for ch in glob:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch in _RE_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _prom_quote(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@dataclass(frozen=True)
class PromMapping:
    """How studio series map to PromQL.

    Parameters
    ----------
    selectors : dict
        Series key (or the rule's ``series`` glob) -> PromQL selector or expression, e.g.
        ``{'latency_p95_ms{service="checkout"}': 'histogram_quantile(0.95, sum by (le) (rate(
        http_request_duration_seconds_bucket{service="checkout"}[5m]))) * 1000'}``. Unlisted keys are used
        as selectors as they are (a key is already ``name{label="value"}``); globs in label values become
        ``=~`` regex matchers and a glob in the name a ``__name__=~`` matcher.
    group : str, optional
        Rule group name; default ``threshold-studio-<policy>``.
    scrape_interval_s : float
        Seconds between samples, to turn ``consecutive: N`` into ``for`` (N-1 intervals) when longer.
    lookback : str
        Window for ``missing: keep_last`` (``last_over_time``) and ``nodata`` (``absent_over_time``)
        when ``for`` is shorter.
    extra_labels : dict
        Labels added to every alert (e.g. ``{"source": "threshold-studio"}``).
    """

    selectors: Mapping[str, str] = field(default_factory=dict)
    group: str | None = None
    scrape_interval_s: float = 60.0
    lookback: str = "10m"
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    def selector(self, series: str, matchers: Mapping[str, str] | None = None) -> str:
        """PromQL selector for a rule's ``series`` (key or glob) and extra label ``matchers``."""
        if series in self.selectors:
            return self.selectors[series]
        name, labels = parse_key(series)
        if not labels and "{" in series and not series.endswith("{}"):
            raise ValidationError(f"{series!r} is not a series key like name{{label=\"value\"}}; add it to the "
                                  "Prometheus mapping", path="series")
        labels = {**labels, **dict(matchers or {})}
        globby = any(c in name for c in "*?")
        parts = []
        if globby:
            parts.append(f"__name__=~{_prom_quote(_glob_to_regex(name))}")
        for k, v in labels.items():
            if v == "*":  # any value: the label must be present (an empty label is an absent one)
                parts.append(f'{k}=~".+"')
            elif any(c in v for c in "*?"):
                parts.append(f"{k}=~{_prom_quote(_glob_to_regex(v))}")
            else:
                parts.append(f"{k}={_prom_quote(v)}")
        if globby:
            return "{" + ",".join(parts) + "}"
        return name + ("{" + ",".join(parts) + "}" if parts else "")


_ALERT_NAME_BAD = re.compile(r"[^A-Za-z0-9_]")


def _alert_name(name: str) -> str:
    n = _ALERT_NAME_BAD.sub("_", name)
    return n if re.match(r"[A-Za-z_]", n) else f"_{n}"


def _num(v: float) -> str:
    return format(float(v), ".15g")


def prometheus_rules(rules: Iterable[Any], mapping: PromMapping | None = None, *, policy: str = "default",
                     version: int | None = None) -> dict[str, Any]:
    """Prometheus alerting rules as a dict (``{"groups": [...]}``); see :func:`to_prometheus_yaml`."""
    m = mapping or PromMapping()
    lookback_s = parse_duration(m.lookback, "lookback")
    out = []
    origin = f"threshold studio policy {policy!r}" + (f" v{version}" if version is not None else "")
    for r in sorted((_rule_obj(x) for x in rules), key=lambda x: x.name):
        sel = m.selector(r.series, r.matchers)
        # N consecutive breaching samples ~ breaching for (N-1) scrape intervals
        for_s = max(float(r.for_s), (r.consecutive - 1) * m.scrape_interval_s)
        window = m.lookback if for_s <= lookback_s else format_duration(for_s)
        value_expr = f"last_over_time({sel}[{window}])" if r.missing == "keep_last" else sel
        user_ann = dict(r.annotations)
        rationale = user_ann.pop("rationale", None)
        unit = f" {r.unit}" if r.unit else ""
        name = _alert_name(r.name)
        base_labels = {**dict(m.extra_labels), **dict(r.labels)}
        for lvl, thr in r.triggers().items():
            desc = [f"{r.series} {r.comparator} {_num(thr)}{unit} for {format_duration(for_s)} ({lvl})."]
            if rationale:
                desc.append(f"Rationale: {rationale}")
            if r.recovery is not None:
                desc.append(f"Studio recovery level {_num(r.recovery)}{unit} (hysteresis) is not enforced by "
                            "Prometheus; keep_firing_for holds the alert instead.")
            desc.append(f"Exported from {origin}.")
            rule: dict[str, Any] = {"alert": name, "expr": f"{value_expr} {r.comparator} {_num(thr)}"}
            if for_s > 0:
                rule["for"] = format_duration(for_s)
            if r.keep_firing_for_s:
                rule["keep_firing_for"] = format_duration(r.keep_firing_for_s)
            rule["labels"] = {**base_labels, "severity": r.label_for(lvl)}
            rule["annotations"] = {"summary": f"{r.name}: {r.series} {r.comparator} {_num(thr)}{unit}",
                                   **user_ann, "description": " ".join(desc)}
            out.append(rule)
        if r.missing == "nodata":
            out.append({
                "alert": f"{name}NoData", "expr": f"absent_over_time({sel}[{window}])",
                "labels": {**base_labels, "severity": r.label_for("warning")},
                "annotations": {"summary": f"{r.name}: no data for {r.series}",
                                "description": f"No samples of {r.series} in the last {window}; the rule "
                                               f"cannot be evaluated. Exported from {origin}."},
            })
    return {"groups": [{"name": m.group or f"threshold-studio-{policy}", "rules": out}]}


def to_prometheus_yaml(rules: Iterable[Any], mapping: PromMapping | None = None, *, policy: str = "default",
                       version: int | None = None) -> str:
    """Prometheus alerting rules file (load with ``rule_files:``; check with ``promtool check rules``)."""
    doc = prometheus_rules(rules, mapping, policy=policy, version=version)
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)
