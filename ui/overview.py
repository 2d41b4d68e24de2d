"""Overview page helpers: the fleet-health table, what needs attention first, and the side lists.

Every number comes from :mod:`core.commands.fleet_health`. Two caches keep re-renders cheap:

* the cheap part (:func:`core.commands.fleet_health.fleet_base`: series, rules in force, SLOs, drift
  notices, approvals, experiments, notices) is an ``st.cache_data`` entry keyed by the database path,
  dropped after every write and when another process writes (``ui.state``);
* the derived columns (quality, alerts/week, anomalies, recommendation) are computed only when asked
  (:func:`compute`, with a progress bar) and kept in this server process (``st.cache_resource``, not
  dropped by writes) per series and column group, each with the signature of what it was computed on
  (:func:`core.commands.fleet_health.signatures`). A value whose data or rules changed is no longer
  shown, and the freshness line says so, so an approval or a notice never throws the work away but an
  upload does.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from core.commands import fleet_health as fh
from core.fmt import fmt_duration, fmt_ts
from ui import state
from ui.widgets import PAGES_DIR

#: Session keys the Trends and Recommendations pages read for their series pickers.
TRENDS_SERIES = "trends.series"
TRENDS_FILTER = "trends.filter"
REC_DETAIL = "rec.detail"
REC_GLOB = "rec.glob"
#: Rough cost of the derived groups, for the buttons' estimates (seconds per million points read,
#: seconds per series): measured on the demo fleet on a shared 2-core machine.
FAST_S_PER_MPOINT = 4.0
SLOW_S_PER_SERIES = 2.0
PAGE_FOR = {"slos": "slos.py", "thresholds": "thresholds.py", "policies": "policies.py", "data": "data.py",
            "recommendations": "recommendations.py", "trends": "trends.py"}
REASON_LABELS = {"rollback": "Rollback", "slo_budget": "SLO budget", "alert_storm": "Alert storm", "pending_approval": "Pending approval",
                 "drift": "Drift", "recommendation": "Recommendation", "quality": "Data quality"}


# ---------------------------------------------------------------------------- cached reads
@st.cache_data(show_spinner="Reading fleet health...", max_entries=4)
def _base(path: str) -> tuple[fh.FleetBase, dict[str, dict[str, str]]]:
    base = fh.fleet_base(state._store(path), series=state.list_series(path), slo_cache=_slo_cache(path))
    return base, fh.signatures(base)


@st.cache_resource(show_spinner=False, max_entries=8)
def _slo_cache(path: str) -> dict[str, list[dict[str, Any]]]:
    """SLO results per data fingerprint and SLO definition (kept across writes that leave the data
    alone; entries of older data are never looked up again, and few SLOs exist)."""
    return {}


def base() -> tuple[fh.FleetBase, dict[str, dict[str, str]]]:
    """The cheap part of fleet health and the derived signatures, cached until the next write."""
    return _base(state.db_path())


@st.cache_resource(show_spinner=False)
def _kept() -> dict[str, Any]:
    """Derived values per database path, shared by every session of this server (with a lock), and a
    generation number per path that moves on every change (it keys the assembled table's cache)."""
    return {"lock": threading.Lock(), "by_path": {}, "gen": {}}


def kept() -> dict[str, dict[str, dict[str, Any]]]:
    """The derived values kept for the current database (see the module notes)."""
    k = _kept()
    with k["lock"]:
        return k["by_path"].get(state.db_path(), {})


def _generation(path: str) -> int:
    k = _kept()
    with k["lock"]:
        return int(k["gen"].get(path, 0))


def _fold_kept(derived: pd.DataFrame, sigs: dict[str, dict[str, str]]) -> None:
    """Fold a derive result into the kept values (read, merge and write under the lock, so two
    sessions computing at once both keep their rows)."""
    k = _kept()
    path = state.db_path()
    with k["lock"]:
        k["by_path"][path] = fh.keep_derived(k["by_path"].get(path, {}), derived, sigs)
        k["gen"][path] = int(k["gen"].get(path, 0)) + 1


@st.cache_data(show_spinner=False, max_entries=4)
def _assembled(path: str, generation: int) -> dict[str, Any]:
    b, sigs = _base(path)
    k = _kept()
    with k["lock"]:
        kv = k["by_path"].get(path, {})
    table = fh.fleet_table(b, fh.derived_frame(kv, sigs))
    # when each current group was computed (no values: this dict is copied out of the cache on every run)
    when = {k: {g: {"sig": e["sig"], "at": e["at"]} for g, e in groups.items()
                if sigs.get(k, {}).get(g) == e.get("sig")} for k, groups in kv.items()}
    return {"base": b, "sigs": sigs, "table": table, "attention": fh.needs_attention(table, b.approvals, b.rollbacks),
            "when": when}


def health(glob: str | None = None) -> dict[str, Any]:
    """Everything the page shows: ``base``, ``sigs``, the full ``table``, the ``shown`` rows (glob
    filter), the ``attention`` list (whole fleet) and ``fresh`` (per derived group, over the shown rows).
    The assembled table is cached per database and kept-values generation (dropped with every write,
    like ``base``); the filter is applied to it on each run."""
    path = state.db_path()
    got = dict(_assembled(path, _generation(path)))
    got["shown"] = fh.filter_series(got["table"], glob or None)
    got["fresh"] = fh.freshness(got.pop("when"), got["sigs"], got["shown"]["series"].tolist())
    return got


def compute(keys: Sequence[str], groups: Sequence[str]) -> int:
    """Compute the derived ``groups`` of ``keys`` with a progress bar and keep them; returns how many
    series were computed. Only series whose groups are missing or stale are read."""
    b, sigs = base()
    kv = kept()
    def stale(k: str, g: str) -> bool:
        return kv.get(k, {}).get(g, {}).get("sig") != sigs.get(k, {}).get(g)

    todo = [k for k in keys if any(stale(k, g) for g in groups)]
    if not todo:
        return 0
    groups = [g for g in groups if any(stale(k, g) for k in todo)]      # what is already current is not redone
    bar = st.progress(0.0, text=f"Computing {', '.join(groups)} for {len(todo)} series...")

    def tick(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Computed {done} of {total} series ({', '.join(groups)})")

    derived = fh.derive(state.store(), b, todo, groups=groups, progress=tick)
    _fold_kept(derived, sigs)
    bar.empty()
    return len(todo)


def estimate(shown: pd.DataFrame, groups: Sequence[str]) -> str:
    """A rough duration of computing ``groups`` for the shown rows, in words."""
    s = FAST_S_PER_MPOINT * float(shown["points"].sum()) / 1e6
    if tuple(groups) != fh.FAST_GROUPS:
        s += SLOW_S_PER_SERIES * len(shown)
    return f"about {fmt_duration(max(1.0, s))}"


# ---------------------------------------------------------------------------- display
def freshness_text(fresh: dict[str, dict[str, Any]]) -> str:
    """One line per derived group: how many of the shown series have a current value and since when."""
    names = {"quality": "Quality grade", "alerts": "Alerts/week", "anomalies": "Anomalies",
             "recommendation": "Recommendation"}
    parts = []
    for g, f in fresh.items():
        if not f["n"]:
            parts.append(f"**{names[g]}**: not computed yet")
        else:
            when = fmt_ts(f["oldest"]) if f["oldest"] == f["newest"] else \
                f"{fmt_ts(f['oldest'])} to {fmt_ts(f['newest'])}"
            parts.append(f"**{names[g]}**: {f['n']} of {f['of']} series, computed {when} for the current data")
    return "  \n".join(parts)


def attention_summary(att: pd.DataFrame) -> str:
    """How many items per reason, in the list's order (e.g. "SLO budget: 2, Pending approval: 1")."""
    counts = att["reason"].value_counts()
    return ", ".join(f"{REASON_LABELS[r]}: {int(counts[r])}" for r in fh.REASONS if r in counts) + \
        " (most urgent first)."


def attention_frame(att: pd.DataFrame) -> pd.DataFrame:
    """The attention list as shown: what, reason and where to act."""
    return pd.DataFrame({"#": att["priority"], "what": att["reason"].map(REASON_LABELS),
                         "subject": att["subject"], "why": att["detail"],
                         "where": att["page"].map(lambda p: PAGE_FOR.get(p, "").removesuffix(".py").title())})


TABLE_CONFIG = {
    "series": st.column_config.TextColumn("series", width="large"),
    "grade": st.column_config.TextColumn("quality", help="Data-quality grade A-F (or insufficient)"),
    "anomalies_24h": st.column_config.NumberColumn("anomalies 24 h", format="%d",
                                                   help="Alarms of the Trends page's detection in the last 24 h"),
    "anomalies_7d": st.column_config.NumberColumn("anomalies 7 d", format="%d"),
    "rules": st.column_config.TextColumn("rules in force"),
    "alerts_per_week": st.column_config.NumberColumn(
        "alerts/week", format="%.1f", help="Alert episodes (any level) under the policy in force over the last 7 days"),
    "slo": st.column_config.TextColumn("SLO"),
    "slo_compliance": st.column_config.NumberColumn("SLO compliance", format="percent"),
    "budget_remaining": st.column_config.NumberColumn("budget left", format="percent"),
    "recommendation_open": st.column_config.CheckboxColumn("recommendation open"),
    "expected_reduction": st.column_config.NumberColumn(
        "expected reduction /wk", format="%.1f",
        help="Episodes/week of the rule in force on the held-out period minus the balanced recommendation's prediction"),
    "recommended_warning": st.column_config.NumberColumn("recommended warning", format="%.4g"),
    "drift": st.column_config.CheckboxColumn("drift notice"),
    "notes": st.column_config.TextColumn("notes", width="medium"),
}
TABLE_SHOWN = ["series", "grade", "anomalies_24h", "anomalies_7d", "rules", "alerts_per_week", "slo",
               "slo_compliance", "budget_remaining", "recommendation_open", "expected_reduction",
               "recommended_warning", "drift", "notes"]


def open_series(key: str, page: str) -> None:
    """Switch to the Trends or Recommendations page with ``key`` picked there."""
    ss = st.session_state
    if page == "trends":
        ss[TRENDS_FILTER] = ""
        ss[TRENDS_SERIES] = key
        st.switch_page(f"{PAGES_DIR}/trends.py")
    ss[REC_GLOB] = key.replace("[", "[[]")
    ss[REC_DETAIL] = key
    st.switch_page(f"{PAGES_DIR}/recommendations.py")
