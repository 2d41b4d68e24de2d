"""The studio's policy file: YAML in and out (Prometheus rule files are :mod:`core.alerting.prometheus`).

Policy YAML (schema ``threshold-studio/policy/v1``)::

    schema: threshold-studio/policy/v1
    policy: default                  # policy name (optional; default "default")
    description: Hand-set thresholds for the demo fleet
    detection: {evaluation_interval: 1m}     # free-form settings kept with the policy
    response:                                # free-form: who is told what, per severity
      warning: {notify: [slack:#sre]}
      critical: {notify: [pagerduty]}
    rollback_triggers: {mode: propose, storm_factor: 3}   # optional (core/policy/trigger_config.py)
    defaults: {for: 5m, missing: nodata}     # applied to every rule that does not set the field
    rules:
      - name: CheckoutLatencyHigh            # unique within the policy
        series: 'latency_p95_ms{service="checkout"}'   # a series key, or a glob ('cpu_pct{host="web-*"}')
        comparator: ">"                      # > >= < <=  (alert when value <comparator> threshold)
        warning: 450                         # at least one of warning / critical, in the series' unit
        critical: 900
        limits: {min: 100, max: 3000, max_change: 0.2, stability: 7d}   # optional change limits: levels stay
                                             # in [min, max]; a recommendation moves a level at most 20 %
                                             # per apply and never reverses the last change within 7 days
        for: 5m                              # duration: 30s, 5m, 1h30m, or a number of seconds
        keep_firing_for: 2m
        recovery: 400                        # optional hysteresis: clears only once past this value
        consecutive: 1                       # breaching samples in a row before pending starts
        missing: nodata                      # nodata | keep_last | resolve
        unit: ms
        labels: {team: checkout}             # added to the alert's labels
        severity_labels: {warning: ticket, critical: page}   # value of the severity label per level
        annotations: {summary: ..., rationale: why this threshold}
        promql: 'sum(rate(errors_total[5m])) / sum(rate(requests_total[5m]))'  # optional: the PromQL the
                                             # Prometheus export compares (the replay uses `series`)
    carried_rules:                           # optional: imported rules the studio cannot tune, kept
      - {source: prometheus, group: g, interval: 1m, rule: {record: ..., expr: ...}}  # and exported as they came

In memory a rule is the dict of :class:`core.alerting.rules.Rule` (durations as ``for_s`` and
``keep_firing_for_s`` in seconds). The older spelling ``bounds: {min, max}`` is read into the rule's
``limits`` (it may not repeat a limit given there); policies stored before ``limits`` existed keep
theirs in the policy meta (``meta["bounds"][rule name]``), which is written back out as ``bounds``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from core.alerting.rules import Rule, as_rule, normalise_rules, parse_duration
from core.errors import ValidationError
from core.policy.trigger_config import trigger_config

SCHEMA = "threshold-studio/policy/v1"
MISSING = ("nodata", "keep_last", "resolve")
SEVERITIES = ("warning", "critical")
TOP_KEYS = ("schema", "policy", "version", "description", "detection", "response", "defaults", "rules",
            "carried_rules", "rollback_triggers")
RULE_KEYS = ("name", "series", "comparator", "warning", "critical", "bounds", "limits", "for", "keep_firing_for",
             "recovery", "consecutive", "missing", "interval", "unit", "matchers", "labels", "severity_labels",
             "annotations", "promql")
DURATION_KEYS = ("for", "keep_firing_for", "interval")
DEFAULTABLE = ("comparator", "for", "keep_firing_for", "consecutive", "missing", "interval", "unit", "labels",
               "severity_labels")
# Prometheus' duration syntax (model.ParseDuration): whole numbers, units y w d h m s ms, largest first.

# ---------------------------------------------------------------------------------------- YAML in
def _number(v: Any, path: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValidationError(f"{v!r} is not a finite number", path=path)
    return float(v)


def _parse_rule(raw: Any, i: int, defaults: Mapping[str, Any]) -> Any:
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
            r[k] = parse_duration(r[k], path=f"{p}.{k}")
    if bounds_raw is not None:          # the older spelling of limits.min / limits.max
        if not isinstance(bounds_raw, Mapping) or not bounds_raw or set(map(str, bounds_raw)) - {"min", "max"}:
            raise ValidationError("bounds must be a mapping with min and/or max", path=f"{p}.bounds")
        limits = r.get("limits") or {}
        if not isinstance(limits, Mapping):
            raise ValidationError("limits must be a mapping of min, max, max_change, stability", path=f"{p}.limits")
        both = sorted(set(map(str, bounds_raw)) & set(map(str, limits)))
        if both:
            raise ValidationError(f"{both[0]} is given in both bounds and limits; keep it in limits",
                                  path=f"{p}.bounds.{both[0]}")
        for k, v in bounds_raw.items():
            _number(v, f"{p}.bounds.{k}")
        r["limits"] = {**dict(limits), **dict(bounds_raw)}
    return Rule.from_dict(r, path=p)


def policy_from_yaml(text: str, source: str | None = None) -> tuple[list[Any], dict[str, Any]]:
    """Parse a policy YAML into ``(rules, meta)``.

    ``rules`` are :class:`core.rules.Rule` objects (change limits, and ``bounds``, in their
    ``limits``); ``meta`` holds ``policy``, ``description``, ``detection`` and ``response`` when given. Raises
    :class:`ValidationError` whose ``path`` names the offending field, e.g. ``rules[2].for``; with
    ``source`` (the file name) the message starts with it:
    ``"alerts.yaml: rules[0].warning: expected a number, got 'abc'"``.
    """
    try:
        return _policy_from_yaml(text)
    except ValidationError as exc:
        if not source:
            raise
        err = ValidationError(exc.reason, path=exc.path)
        err.args = (f"{source}: {exc}",)
        err.source = source  # type: ignore[attr-defined]
        raise err from exc


def _policy_from_yaml(text: str) -> tuple[list[Any], dict[str, Any]]:
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
            parse_duration(defaults[k], path=f"defaults.{k}")
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list):
        raise ValidationError("expected a list of rules", path="rules")
    rules = [_parse_rule(raw, i, defaults) for i, raw in enumerate(raw_rules)]
    normalise_rules(rules)
    meta: dict[str, Any] = {}
    for k in ("policy", "description", "detection", "response", "rollback_triggers"):
        if doc.get(k) is not None:
            meta[k] = doc[k]
    trigger_config(meta)   # a bad rollback_triggers block is refused here, naming the field
    carried = doc.get("carried_rules")
    if carried is not None:
        if not isinstance(carried, list) or not all(isinstance(c, Mapping) and isinstance(c.get("rule"), Mapping)
                                                    for c in carried):
            raise ValidationError("expected a list of {source, group, interval, rule} mappings (the rules "
                                  "imported as not tunable)", path="carried_rules")
        meta["carried_rules"] = [dict(c) for c in carried]
    return rules, meta


# ---------------------------------------------------------------------------------------- YAML out
def _clean_num(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def policy_to_yaml(rules: Iterable[Any], meta: Mapping[str, Any] | None = None) -> str:
    """The policy as YAML in the documented schema; :func:`policy_from_yaml` reads it back unchanged."""
    meta = dict(meta or {})
    bounds = meta.get("bounds") or {}
    doc: dict[str, Any] = {"schema": SCHEMA}
    for k in ("policy", "description", "detection", "response", "rollback_triggers"):
        if meta.get(k) is not None:
            doc[k] = meta[k]
    out = []
    for rule in sorted((as_rule(x) for x in rules), key=lambda r: r.name):
        d = rule.to_dict()
        y: dict[str, Any] = {}
        for k, v in d.items():
            y[k] = _clean_num(v)
            if k == "critical" or (k == "warning" and "critical" not in d):
                if rule.name in bounds and not ({"min", "max"} & set(rule.limits)):     # older policies
                    y["bounds"] = {bk: _clean_num(bv) for bk, bv in bounds[rule.name].items()}
        out.append(y)
    doc["rules"] = out
    if meta.get("carried_rules"):
        doc["carried_rules"] = list(meta["carried_rules"])
    header = ("# threshold studio policy (schema threshold-studio/policy/v1); fields are documented in "
              "core/policy/policy_yaml.py.\n# Import with: python -m core policy import FILE --reason '...'\n")
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110)
