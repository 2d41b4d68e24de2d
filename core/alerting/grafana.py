"""Read Grafana alert rule exports (the file-provisioning shape) as studio rule candidates.

The shape (YAML or JSON, as Grafana's "Export" or ``/api/v1/provisioning/alert-rules/export`` writes
it)::

    apiVersion: 1
    groups:
      - name: api            # evaluation group
        folder: SRE
        interval: 1m
        rules:
          - uid: abc
            title: HighLatency
            condition: C                 # refId of the expression that decides
            data:
              - refId: A                 # the query: model.expr is PromQL
                datasourceUid: prom
                model: {expr: 'latency_p95_ms{service="api"}', refId: A}
              - refId: B                 # reduce the query to one number per series
                datasourceUid: __expr__
                model: {type: reduce, expression: A, reducer: last, refId: B}
              - refId: C                 # the threshold: evaluator = level and comparator
                datasourceUid: __expr__
                model:
                  type: threshold
                  expression: B
                  conditions:
                    - evaluator: {type: gt, params: [450]}
                      unloadEvaluator: {type: lt, params: [400]}   # optional: recovery level
            for: 5m
            keep_firing_for: 2m         # optional
            noDataState: NoData         # NoData -> nodata, OK -> resolve, KeepLast -> keep_last,
                                        # Alerting -> nodata (noted)
            labels: {severity: warning}
            annotations: {summary: ...}

A rule is tunable when its condition is a threshold expression with a ``gt``/``lt`` (or ``gte``/``lte``)
evaluator over a query with a PromQL ``expr``, directly or through a reduce; the query's ``expr``
becomes the rule's mapping. Anything else (classic conditions, math, ranges) is carried unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.alerting.prometheus.importer import (
    Candidate,
    Threshold,
    _duration,
    _parse,
    _plain,
    _str_map,
    group_rules,
)
from core.errors import ValidationError

_EVALUATORS = {"gt": ">", "lt": "<", "gte": ">=", "lte": "<=", "ge": ">=", "le": "<="}
_NODATA = {"NoData": "nodata", "OK": "resolve", "KeepLast": "keep_last", "Alerting": "nodata"}


def is_grafana(doc: Any) -> bool:
    """Whether a parsed document has the Grafana provisioning shape (``apiVersion`` or rules with
    ``title``/``data``)."""
    if not isinstance(doc, Mapping):
        return False
    if "apiVersion" in doc:
        return True
    for g in doc.get("groups") or []:
        for r in (g.get("rules") or []) if isinstance(g, Mapping) else []:
            if isinstance(r, Mapping) and ("title" in r or "data" in r):
                return True
    return False


def _threshold(rule: Mapping[str, Any], where: str) -> Threshold | str:
    """The rule's condition as a Threshold, or why it is not tunable. ValidationError on bad fields."""
    data = rule.get("data")
    if not isinstance(data, list) or not data:
        raise ValidationError("expected a list of queries and expressions", path=f"{where}.data")
    by_ref: dict[str, Mapping[str, Any]] = {}
    for i, d in enumerate(data):
        if not isinstance(d, Mapping) or not isinstance(d.get("refId"), str):
            raise ValidationError("each data item needs a refId", path=f"{where}.data[{i}].refId")
        if not isinstance(d.get("model", {}), Mapping):
            raise ValidationError("model must be a mapping", path=f"{where}.data[{i}].model")
        by_ref[d["refId"]] = d
    cond = rule.get("condition")
    if not isinstance(cond, str) or cond not in by_ref:
        raise ValidationError(f"condition {cond!r} names no data item; expected one of {sorted(by_ref)}",
                              path=f"{where}.condition")
    model = by_ref[cond].get("model") or {}
    if model.get("type") != "threshold":
        return f"condition is a {model.get('type') or 'query'!s} expression, not a threshold"
    conds = model.get("conditions")
    if not isinstance(conds, list) or len(conds) != 1 or not isinstance(conds[0], Mapping):
        raise ValidationError("a threshold expression needs one condition", path=f"{where}.data.{cond}.conditions")
    ev = conds[0].get("evaluator")
    if not isinstance(ev, Mapping) or not isinstance(ev.get("params"), list) or not ev["params"]:
        raise ValidationError("expected evaluator {type, params}", path=f"{where}.data.{cond}.evaluator")
    cmp = _EVALUATORS.get(str(ev.get("type")))
    if cmp is None:
        return f"evaluator {ev.get('type')!r} is not a single threshold"
    level = _float(ev["params"][0], f"{where}.data.{cond}.evaluator.params[0]")
    recovery = None
    unload = conds[0].get("unloadEvaluator")
    if unload:
        if not isinstance(unload, Mapping) or not isinstance(unload.get("params"), list) or not unload["params"]:
            raise ValidationError("expected unloadEvaluator {type, params}", path=f"{where}.data.{cond}.unloadEvaluator")
        recovery = _float(unload["params"][0], f"{where}.data.{cond}.unloadEvaluator.params[0]")
    src = model.get("expression")
    ref = by_ref.get(str(src))
    if ref is None:
        raise ValidationError(f"expression {src!r} names no data item", path=f"{where}.data.{cond}.expression")
    rmodel = ref.get("model") or {}
    if rmodel.get("type") == "reduce":
        reducer = rmodel.get("reducer")
        if reducer not in ("last", None):
            return f"reduces the query with {reducer!r}; the replay compares the latest value"
        ref = by_ref.get(str(rmodel.get("expression")))
        if ref is None:
            raise ValidationError(f"expression {rmodel.get('expression')!r} names no data item",
                                  path=f"{where}.data.{src}.expression")
        rmodel = ref.get("model") or {}
    expr = rmodel.get("expr")
    if rmodel.get("type") or not isinstance(expr, str) or not expr.strip():
        return "the threshold is not over a PromQL query"
    _parse(expr, f"{where}.data.{ref['refId']}.model.expr")
    return Threshold(expr.strip(), cmp, level, recovery)


def _float(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        try:
            return float(str(v))
        except ValueError:
            raise ValidationError(f"expected a number, got {v!r}", path=where) from None
    return float(v)


def grafana_candidates(doc: Any, file: str) -> tuple[list[Candidate], list[str]]:
    """Candidates (and notes) from a parsed Grafana alert rule export; ValidationError names the field."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("groups"), list):
        raise ValidationError("a Grafana alert rule export is a mapping with a 'groups' list",
                              path=f"{file}: groups")
    out: list[Candidate] = []
    notes: list[str] = []
    for gi, g in enumerate(doc["groups"]):
        gp = f"{file}: groups[{gi}]"
        if not isinstance(g, Mapping) or not isinstance(g.get("name"), str):
            raise ValidationError("each group must be a mapping with a name and rules", path=f"{gp}.name")
        gp = f"{file}: group {g['name']!r}"
        interval, rules = group_rules(g, gp)
        for ri, r in enumerate(rules):
            if not isinstance(r, Mapping) or not isinstance(r.get("title"), str) or not r["title"].strip():
                raise ValidationError("each rule needs a title", path=f"{gp}, rules[{ri}].title")
            rp = f"{gp}, rule {r['title']!r}"
            state = r.get("noDataState", "NoData")
            if state not in _NODATA:
                raise ValidationError(f"unknown noDataState {state!r}; expected one of {list(_NODATA)}",
                                      path=f"{rp}.noDataState")
            keep = r.get("keep_firing_for", r.get("keepFiringFor"))
            c = Candidate(name=r["title"].strip(), group=g["name"], interval=interval, where=rp, original=_plain(r),
                          source="grafana", for_s=_duration(r.get("for"), f"{rp}.for"),
                          keep_firing_for_s=_duration(keep, f"{rp}.keep_firing_for"),
                          labels=_str_map(r.get("labels"), f"{rp}.labels"),
                          annotations=_str_map(r.get("annotations"), f"{rp}.annotations"),
                          missing=_NODATA[state])
            thr = _threshold(r, rp)
            if isinstance(thr, Threshold):
                c.threshold = thr
                if state == "Alerting":
                    notes.append(f"{c.name}: noDataState Alerting is read as missing: nodata (a no-data alert)")
            else:
                c.reason = thr
            out.append(c)
    return out, notes
