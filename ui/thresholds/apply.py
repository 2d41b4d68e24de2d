"""Thresholds page: the Apply dialog (preview with diff and impact, confirm, write as the session user),
its flash message, and the banners about the policy in force and a recommendation's held-out check.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.alerting.rules import format_duration
from core.errors import ConflictError, StudioError
from core.policy import versions as pol
from ui import state, widgets
from ui.policy_apply import POLICY, show_preview
from ui.session import session_user
from ui.thresholds.editor import CHECK, CTX, DIALOG, DRAFT, FLASH, HOLDOUT, LOADED, SUGGESTION, loaded_policy


# ---------------------------------------------------------------------------- apply dialog
def show_flash() -> None:
    """Toast and success line for the apply made in the previous run, if any."""
    widgets.show_flash(FLASH, toast=True)


def _close() -> None:
    st.session_state.pop(DIALOG, None)


@st.cache_data(show_spinner="Replaying old and new rules over the stored history...")
def _preview(path: str, rules_json: str) -> pol.Preview:
    import json

    return pol.preview(state.store(), POLICY, json.loads(rules_json))


@st.dialog("Apply threshold change", icon=":material/tune:", width="large", on_dismiss=_close)
def apply_dialog(new_rules: list[dict[str, Any]], base: int, name: str) -> None:
    """Preview (diff, replayed impact, approval) and confirm; writes one new policy version."""
    import json

    try:
        pv = _preview(state.db_path(), json.dumps(new_rules, sort_keys=True, default=str))
    except StudioError as exc:
        st.error(f"Cannot preview this change: {exc}")
        return
    st.markdown(f"**{name}**: change against the version in force "
                f"({'v' + str(pv.active_number) if pv.active_number else 'none'}); based on **v{base}**.")
    show_preview(pv)
    reason = st.text_input("Reason (required, recorded in the audit trail)", key="thr.reason")
    if st.button("Confirm and apply", type="primary", key="thr.confirm", width="stretch"):
        user, _ = session_user()
        try:
            v = pol.apply(state.store(), POLICY, new_rules, base_version=base, user=user, reason=reason)
        except ConflictError as exc:
            st.error(f"Not applied. {exc}", icon=":material/sync_problem:")
            st.caption("Your edits are still on the page. Close this dialog, use 'Reload policy' to see "
                       "the latest version, then apply again.")
            return
        except StudioError as exc:
            st.error(str(exc))
            return
        state.after_write()
        _close()
        for k in (LOADED, CTX, DRAFT, SUGGESTION, CHECK, "thr.reason"):   # reload the policy and the editor from it
            st.session_state.pop(k, None)
        st.session_state[FLASH] = (f"Created v{v.number}: " + (
            "waits for a second person's approval." if v.status == "pending_approval" else "it is in force."))
        st.rerun()


def show_policy_state(snap: dict, now: dict) -> None:
    """Warn when the policy changed since the page loaded it (apply would be refused), or note a version
    waiting for approval that an apply here would supersede."""
    if now["base"] != snap["base"]:
        st.warning(f"The policy changed since you loaded this page (now v{now['base']}, you loaded "
                   f"v{snap['base']}); applying will be refused until you reload.", icon=":material/sync_problem:")
        if st.button("Reload policy (discards your edits)", key="thr.reload"):
            loaded_policy(reload=True)
            st.session_state.pop(CTX, None)
            st.rerun()
    elif snap["active"] is not None and snap["base"] > snap["active"]:
        st.info(f"v{snap['base']} waits for approval; this page edits the version in force (v{snap['active']}) "
                f"and applying here supersedes v{snap['base']}.", icon=":material/pending:")


def check_rows(rec: Any) -> pd.DataFrame:
    """A recommendation's check for display: ``metric, predicted (90 % interval), held-out (measured),
    error`` rows for episodes/week and time in alert (error "insufficient" when the check cannot
    give one)."""
    v = rec.validation
    iv = rec.predicted_interval
    rel = v.get("relative_error")
    err = "insufficient" if not v.get("sufficient") else ("n/a" if rel is None else f"{rel:+.0%}")
    pred = f"{rec.predicted_episodes_per_week:.2f}" + (f" ({iv[0]:.2f} to {iv[1]:.2f})" if iv else "")
    tia = (v.get("predicted_time_in_alert_pct"), v.get("actual_time_in_alert_pct"))
    return pd.DataFrame({
        "metric": [f"episodes / week ({v.get('severity')})", "time in alert (%)"],
        "predicted (90 % interval)": [pred, "-" if tia[0] is None else f"{tia[0]:.3f}"],
        "held-out (measured)": [f"{v.get('actual', 0.0):.2f}", "-" if tia[1] is None else f"{tia[1]:.3f}"],
        "error": [err, ""],
    })


def show_check(rec: Any, title: str, note: str = "") -> None:
    """An expander with a recommendation's prediction, held-out check, rationale, risk and candidates."""
    if rec is None:
        return
    v = rec.validation
    with st.expander(title + ("" if v.get("sufficient") else " (insufficient)"), expanded=True):
        levels = " / ".join(f"{k} {x:.4g}" for k, x in (("warning", rec.warning), ("critical", rec.critical))
                            if x is not None)
        st.caption(f"{levels} ({rec.strategy}; {rec.preset} preset, for {format_duration(rec.for_s)}). Predicted "
                   f"from the history before {pd.Timestamp(rec.split):%Y-%m-%d %H:%M} UTC, measured on the last "
                   f"{HOLDOUT:.0%}. {note}")
        st.dataframe(check_rows(rec), hide_index=True, width="stretch")
        if not v.get("sufficient"):
            st.caption(f"Held-out check insufficient: {v.get('reason')}.")
        elif v.get("precision"):
            st.caption(f"Precision: {v['precision']}.")
        st.markdown(f"**Risk {rec.risk}**" + (": " + "; ".join(rec.risk_reasons) if rec.risk_reasons else ""))
        st.caption(rec.rationale)
        cands = rec.candidates
        if cands is not None and len(cands) > 1:
            cols = [c for c in ("strategy", "warning", "critical", "episodes_per_week", "recall", "score", "pareto",
                                "chosen", "insufficient") if c in cands.columns]
            st.dataframe(cands[cols], hide_index=True, width="stretch", column_config={
                "episodes_per_week": st.column_config.NumberColumn("fit-period episodes/week", format="%.2f"),
                "score": st.column_config.NumberColumn(format="%.2f")})
