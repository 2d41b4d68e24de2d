"""Policy versions, rules, diffs, audit entries and the Prometheus mapping as tables: pure presentation
shared by the pages that show a policy (Policies, Thresholds); no session state.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.data.store import audit
from core.errors import StudioError
from core.policy import versions as pol

RULE_COLUMNS = ["name", "series", "comparator", "warning", "critical", "for", "keep_firing_for", "recovery",
                "consecutive", "missing", "unit", "labels"]


# ---------------------------------------------------------------------------- tables
def fmt_ts(t: Any) -> str:
    return "" if t is None or pd.isna(t) else pd.Timestamp(t).strftime("%Y-%m-%d %H:%M UTC")


def versions_frame(versions: list[pol.PolicyVersion], active_number: int | None) -> pd.DataFrame:
    """One row per version, newest first: number, parent, author, time, reason, status, hash (short)."""
    rows = [{"version": v.number, "parent": v.parent_number, "in force": v.number == active_number,
             "author": v.author, "created": fmt_ts(v.created_at), "reason": v.reason, "status": v.status,
             "effective": fmt_ts(v.effective_at), "decided by": v.decided_by or "", "source": v.source,
             "rules": len(v.rule_dicts), "hash": v.content_hash[:10]} for v in reversed(versions)]
    return pd.DataFrame(rows).astype({"parent": "Int64"}) if rows else pd.DataFrame()


def rules_frame(version: pol.PolicyVersion) -> pd.DataFrame:
    """The version's rules as a table (labels as ``k=v`` text; absent fields empty)."""
    df = pd.DataFrame(version.rule_dicts).reindex(columns=RULE_COLUMNS)
    df["labels"] = df["labels"].map(lambda d: ", ".join(f"{k}={v}" for k, v in d.items())
                                    if isinstance(d, dict) else "")
    return df


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def diff_frame(d: pol.PolicyDiff) -> pd.DataFrame:
    """A diff as rows ``rule, change, field, before, after`` (values as text)."""
    rows = [{"rule": r["name"], "change": "added", "field": "", "before": "",
             "after": f"{r.get('series')} {r.get('comparator')} w={r.get('warning')} c={r.get('critical')}"}
            for r in d.added]
    rows += [{"rule": r["name"], "change": "removed", "field": "",
              "before": f"{r.get('series')} {r.get('comparator')} w={r.get('warning')} c={r.get('critical')}",
              "after": ""} for r in d.removed]
    rows += [{"rule": c.name, "change": "changed", "field": f, "before": _text(b), "after": _text(a)}
             for c in d.changed for f, (b, a) in c.fields.items()]
    return pd.DataFrame(rows, columns=["rule", "change", "field", "before", "after"])


def show_diff(d: pol.PolicyDiff, what: str = "") -> None:
    """A diff as a one-line summary plus a table (or 'no changes')."""
    if d.is_empty:
        st.info(f"{what}no changes: the rules are identical.")
        return
    st.markdown(f"{what}{len(d.added)} added, {len(d.removed)} removed, {len(d.changed)} changed, "
                f"{len(d.unchanged)} unchanged")
    st.dataframe(diff_frame(d), hide_index=True, width="stretch")


def audit_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Audit entries for display: detail as compact JSON text, hashes shortened."""
    out = df[["seq", "ts", "actor", "action", "object", "reason", "detail"]].copy()
    out["detail"] = out["detail"].map(audit.canonical_json)
    out["entry_hash"] = df["entry_hash"].str.slice(0, 10)
    return out


# ---------------------------------------------------------------------------- export
def mapping_frame(version: pol.PolicyVersion) -> pd.DataFrame:
    """One row per distinct rule ``series`` with the PromQL selector the export uses by default."""
    from core.alerting.prometheus import PromMapping

    default = PromMapping()
    rows = []
    for r in version.rules():  # a handful of rules
        try:
            sel = default.selector(r.series)
        except StudioError:
            sel = ""
        rows.append({"series": r.series, "selector": sel})
    return pd.DataFrame(rows, columns=["series", "selector"]).drop_duplicates("series", ignore_index=True)


# ---------------------------------------------------------------------------- imported rules
def carried_frame(carried: list[dict[str, Any]]) -> pd.DataFrame:
    """Rules kept unchanged (not tunable): ``name, source, group, reason, expr``."""
    rows = [{"name": c.get("name"), "source": c.get("source"), "group": c.get("group"), "reason": c.get("reason"),
             "expr": (c.get("rule") or {}).get("expr", "")} for c in carried]
    return pd.DataFrame(rows, columns=["name", "source", "group", "reason", "expr"])


def expression_frame(version: pol.PolicyVersion) -> pd.DataFrame:
    """Rules that compare an imported PromQL expression: ``rule, promql, series`` (series editable)."""
    rows = [{"rule": r.name, "promql": r.promql, "series": r.series} for r in version.rules() if r.promql]
    return pd.DataFrame(rows, columns=["rule", "promql", "series"])
