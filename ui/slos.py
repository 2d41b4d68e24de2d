"""SLOs page helpers: the SLOs kept with the policy in force, the SLI events of a definition (cached),
the burn-rate chart and table, and the dialog that adds an SLO's burn-rate rules to the policy."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.alerting.rules import rule_to_dict
from core.data.frame import downsample_minmax
from core.errors import StudioError
from core.policy import versions as pol
from core.slo import (
    SLO,
    budget_alerts,
    burn_pairs,
    burn_rate,
    burn_rules,
    replay_pair,
    slos_from_meta,
    slos_to_meta,
    watch,
)
from ui import state, widgets
from ui.policy_apply import confirm_apply, outcome, show_preview

POLICY = pol.DEFAULT_POLICY
FLASH = "slo.flash"
DIALOG = "slo.dialog"
RULE_PREFIX = "SLOBurn_"


def policy_snapshot() -> dict[str, Any]:
    """``base`` (latest version number), ``rules`` and ``meta`` of the version in force, and its SLOs."""
    store = state.store()
    v = pol.active_version(store, POLICY)
    meta = dict(v.meta) if v else {}
    base = pol.latest_number(store, POLICY)
    pending = []
    if base and (v is None or base > v.number):
        newest = pol.get_version(store, POLICY, base)
        if newest.status == "pending_approval":
            mine = {s.name for s in slos_from_meta(meta)}
            pending = [s for s in slos_from_meta(newest.meta) if s.name not in mine]
    return {"base": base, "active": v.number if v else None, "rules": v.rule_dicts if v else [], "meta": meta,
            "slos": slos_from_meta(meta), "pending": pending}


def saved_slos(snap: dict[str, Any]) -> dict[str, SLO]:
    """Label -> SLO: those in force, then those of a version waiting for approval (labelled so)."""
    out = {s.name: s for s in snap["slos"]}
    out.update({f"{s.name} (waits for approval)": s for s in snap["pending"]})
    return out


@st.cache_data(show_spinner="Counting good and bad minutes...", max_entries=16)
def _events(path: str, slo_json: str) -> pd.DataFrame:
    import json

    return watch.slo_events(state.store(), SLO.from_dict(json.loads(slo_json)))


def _sli_json(slo: SLO) -> str:
    """The SLO's definition without what the events do not depend on (its name), as a cache key."""
    import json

    return json.dumps({**slo.to_dict(), "name": "sli"}, sort_keys=True)


def slo_events(slo: SLO) -> pd.DataFrame:
    """Per-minute ``bad`` / ``total`` events of the SLO's SLI over the stored history (cached per SLI:
    naming or renaming an SLO does not read the points again)."""
    return _events(state.db_path(), _sli_json(slo))


@st.cache_data(show_spinner="Replaying the burn-rate rules...", max_entries=16)
def _burn_view(path: str, slo_json: str) -> tuple[go.Figure, pd.DataFrame]:
    import json

    slo = SLO.from_dict(json.loads(slo_json))
    ev = _events(path, slo_json)
    return burn_figure(slo, ev), pairs_frame(slo, ev)


def burn_view(slo: SLO) -> tuple[go.Figure, pd.DataFrame]:
    """:func:`burn_figure` and :func:`pairs_frame` of the SLO over its events, cached per SLI definition
    (a rerun that does not change the SLO, e.g. opening the apply dialog, replays nothing)."""
    return _burn_view(state.db_path(), _sli_json(slo))


def burn_figure(slo: SLO, ev: pd.DataFrame) -> go.Figure:
    """Burn rate over each pair's long window, with the pair's factor as a dashed line (min/max per bucket)."""
    fig = go.Figure()
    colors = ("#dc2626", "#ea580c", "#2563eb")
    for p, c in zip(burn_pairs(slo), colors, strict=True):
        br = burn_rate(slo, ev, p.long_s)
        df = downsample_minmax(pd.DataFrame({"ts": br.index, "value": br.to_numpy()}), 1500)
        fig.add_scatter(x=df["ts"], y=df["value"], mode="lines", name=f"burn over {p.label.split('/')[0]}",
                        line={"color": c, "width": 1})
        fig.add_hline(y=p.factor, line={"color": c, "dash": "dash", "width": 1},
                      annotation_text=f"{p.factor:g}x ({p.label})", annotation_position="top left")
    fig.update_layout(height=340, margin={"l": 10, "r": 10, "t": 30, "b": 10}, yaxis_title="burn rate (x budget)",
                      legend={"orientation": "h"})
    return fig


def pairs_frame(slo: SLO, ev: pd.DataFrame) -> pd.DataFrame:
    """One row per burn-rate pair: windows, factor, budget share, episodes replayed over the history and
    whether it fires at the last minute."""
    rows = []
    weeks = max((ev.index[-1] - ev.index[0]).total_seconds() / (7 * 86400.0), 1e-9) if len(ev) else None
    now = {a["windows"] for a in budget_alerts(slo, ev)}
    for p in burn_pairs(slo):
        n = len(replay_pair(slo, ev, p).episodes)
        firing = p.label in now
        rows.append({"severity": p.severity, "windows": p.label, "factor": p.factor,
                     "budget spent when it fires": f"{p.budget_share:.0%}", "episodes (history)": n,
                     "episodes / week": None if weeks is None else n / weeks, "firing at the end": firing})
    return pd.DataFrame(rows)


def new_rules(rules: list[dict[str, Any]], slo: SLO) -> list[dict[str, Any]]:
    """The policy's rules with this SLO's burn-rate rules replaced (or added)."""
    mine = [rule_to_dict(r) for r in burn_rules(slo)]
    names = {d["name"] for d in mine}
    prefix = f"{RULE_PREFIX}{mine[0]['name'][len(RULE_PREFIX):].rsplit('_', 1)[0]}_"
    kept = [dict(d) for d in rules if d["name"] not in names and not str(d["name"]).startswith(prefix)]
    return kept + mine


def show_flash() -> None:
    """Success line for the write made in the previous run, if any."""
    widgets.show_flash(FLASH)


def _close() -> None:
    st.session_state.pop(DIALOG, None)


@st.dialog("Add burn-rate rules to the policy", icon=":material/local_fire_department:", width="large",
           on_dismiss=_close)
def apply_dialog(slo: SLO) -> None:
    """Preview and confirm: one new policy version holding the SLO's burn-rate rules and, in its meta,
    the SLO definition (SLOs are versioned with the policy)."""
    snap = policy_snapshot()
    rules = new_rules(snap["rules"], slo)
    others = [s for s in snap["slos"] if s.name != slo.name]
    try:
        meta = slos_to_meta(snap["meta"], [*others, slo])
        pv = pol.preview(state.store(), POLICY, rules)
    except StudioError as exc:
        st.error(f"Cannot preview this change: {exc}")
        return
    show_preview(pv, "; burn-rate rules replay on the burn rate in the SLO page's table, not here")
    v = confirm_apply(rules, snap["base"], key="slo", action="add burn-rate rules", meta=meta)
    if v is not None:
        _close()
        st.session_state[FLASH] = f"Created v{v.number} with the burn-rate rules of SLO {slo.name}: {outcome(v)}"
        st.rerun()
