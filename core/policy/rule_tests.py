"""promtool unit tests of a stored policy version, from the store's history (see
:mod:`core.alerting.rule_tests`): the one place the CLI and the Policies page build them."""

from __future__ import annotations

from typing import Any

from core.alerting.prometheus.mapping import PromMapping
from core.alerting.promtool import promtool_binary, promtool_version
from core.alerting.rule_tests import RuleTests, build_rule_tests
from core.data.store.audit import head_comment


def version_rule_tests(store: Any, version: Any, mapping: PromMapping | None = None, *,
                       rules_file: str = "alerts.rules.yml", audit_head: str | None = None) -> RuleTests:
    """The ``promtool test rules`` file pinning ``version``'s Prometheus export to its replay on the
    stored history of every series its rules match.

    ``audit_head``: the audit trail's head to name in the header (default: the store's current head,
    as the exported rule file names it, so the two files can be matched to one state). The tests
    target the installed ``promtool``'s major version, or Prometheus 2 when none is installed.
    """
    rules = version.rules()
    stored = store.list_series()
    names = [] if stored.empty else stored["key"].astype(str).tolist()
    keys = sorted(k for k in names if any(r.matches(k) for r in rules))
    pts = store.get_points(keys) if keys else None
    points = {} if pts is None or pts.empty else {k: g.set_index("ts")["value"] for k, g in pts.groupby("series")}
    major = promtool_version()[0] if promtool_binary() else 2
    if audit_head is None:
        audit_head = head_comment(store).removeprefix("# audit head: ").strip()
    return build_rule_tests(rules, points, mapping, rules_file=rules_file, policy=version.policy,
                            version=version.number, carried=version.meta.get("carried_rules") or (),
                            audit_head=audit_head, prom_major=major)


def summary(rt: RuleTests) -> str:
    """One line: what the tests pin (alerts that fired, mutants caught) and how many rules are untested."""
    tell = [m for m in rt.mutants if m.telling]
    return (f"{len(rt.fired)} alerts fired on the history, {sum(a and b for a, b in rt.fired.values())} with firing "
            f"and quiet assertions; {sum(m.pinned for m in tell)} of {len(tell)} changes the history can tell apart "
            f"(a level 10% up or down, for doubled) fail the tests; {len(rt.untested)} rules untested (listed in "
            f"the file); {rt.size_bytes / 1024:.0f} KiB")


__all__ = ["summary", "version_rule_tests"]
