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

Prometheus export (:func:`prometheus_export`) writes one alerting rule per rule and severity (same
``alert`` name, different ``severity`` label, so Alertmanager can inhibit the warning while the
critical fires), plus a ``<Name>NoData`` rule when ``missing: nodata``. It reproduces the replay:
``for`` is ``for + (consecutive - 1) x interval`` and the group's ``interval:`` is that evaluation
interval. Prometheus has no hysteresis, so a ``recovery`` level is emulated in the expression through
the alert's own ``ALERTS`` series: for ``>``, ``(V > T) or (V >= R and ignoring(<alert labels>)
ALERTS{alertname="X", alertstate="firing", <alert labels>})``. Caveats: after a Prometheus restart the
previous ``ALERTS`` sample is gone, so an alert held only by hysteresis resolves once; the
``<Name>NoData`` alert fires once the series has had no sample for the whole window (the lookback, or
the effective ``for`` if longer), so a shorter gap raises no NoData alert; and what else the export cannot reproduce for a given rule and mapping is
returned in :attr:`PromExport.warnings`. Missing data is "condition false" in both (``keep_firing_for``
holds a firing alert across a gap), and ``keep_last`` carries a value for the same window
(:attr:`PromMapping.lookback`; replay it with ``lookback_s=``). ``keep_firing_for`` needs
Prometheus 2.42 or later.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from core.errors import ValidationError
from core.frame import parse_key
from core.rules import format_duration, parse_duration

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
# Prometheus' duration syntax (model.ParseDuration): whole numbers, units y w d h m s ms, largest first.
PROM_DURATION = re.compile(r"^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?$")


# ---------------------------------------------------------------------------------------- durations
# Durations are read and written by core.rules (one parser for Rule.from_dict, YAML import and export).
def prom_duration(seconds: float) -> str:
    """Seconds as a Prometheus duration (``for:``, ``interval:``, range windows), via
    :func:`core.rules.format_duration`: 300 -> ``5m``, 604800 -> ``7d``, 61.5 -> ``1m1s500ms``.

    Prometheus accepts only whole numbers of each unit (``1.5s`` is an error), so the value is rounded
    to whole milliseconds (Prometheus' resolution) and a fraction of a second is written in ``ms``.
    """
    ms = int(round(float(seconds) * 1000))
    if ms < 0:
        raise ValidationError(f"cannot write {seconds!r} as a Prometheus duration; expected seconds >= 0",
                              path="duration")
    whole, rest = divmod(ms, 1000)
    text = format_duration(whole) if whole else ""
    if rest:
        text += f"{rest}ms"
    text = text or "0s"
    if not PROM_DURATION.match(text):  # format_duration changed its style: fail loudly, not in Prometheus
        raise ValidationError(f"{text!r} (from {seconds!r} s) is not a Prometheus duration", path="duration")
    return text


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
            r[k] = parse_duration(r[k], path=f"{p}.{k}")
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


def policy_from_yaml(text: str, source: str | None = None) -> tuple[list[Any], dict[str, Any]]:
    """Parse a policy YAML into ``(rules, meta)``.

    ``rules`` are :class:`core.rules.Rule` objects; ``meta`` holds ``policy``, ``description``,
    ``detection``, ``response`` and ``bounds`` (rule name -> ``{min, max}``) when given. Raises
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


# A plain PromQL vector selector: ``name``, ``name{matchers}`` or ``{matchers}`` (at least one matcher).
# Only such a selector may take a range (``sel[10m]``); anything else needs a subquery ``(expr)[10m:1m]``.
_PROM_NAME = r"[A-Za-z_:][A-Za-z0-9_:]*"
_PROM_STR = r'"(?:[^"\\]|\\.)*"'
_PROM_MATCHER = rf"\s*[A-Za-z_][A-Za-z0-9_]*\s*(?:=~|!~|!=|=)\s*{_PROM_STR}\s*"
_PROM_MATCHERS = rf"{_PROM_MATCHER}(?:,{_PROM_MATCHER})*,?\s*"
VECTOR_SELECTOR = re.compile(rf"\s*(?:{_PROM_NAME}\s*(?:\{{\s*(?:{_PROM_MATCHERS})?\}})?|\{{{_PROM_MATCHERS}\}})\s*")
_PROM_KEYWORDS = re.compile(r"\b(?:and|or|unless|bool)\b")


def is_vector_selector(text: str) -> bool:
    """Whether ``text`` is a plain PromQL vector selector (``m``, ``m{a="b"}``, ``{__name__=~"m.*"}``).

    A range (``[5m]``) may follow only such a selector; an expression needs a subquery.
    """
    return VECTOR_SELECTOR.fullmatch(str(text)) is not None


def _top_level(expr: str) -> str:
    """The characters of ``expr`` outside brackets and string literals (to spot top-level operators)."""
    out, depth, quote, esc = [], 0, "", False
    for ch in expr:  # a selector is a short string, not a hot path
        if quote:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _operand(expr: str) -> str:
    """``expr`` ready to sit left of a comparison: wrapped in parentheses unless it is a selector or a
    single call (``sum(...)``, ``sum by (le) (...)``) with no top-level operator."""
    expr = expr.strip()
    if is_vector_selector(expr):
        return expr
    top = _top_level(expr)
    if any(c in top for c in "+-*/%^<>=!") or _PROM_KEYWORDS.search(top):
        return f"({expr})"
    return expr


def _range(sel: str, window: str, step: str) -> str:
    """A range vector over ``window``: ``sel[window]`` for a plain selector, else the subquery
    ``(expr)[window:step]`` evaluated every ``step``."""
    sel = sel.strip()
    if is_vector_selector(sel):
        return f"{sel}[{window}]"
    return f"({sel})[{window}:{step}]"


@dataclass(frozen=True)
class PromMapping:
    """How studio series map to PromQL, and how often Prometheus evaluates the rules.

    Parameters
    ----------
    selectors : dict
        Series key (or the rule's ``series`` glob) -> PromQL selector or expression, e.g.
        ``{'latency_p95_ms{service="checkout"}': 'histogram_quantile(0.95, sum by (le) (rate(
        http_request_duration_seconds_bucket{service="checkout"}[5m]))) * 1000'}``. Unlisted keys are used
        as selectors as they are (a key is already ``name{label="value"}``); globs in label values become
        ``=~`` regex matchers and a glob in the name a ``__name__=~`` matcher. An expression (anything but
        a plain vector selector) is wrapped in parentheses where needed and, where a range is needed,
        turned into a subquery ``(expr)[window:interval]``.
    group : str, optional
        Rule group name; default ``threshold-studio-<policy>``. Rules with their own ``interval`` go to
        a group per interval, named ``<group>-<interval>``.
    scrape_interval_s : float
        Seconds between samples (default 60). It is also the evaluation interval unless
        ``evaluation_interval_s`` is given: the studio replays a rule without ``interval`` at the
        series' resolution, so evaluating at the scrape interval is what the replay assumed.
    evaluation_interval_s : float, optional
        Seconds between rule evaluations for rules without their own ``interval`` (written as the
        group's ``interval:``); default ``scrape_interval_s``.
    lookback : str
        Window for ``missing: keep_last`` (``last_over_time``) and ``nodata`` (``absent_over_time``)
        when the effective ``for`` is shorter (a duration > 0 such as ``10m``, or seconds; default
        ``10m``). The replay carries a
        ``keep_last`` value for as long, given the same lookback: pass :attr:`lookback_s` as
        ``core.replay.replay(..., lookback_s=)`` / ``sweep`` and this mapping to
        ``core.policy.preview(..., mapping=)``.
    extra_labels : dict
        Labels added to every alert (e.g. ``{"source": "threshold-studio"}``).
    """

    selectors: Mapping[str, str] = field(default_factory=dict)
    group: str | None = None
    scrape_interval_s: float = 60.0
    lookback: str = "10m"
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    evaluation_interval_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("scrape_interval_s", "evaluation_interval_s"):
            v = getattr(self, name)
            if v is None and name == "evaluation_interval_s":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValidationError(f"{v!r} is not an interval; expected seconds > 0", path=name)
        if parse_duration(self.lookback, path="lookback") <= 0:
            raise ValidationError(f"{self.lookback!r} is not a lookback window; expected a duration > 0 "
                                  "like 10m", path="lookback")

    @property
    def lookback_s(self) -> float:
        """:attr:`lookback` in seconds (what ``core.replay.replay(..., lookback_s=)`` takes)."""
        return parse_duration(self.lookback, path="lookback")

    @property
    def interval_s(self) -> float:
        """Evaluation interval (seconds) of rules that do not set their own."""
        return float(self.evaluation_interval_s if self.evaluation_interval_s is not None
                     else self.scrape_interval_s)

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
_PROM_LOOKBACK_S = 300.0  # Prometheus' default query lookback (--query.lookback-delta)


def _alert_name(name: str) -> str:
    n = _ALERT_NAME_BAD.sub("_", name)
    return n if re.match(r"[A-Za-z_]", n) else f"_{n}"


def _alert_names(rules: Sequence[Any]) -> dict[str, str]:
    """Rule name -> alert name; raises ValidationError when two rules (or a rule and another rule's
    ``<Name>NoData`` alert) would share an alert name, naming both rules."""
    owner: dict[str, str] = {}
    out: dict[str, str] = {}
    for r in rules:
        base = _alert_name(r.name)
        out[r.name] = base
        mine = [base] + ([f"{base}NoData"] if r.missing == "nodata" else [])
        for n in mine:
            if n in owner:
                raise ValidationError(
                    f"rules {owner[n]!r} and {r.name!r} would both export as Prometheus alert {n!r} (alert "
                    "names keep only letters, digits and _); rename one of them", path=f"rules.{r.name}.name")
            owner[n] = r.name
    return out


def _num(v: float) -> str:
    return format(float(v), ".15g")


def _hysteresis_expr(value: str, r: Any, thr: float, alert: str, labels: Mapping[str, str]) -> str:
    """Threshold expression that, once the alert fires, keeps holding until the value crosses
    ``r.recovery``: ``(V > T) or (V >= R and ignoring(...) ALERTS{alertname, alertstate="firing", labels})``.

    ``ALERTS`` at an evaluation holds the alert's state from the previous one (the rule writes its own
    sample only after it is evaluated), so this is the replay's ``fire or (was firing and hold)``.
    The alert's series carry the selector's labels (without ``__name__``) overwritten by the rule's
    labels, so matching ignores exactly the names the alert adds; the ``ALERTS`` matchers pin this
    rule and level (the severity label differs between levels).
    """
    up = r.comparator in (">", ">=")
    hold = ">=" if up else "<="
    sel = {"alertname": alert, "alertstate": "firing", **dict(labels)}
    alerts = "ALERTS{" + ",".join(f"{k}={_prom_quote(str(v))}" for k, v in sel.items()) + "}"
    ignored = ", ".join(["alertname", "alertstate", *sorted(labels)])
    return (f"({value} {r.comparator} {_num(thr)}) or "
            f"({value} {hold} {_num(r.recovery)} and ignoring({ignored}) {alerts})")


def _staleness_warning(r: Any, alert: str, scrape_s: float, window_s: float) -> str | None:
    """Why samples ``scrape_s`` apart are too sparse for how the export reads them (None: they are not).

    The replay judges a sample until the next one arrives (each evaluation sees the newest sample
    within ``max(interval, step)``). Prometheus sees a plain selector's newest sample only within its
    query lookback (5m), and ``last_over_time`` / ``absent_over_time`` only within their ``window_s``;
    with samples further apart, the expression returns nothing between them, so the condition is
    false there (pending restarts, ``for`` may never be reached) and the ``NoData`` alert fires.
    """
    if r.missing == "keep_last":
        reach, how = window_s, f"last_over_time window ({prom_duration(window_s)})"
    else:
        reach, how = _PROM_LOOKBACK_S, f"query lookback ({prom_duration(_PROM_LOOKBACK_S)})"
    if scrape_s <= reach:
        return None
    msg = (f"{r.name}: samples arrive every {prom_duration(scrape_s)} (the mapping's scrape interval), "
           f"longer than Prometheus' {how}, so between samples the rule sees no data and its condition is "
           "false")
    if r.missing == "nodata" and scrape_s > window_s:
        msg += f", and {alert}NoData fires (no sample in {prom_duration(window_s)})"
    return msg + "; the replay judges each sample until the next one arrives"


@dataclass(frozen=True)
class PromExport:
    """Prometheus alerting rules plus what the export could not reproduce exactly.

    Attributes
    ----------
    doc : dict
        ``{"groups": [...]}``, ready for ``yaml.safe_dump``.
    warnings : tuple of str
        Where Prometheus will behave differently from the studio's replay of the same rule (for the UI
        to show, and written as comments at the top of the YAML). Empty when the rules match the replay.
    """

    doc: dict[str, Any]
    warnings: tuple[str, ...] = ()

    def to_yaml(self) -> str:
        head = "".join(f"# WARNING: {w}\n" for w in self.warnings)
        return head + yaml.safe_dump(self.doc, sort_keys=False, allow_unicode=True, width=1000)


def prometheus_export(rules: Iterable[Any], mapping: PromMapping | None = None, *, policy: str = "default",
                      version: int | None = None) -> PromExport:
    """Prometheus alerting rules for ``rules``, matching the studio's replay (:mod:`core.replay`).

    * Timing: the replay fires after ``for + (consecutive - 1) x interval`` of breaching (pending starts
      at the N-th breach), so each alert's ``for`` is exactly that, with ``interval`` the rule's own or
      the mapping's evaluation interval; the group's ``interval:`` is set to it so Prometheus evaluates
      at the cadence the replay assumed (one group per distinct interval).
    * Hysteresis (``recovery``) is emulated in the expression through the alert's own ``ALERTS`` series
      (see :func:`_hysteresis_expr`).
    * Missing data: an evaluation without a sample is "condition false", as in the replay
      (``keep_firing_for`` holds a firing alert across the gap). ``keep_last`` reads
      ``last_over_time`` over ``max(lookback, for)``, the window the replay carries a value for;
      ``nodata`` adds a ``<Name>NoData`` alert on ``absent_over_time`` over that window. A mapped
      expression gets a subquery.
    * Warnings (:attr:`PromExport.warnings`): hysteresis on an interval longer than Prometheus' 5m
      query lookback (``ALERTS`` is not seen), and samples (the mapping's scrape interval) further
      apart than the lookback or window the expression reads them with.

    Raises :class:`ValidationError` when two rules would share an alert name, or when a rule's warning
    and critical levels carry the same severity label (the two alerts could not be told apart).
    """
    m = mapping or PromMapping()
    lookback_s = m.lookback_s
    objs = sorted((_rule_obj(x) for x in rules), key=lambda x: x.name)
    names = _alert_names(objs)
    origin = f"threshold studio policy {policy!r}" + (f" v{version}" if version is not None else "")
    by_interval: dict[float, list[dict[str, Any]]] = {}
    warnings: list[str] = []
    for r in objs:
        trig = r.triggers()
        if len(trig) == 2 and r.label_for("warning") == r.label_for("critical"):
            raise ValidationError(f"warning and critical of {r.name!r} both carry severity "
                                  f"{r.label_for('warning')!r}; the two alerts could not be told apart",
                                  path=f"rules.{r.name}.severity_labels")
        iv = float(r.interval_s) if r.interval_s else m.interval_s
        step = prom_duration(iv)
        sel = m.selector(r.series, r.matchers)
        for_s = float(r.for_s) + (r.consecutive - 1) * iv
        window = prom_duration(max(lookback_s, for_s))
        value = f"last_over_time({_range(sel, window, step)})" if r.missing == "keep_last" else _operand(sel)
        user_ann = dict(r.annotations)
        rationale = user_ann.pop("rationale", None)
        unit = f" {r.unit}" if r.unit else ""
        name = names[r.name]
        base_labels = {**dict(m.extra_labels), **dict(r.labels)}
        timing = f"for {prom_duration(for_s)}"
        if r.consecutive > 1:
            timing += (f" ({r.consecutive} consecutive evaluations {step} apart, then for "
                       f"{prom_duration(r.for_s)})")
        if r.recovery is not None and iv > _PROM_LOOKBACK_S:
            warnings.append(f"{r.name}: hysteresis reads the alert's previous state from ALERTS, which "
                            f"Prometheus looks back only 5m for; the {step} interval is longer, so the "
                            "recovery level may not hold the alert")
        stale = _staleness_warning(r, names[r.name], m.scrape_interval_s, max(lookback_s, for_s))
        if stale:
            warnings.append(stale)
        out = by_interval.setdefault(iv, [])
        for lvl, thr in trig.items():
            labels = {**base_labels, "severity": r.label_for(lvl)}
            desc = [f"{r.series} {r.comparator} {_num(thr)}{unit} {timing} ({lvl})."]
            if rationale:
                desc.append(f"Rationale: {rationale}")
            if r.recovery is None:
                expr = f"{value} {r.comparator} {_num(thr)}"
            else:
                expr = _hysteresis_expr(value, r, thr, name, labels)
                side = "below" if r.comparator in (">", ">=") else "above"
                desc.append(f"Once firing it holds until the value goes {side} the recovery level "
                            f"{_num(r.recovery)}{unit} (hysteresis, through ALERTS).")
            desc.append(f"Exported from {origin}.")
            rule: dict[str, Any] = {"alert": name, "expr": expr}
            if for_s > 0:
                rule["for"] = prom_duration(for_s)
            if r.keep_firing_for_s:
                rule["keep_firing_for"] = prom_duration(r.keep_firing_for_s)
            rule["labels"] = labels
            rule["annotations"] = {"summary": f"{r.name}: {r.series} {r.comparator} {_num(thr)}{unit}",
                                   **user_ann, "description": " ".join(desc)}
            out.append(rule)
        if r.missing == "nodata":
            out.append({
                "alert": f"{name}NoData", "expr": f"absent_over_time({_range(sel, window, step)})",
                "labels": {**base_labels, "severity": r.label_for("warning")},
                "annotations": {"summary": f"{r.name}: no data for {r.series}",
                                "description": f"No samples of {r.series} in the last {window}; the rule "
                                               f"cannot be evaluated. Exported from {origin}."},
            })
    if not by_interval:
        by_interval[m.interval_s] = []
    base = m.group or f"threshold-studio-{policy}"
    order = sorted(by_interval, key=lambda iv: (iv != m.interval_s, iv))
    groups = [{"name": base if iv == m.interval_s else f"{base}-{prom_duration(iv)}",
               "interval": prom_duration(iv), "rules": by_interval[iv]} for iv in order]
    return PromExport({"groups": groups}, tuple(warnings))


def prometheus_rules(rules: Iterable[Any], mapping: PromMapping | None = None, *, policy: str = "default",
                     version: int | None = None) -> dict[str, Any]:
    """Prometheus alerting rules as a dict (``{"groups": [...]}``); see :func:`prometheus_export`."""
    return prometheus_export(rules, mapping, policy=policy, version=version).doc


def to_prometheus_yaml(rules: Iterable[Any], mapping: PromMapping | None = None, *, policy: str = "default",
                       version: int | None = None) -> str:
    """Prometheus alerting rules file (load with ``rule_files:``; check with ``promtool check rules``).
    Export warnings (see :class:`PromExport`) are written as ``# WARNING:`` comments at the top."""
    return prometheus_export(rules, mapping, policy=policy, version=version).to_yaml()
