"""Prometheus export (:func:`prometheus_export`) writes one alerting rule per rule and severity (same
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

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from core.alerting.prometheus.mapping import PromMapping, operand, prom_duration, prom_quote, range_selector
from core.alerting.rules import as_rule
from core.errors import ValidationError

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
    alerts = "ALERTS{" + ",".join(f"{k}={prom_quote(str(v))}" for k, v in sel.items()) + "}"
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
                      version: int | None = None, carried: Iterable[Mapping[str, Any]] = ()) -> PromExport:
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

    * ``carried``: rules imported as not tunable (``meta["carried_rules"]`` of a policy version), written
      unchanged in their original groups after the studio's (see :func:`_carried_groups`).
    * A rule's own ``promql`` (an imported expression) is the expression compared, before the mapping.

    Raises :class:`ValidationError` when two rules would share an alert name, or when a rule's warning
    and critical levels carry the same severity label (the two alerts could not be told apart).
    """
    m = mapping or PromMapping()
    lookback_s = m.lookback_s
    objs = sorted((as_rule(x) for x in rules), key=lambda x: x.name)
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
        sel = r.promql if r.promql else m.selector(r.series, r.matchers)
        for_s = float(r.for_s) + (r.consecutive - 1) * iv
        window = prom_duration(max(lookback_s, for_s))
        value = f"last_over_time({range_selector(sel, window, step)})" if r.missing == "keep_last" else operand(sel)
        user_ann = dict(r.annotations)
        rationale = user_ann.pop("rationale", None)
        unit = f" {r.unit}" if r.unit else ""
        name = names[r.name]
        shown = r.promql or r.series
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
            labels = _with_severity(base_labels, r.label_for(lvl))
            desc = [f"{shown} {r.comparator} {_num(thr)}{unit} {timing} ({lvl})."]
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
            rule["annotations"] = {"summary": f"{r.name}: {shown} {r.comparator} {_num(thr)}{unit}",
                                   **user_ann, "description": user_ann.get("description") or " ".join(desc)}
            out.append(rule)
        if r.missing == "nodata":
            out.append({
                "alert": f"{name}NoData", "expr": f"absent_over_time({range_selector(sel, window, step)})",
                "labels": _with_severity(base_labels, r.label_for("warning")),
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
    groups += _carried_groups(carried, {g["name"] for g in groups}, set(names.values()), warnings)
    return PromExport({"groups": groups}, tuple(warnings))


def _with_severity(labels: Mapping[str, str], severity: str) -> dict[str, str]:
    """Alert labels plus ``severity`` (left out when the rule's severity label is ``""``: none)."""
    return {**labels, "severity": severity} if severity else dict(labels)


def _carried_groups(carried: Iterable[Mapping[str, Any]], taken: set[str], alerts: set[str],
                    warnings: list[str]) -> list[dict[str, Any]]:
    """Imported rules the studio does not tune, exported as they came, in their original groups.

    Each item is ``{"source": "prometheus"|"grafana", "group": name, "interval": "1m" or None,
    "rule": the rule mapping as read}``. A Grafana rule cannot be written as a Prometheus rule: it is
    left out with a warning. A group name already used by the studio's groups gets ``-carried``.
    """
    out: dict[str, dict[str, Any]] = {}
    for c in carried:
        rule = dict(c.get("rule") or {})
        if c.get("source", "prometheus") != "prometheus":
            warnings.append(f"{rule.get('title') or rule.get('uid') or 'a Grafana rule'}: a Grafana rule the "
                            "studio does not tune is not written to the Prometheus export (it stays in Grafana)")
            continue
        if rule.get("alert") in alerts:
            warnings.append(f"{rule['alert']}: a carried-through rule has the name of a studio rule; both are "
                            "exported")
        name = str(c.get("group") or "carried")
        gname = name if name not in taken else f"{name}-carried"
        g = out.setdefault(gname, {"name": gname, **({"interval": c["interval"]} if c.get("interval") else {}),
                                   "rules": []})
        order = ("alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations")
        g["rules"].append({**{k: rule[k] for k in order if k in rule},
                           **{k: v for k, v in rule.items() if k not in order}})
    return list(out.values())


def prometheus_rules(rules: Iterable[Any], mapping: PromMapping | None = None, *, policy: str = "default",
                     version: int | None = None, carried: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Prometheus alerting rules as a dict (``{"groups": [...]}``); see :func:`prometheus_export`."""
    return prometheus_export(rules, mapping, policy=policy, version=version, carried=carried).doc


def to_prometheus_yaml(rules: Iterable[Any], mapping: PromMapping | None = None, *, policy: str = "default",
                       version: int | None = None, carried: Iterable[Mapping[str, Any]] = ()) -> str:
    """Prometheus alerting rules file (load with ``rule_files:``; check with ``promtool check rules``).
    Export warnings (see :class:`PromExport`) are written as ``# WARNING:`` comments at the top."""
    return prometheus_export(rules, mapping, policy=policy, version=version, carried=carried).to_yaml()
