"""Import deployed Prometheus rule files as studio rules (and carry through what cannot be tuned).

A rule file (``groups: [{name, interval, rules: [...]}]``) is read rule by rule; each ``expr`` is
parsed with a real PromQL parser (``promql-parser``). An alert whose expression is
``EXPR <cmp> NUMBER`` (or ``NUMBER <cmp> EXPR``, turned round) with ``cmp`` one of ``> >= < <=`` is
*tunable*: the number is its level, ``EXPR`` its Prometheus mapping. The studio's own export forms
read back too: the hysteresis form ``(V > T) or (V >= R and ignoring(...) ALERTS{...})`` gives the
recovery level ``R``, ``last_over_time(V[w])`` the ``keep_last`` missing-data mode, and a
``<Name>NoData`` alert on ``absent_over_time(V[w])`` the ``nodata`` mode. Two alerts with the same name
whose ``severity`` labels differ become one rule with warning and critical levels (the level that
fires first is the warning; the label values are kept in ``severity_labels``).

Everything else (recording rules, ``absent()``, ``== 0``, comparisons with ``bool``, anything not a
plain threshold) is kept unchanged as a *carried* rule: ``{"source", "group", "interval", "rule",
"reason"}``, stored in the policy version's ``meta["carried_rules"]`` and exported again as it came
(:func:`core.alerting.prometheus.prometheus_export` ``carried=``).

A rule's ``series``: when ``EXPR`` is a plain selector with a metric name and ``=`` matchers only, the
series key it names (``name{label="value"}``), so it replays on stored data of that series; otherwise
the alert name as a placeholder key with ``promql`` set to ``EXPR`` (map it to a stored series to
replay it; the export keeps comparing ``EXPR``).

Malformed input raises :class:`ValidationError` naming the file, group, rule and field; nothing is
returned half-read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import promql_parser

from core.alerting.rules import Rule, parse_duration
from core.data.frame import make_key
from core.errors import ValidationError

CMP_TUNABLE = (">", ">=", "<", "<=")
_CMP_ALL = ("==", "!=", ">=", "<=", ">", "<")
_FLIP = {">": "<", "<": ">", ">=": "<=", "<=": ">="}
WARNING_WORDS = frozenset({"warning", "warn", "info", "ticket", "low", "minor", "notice"})
GROUP_KEYS = frozenset({"name", "interval", "rules", "limit", "query_offset", "labels"})
RULE_KEYS = frozenset({"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"})
STUDIO_MARK = "Exported from threshold studio"


# ---------------------------------------------------------------------------------------- PromQL
def _scan(text: str) -> list[tuple[int, int, str]]:
    """Top-level tokens of interest in PromQL text: ``(start, end, token)`` for comparison operators
    and the words ``and``/``or``/``unless`` outside brackets and string literals (in text order)."""
    out: list[tuple[int, int, str]] = []
    depth, i, n = 0, 0, len(text)
    while i < n:  # a rule expression is short text, not a hot path
        ch = text[i]
        if ch in "\"'`":
            j = i + 1
            while j < n and text[j] != ch:
                j += 2 if text[j] == "\\" and ch != "`" else 1
            i = j + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            two = text[i:i + 2]
            if two in ("==", "!=", ">=", "<="):
                out.append((i, i + 2, two))
                i += 2
                continue
            if ch in "<>":
                out.append((i, i + 1, ch))
            elif ch.isalpha() and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "_:")):
                j = i
                while j < n and (text[j].isalnum() or text[j] in "_:"):
                    j += 1
                word = text[i:j]
                if word.lower() in ("and", "or", "unless"):
                    out.append((i, j, word.lower()))
                i = j
                continue
        i += 1
    return out


def _strip_parens(text: str) -> str:
    """``text`` without parentheses that enclose all of it (``((a / b))`` -> ``a / b``)."""
    t = text.strip()
    while t.startswith("(") and t.endswith(")"):
        depth = 0
        for k, ch in enumerate(t):  # the enclosing pair must close at the very end
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and k < len(t) - 1:
                return t
        t = t[1:-1].strip()
    return t


def _parse(text: str, where: str) -> Any:
    try:
        return promql_parser.parse(text)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"not valid PromQL: {exc}", path=where) from None


def _number(node: Any) -> float | None:
    while isinstance(node, promql_parser.ParenExpr):
        node = node.expr
    if isinstance(node, promql_parser.NumberLiteral) and math.isfinite(float(node.val)):
        return float(node.val)
    return None


@dataclass(frozen=True)
class Threshold:
    """A tunable alert expression: ``value <comparator> level`` (and the hysteresis ``recovery``).

    ``value`` is PromQL text; ``missing`` is ``keep_last`` when it was read through ``last_over_time``.
    """

    value: str
    comparator: str
    level: float
    recovery: float | None = None
    missing: str = "resolve"


def _simple(text: str, where: str) -> Threshold | str:
    """``EXPR <cmp> NUMBER`` or ``NUMBER <cmp> EXPR`` -> Threshold; anything else -> why not (text)."""
    node = _parse(text, where)
    while isinstance(node, promql_parser.ParenExpr):
        node = node.expr
        text = _strip_parens(text)
    if not isinstance(node, promql_parser.BinaryExpr) or str(node.op) not in _CMP_ALL:
        return "not a threshold comparison"
    op = str(node.op)
    if node.modifier is not None and node.modifier.return_bool:
        return "a comparison with bool (returns 0/1, not a threshold)"
    if op in ("==", "!="):
        return f"an {op} comparison, not a threshold"
    right, left = _number(node.rhs), _number(node.lhs)
    cmps = [t for t in _scan(text) if t[2] in _CMP_ALL]
    if right is not None and left is None and cmps:
        s, _, _ = cmps[-1]
        value, cmp, level = text[:s], op, right
    elif left is not None and right is None and cmps:
        _, e, _ = cmps[0]
        value, cmp, level = text[e:], _FLIP[op], left
    else:
        return "compares two expressions (or two numbers), not an expression and a number"
    value = _strip_parens(value)
    _parse(value, where)
    missing = "resolve"
    inner = _parse(value, where)
    if isinstance(inner, promql_parser.Call) and inner.func.name == "last_over_time" \
            and value.endswith(")") and "(" in value:
        arg = value[value.index("(") + 1:-1].strip()
        if isinstance(inner.args[0], (promql_parser.MatrixSelector, promql_parser.SubqueryExpr)) \
                and arg.endswith("]") and "[" in arg:
            value, missing = _strip_parens(arg[:arg.rindex("[")]), "keep_last"
    return Threshold(value, cmp, level, None, missing)


def parse_threshold(expr: str, where: str = "expr") -> Threshold | str:
    """Read an alert expression: a :class:`Threshold` when it is tunable, else the reason it is not.

    Tunable: ``EXPR <cmp> NUMBER`` (``NUMBER <cmp> EXPR`` is turned round), ``cmp`` in ``> >= < <=``,
    no ``bool``; and the studio's hysteresis form ``(V > T) or (V >= R and ignoring(...) ALERTS{...})``.
    Raises :class:`ValidationError` (``path`` = ``where``) when ``expr`` is not valid PromQL.
    """
    text = str(expr).strip()
    node = _parse(text, where)
    if isinstance(node, promql_parser.BinaryExpr) and str(node.op) == "or":
        ors = [t for t in _scan(text) if t[2] == "or"]
        if len(ors) == 1 and isinstance(node.rhs, promql_parser.ParenExpr):
            s, e, _ = ors[0]
            fire = _simple(_strip_parens(text[:s]), where)
            right = _strip_parens(text[e:])
            ands = [t for t in _scan(right) if t[2] == "and"]
            rnode = _parse(right, where)
            if isinstance(fire, Threshold) and len(ands) == 1 and isinstance(rnode, promql_parser.BinaryExpr) \
                    and isinstance(rnode.rhs, promql_parser.VectorSelector) and rnode.rhs.name == "ALERTS":
                hold = _simple(_strip_parens(right[:ands[0][0]]), where)
                want = ">=" if fire.comparator in (">", ">=") else "<="
                if isinstance(hold, Threshold) and hold.comparator == want and \
                        " ".join(hold.value.split()) == " ".join(fire.value.split()):
                    return Threshold(fire.value, fire.comparator, fire.level, hold.level, fire.missing)
        return "an 'or' of expressions that is not the studio's hysteresis form"
    return _simple(text, where)


def absent_over_time_target(expr: str) -> str | None:
    """``V`` when ``expr`` is ``absent_over_time(V[w])`` (the export's NoData alert), else None."""
    text = str(expr).strip()
    try:
        node = promql_parser.parse(text)
    except (ValueError, TypeError):
        return None
    if isinstance(node, promql_parser.Call) and node.func.name == "absent_over_time":
        arg = text[text.index("(") + 1:text.rindex(")")].strip()
        if arg.endswith("]") and "[" in arg:
            return _strip_parens(arg[:arg.rindex("[")])
    return None


def series_of(value: str) -> str | None:
    """The series key a plain selector names (metric name and ``=`` matchers only), else None."""
    try:
        node = promql_parser.parse(value)
    except (ValueError, TypeError):
        return None
    if not isinstance(node, promql_parser.VectorSelector) or not node.name or node.offset or node.at:
        return None
    labels = {}
    for m in node.matchers.matchers:
        if str(m.op) != "MatchOp.Equal" or m.name == "__name__" or m.value == "":
            return None
        labels[m.name] = m.value
    if node.matchers.or_matchers:
        return None
    return make_key(node.name, labels)


# ---------------------------------------------------------------------------------------- candidates
@dataclass
class Candidate:
    """One alert (or recording) rule as read from a file, before same-name alerts are combined."""

    name: str
    group: str
    interval: str | None
    where: str
    original: dict[str, Any]
    source: str
    threshold: Threshold | None = None
    reason: str | None = None
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    missing: str | None = None          # set by a source that states it (Grafana's noDataState)
    nodata_of: str | None = None        # absent_over_time(V[w]): V (a NoData companion)

    def carried(self, reason: str | None = None) -> dict[str, Any]:
        return {"source": self.source, "group": self.group, "interval": self.interval, "name": self.name,
                "reason": reason or self.reason or "not tunable", "rule": self.original}


@dataclass
class ImportResult:
    """Rules read from deployed rule files.

    Attributes
    ----------
    rules : list of Rule
        Tunable rules (thresholds), sorted by name.
    carried : list of dict
        Rules kept unchanged (``source, group, interval, name, reason, rule``); exported as they came.
    notes : list of str
        What the import decided that a reader should know (a reason per carried rule, mappings).
    """

    rules: list[Rule]
    carried: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def not_tunable(self) -> list[str]:
        """``"name (group): reason"`` per carried rule."""
        return [f"{c['name']} ({c['group']}): {c['reason']}" for c in self.carried]


def _str_map(v: Any, where: str) -> dict[str, str]:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise ValidationError(f"expected a mapping of names to strings, got {type(v).__name__}", path=where)
    out = {}
    for k, x in v.items():
        if isinstance(x, (dict, list)) or x is None:
            raise ValidationError(f"value of {k!r} must be a string", path=f"{where}.{k}")
        out[str(k)] = x if isinstance(x, str) else str(x).lower() if isinstance(x, bool) else str(x)
    return out


def _duration(v: Any, where: str) -> float:
    if v is None:
        return 0.0
    return parse_duration(v, path=where)


def _plain(x: Any) -> Any:
    """YAML/JSON value as plain dicts, lists and scalars (for storing in the policy meta)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x


def group_rules(g: Mapping[str, Any], where: str) -> tuple[str | None, list[Any]]:
    """A rule group's ``interval`` (as written, checked; None when absent) and its ``rules`` list."""
    interval = None
    if g.get("interval") is not None:
        _duration(g["interval"], f"{where}.interval")
        interval = str(g["interval"])
    rules = g.get("rules")
    if not isinstance(rules, list):
        raise ValidationError("expected a list of rules", path=f"{where}.rules")
    return interval, rules


def prometheus_candidates(doc: Any, file: str) -> list[Candidate]:
    """Candidates from a parsed Prometheus rule file (``groups:``); ValidationError names the field."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("groups"), list):
        raise ValidationError("a Prometheus rule file is a mapping with a 'groups' list", path=f"{file}: groups")
    extra = sorted(set(map(str, doc)) - {"groups"})
    if extra:
        raise ValidationError(f"unknown top-level field {extra[0]!r}; a rule file has only 'groups'",
                              path=f"{file}: {extra[0]}")
    out: list[Candidate] = []
    for gi, g in enumerate(doc["groups"]):
        gp = f"{file}: groups[{gi}]"
        if not isinstance(g, Mapping):
            raise ValidationError("each group must be a mapping with name and rules", path=gp)
        gname = g.get("name")
        if not isinstance(gname, str) or not gname.strip():
            raise ValidationError("a group needs a name", path=f"{gp}.name")
        gp = f"{file}: group {gname!r}"
        bad = sorted(set(map(str, g)) - GROUP_KEYS)
        if bad:
            raise ValidationError(f"unknown field {bad[0]!r}; expected some of {sorted(GROUP_KEYS)}",
                                  path=f"{gp}.{bad[0]}")
        interval, rules = group_rules(g, gp)
        for ri, r in enumerate(rules):
            rp = f"{gp}, rules[{ri}]"
            if not isinstance(r, Mapping):
                raise ValidationError("each rule must be a mapping with alert (or record) and expr", path=rp)
            kind = "alert" if "alert" in r else "record" if "record" in r else None
            if kind is None or ("alert" in r and "record" in r):
                raise ValidationError("a rule needs exactly one of 'alert' or 'record'", path=rp)
            name = r[kind]
            if not isinstance(name, str) or not name.strip():
                raise ValidationError(f"'{kind}' must be a non-empty name", path=f"{rp}.{kind}")
            rp = f"{gp}, {kind} {name!r}"
            bad = sorted(set(map(str, r)) - RULE_KEYS)
            if bad:
                raise ValidationError(f"unknown field {bad[0]!r}; expected some of {sorted(RULE_KEYS)}",
                                      path=f"{rp}.{bad[0]}")
            expr = r.get("expr")
            if isinstance(expr, (int, float)) and not isinstance(expr, bool):
                expr = str(expr)
            if not isinstance(expr, str) or not expr.strip():
                raise ValidationError("expected a PromQL expression", path=f"{rp}.expr")
            c = Candidate(name=name, group=gname, interval=interval, where=rp, original=_plain(r),
                          source="prometheus", for_s=_duration(r.get("for"), f"{rp}.for"),
                          keep_firing_for_s=_duration(r.get("keep_firing_for"), f"{rp}.keep_firing_for"),
                          labels=_str_map(r.get("labels"), f"{rp}.labels"),
                          annotations=_str_map(r.get("annotations"), f"{rp}.annotations"))
            if kind == "record":
                _parse(expr, f"{rp}.expr")
                if r.get("for") is not None or r.get("keep_firing_for") is not None:
                    raise ValidationError("a recording rule has no 'for' or 'keep_firing_for'", path=f"{rp}.for")
                c.reason = "a recording rule"
            else:
                thr = parse_threshold(expr, f"{rp}.expr")
                if isinstance(thr, Threshold):
                    c.threshold = thr
                else:
                    c.reason = thr
                    c.nodata_of = absent_over_time_target(expr)
            out.append(c)
    return out


# ---------------------------------------------------------------------------------------- rules
def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def _level_of(severity: str | None) -> str:
    return "warning" if severity is not None and severity.lower() in WARNING_WORDS else "critical"


def _clean_annotations(name: str, ann: Mapping[str, str]) -> dict[str, str]:
    """Annotations without the ones the studio's export wrote itself (they are written again): its
    description (it names the policy it came from) and its summary (``"<name>: <expr> <cmp> <level>"``)."""
    out = dict(ann)
    if STUDIO_MARK in out.get("description", ""):
        out.pop("description", None)
        if out.get("summary", "").startswith(f"{name}: "):
            out.pop("summary", None)
    return out


def _combine(name: str, cands: Sequence[Candidate], nodata: Mapping[str, Candidate]) -> tuple[Rule | None, str]:
    """One rule from the alerts sharing ``name``, or (None, why not)."""
    if any(c.threshold is None for c in cands):
        return None, next(c.reason for c in cands if c.threshold is None) or "not tunable"
    if len(cands) > 2:
        return None, f"{len(cands)} alerts share this name (the studio holds a warning and a critical level)"
    first = cands[0]
    base = {k: v for k, v in first.labels.items() if k != "severity"}
    thr = [c.threshold for c in cands]
    for c in cands[1:]:
        t = c.threshold
        if not (_same(t.value, thr[0].value) and t.comparator == thr[0].comparator and t.recovery == thr[0].recovery
                and t.missing == thr[0].missing and c.for_s == first.for_s
                and c.keep_firing_for_s == first.keep_firing_for_s and c.interval == first.interval
                and c.missing == first.missing
                and {k: v for k, v in c.labels.items() if k != "severity"} == base):
            return None, ("alerts with this name differ in more than their level and severity label "
                          "(expression, comparator, for, keep_firing_for, interval or labels)")
    sev = [c.labels.get("severity") for c in cands]
    levels: dict[str, float] = {}
    sev_labels: dict[str, str] = {}
    if len(cands) == 2:
        if sev[0] == sev[1]:
            return None, "two alerts with this name carry the same severity label"
        if thr[0].level == thr[1].level:
            return None, "two alerts with this name have the same level"
        up = thr[0].comparator in (">", ">=")
        order = sorted(range(2), key=lambda i: thr[i].level if up else -thr[i].level)
        for lvl, i in zip(("warning", "critical"), order, strict=True):
            levels[lvl] = thr[i].level
            sev_labels[lvl] = sev[i] if sev[i] is not None else ""
    else:
        lvl = _level_of(sev[0])
        levels[lvl] = thr[0].level
        sev_labels[lvl] = sev[0] if sev[0] is not None else ""
    missing = first.missing or thr[0].missing
    companion = nodata.get(name)
    if companion is not None and _same(companion.nodata_of or "", thr[0].value):
        missing = "nodata"
    value = thr[0].value
    key = series_of(value)
    ann: dict[str, str] = {}
    for c in cands:
        ann.update(_clean_annotations(name, c.annotations))
    try:
        rule = Rule(name=name, series=key or name, comparator=thr[0].comparator, warning=levels.get("warning"),
                    critical=levels.get("critical"), for_s=first.for_s, keep_firing_for_s=first.keep_firing_for_s,
                    recovery=thr[0].recovery, missing=missing, labels=base,
                    severity_labels={k: v for k, v in sev_labels.items() if v != k},
                    annotations=ann, interval_s=parse_duration(first.interval) if first.interval else None,
                    promql=None if key else value)
    except ValidationError as exc:
        return None, f"not a valid studio rule: {exc.reason}"
    return rule, ""


def build_rules(cands: Iterable[Candidate]) -> ImportResult:
    """Combine candidates (same-name alerts, NoData companions) into rules and carried rules."""
    cands = list(cands)
    alerts: dict[str, list[Candidate]] = {}
    for c in cands:
        if "record" not in c.original and c.nodata_of is None:
            alerts.setdefault(c.name, []).append(c)
    rules: list[Rule] = []
    carried: list[dict[str, Any]] = []
    notes: list[str] = []
    done: set[int] = set()
    nodata = {c.name[:-len("NoData")]: c for c in cands if c.nodata_of is not None and c.name.endswith("NoData")}
    for name, group in alerts.items():
        rule, why = _combine(name, group, nodata)
        if rule is None:
            carried += [c.carried(why) for c in group]
            continue
        rules.append(rule)
        done.update(id(c) for c in group)
        comp = nodata.get(name)
        if rule.missing == "nodata" and comp is not None:
            done.add(id(comp))
        if rule.promql:
            notes.append(f"{name}: compares the PromQL expression {rule.promql!r}; map it to a stored series "
                         "to replay it")
    for c in cands:
        if id(c) in done or c.name in alerts and any(x is c for x in alerts[c.name]):
            continue
        carried.append(c.carried())
    notes += [f"{c['name']} ({c['group']}): not tunable, kept unchanged ({c['reason']})" for c in carried]
    return ImportResult(sorted(rules, key=lambda r: r.name), carried, notes)


def import_prometheus_rules(files: Sequence[tuple[str, Any]]) -> ImportResult:
    """Read parsed Prometheus rule files ``[(file name, document), ...]`` as one set of rules."""
    cands: list[Candidate] = []
    for name, doc in files:
        cands += prometheus_candidates(doc, name)
    return build_rules(cands)
