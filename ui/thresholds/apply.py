"""Thresholds page: the Apply dialog (preview with diff and impact, confirm, write as the session user),
its flash message, and the banners about the policy in force and a suggestion's held-out check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from core.errors import ConflictError, StudioError
from core.policy import versions as pol
from ui import state
from ui.policy_tables import diff_frame
from ui.session import session_user
from ui.thresholds.editor import CTX, DIALOG, DRAFT, FLASH, HOLDOUT, LOADED, POLICY, SUGGESTION, loaded_policy
from ui.thresholds.view import MIN_EPISODES_PRECISION, MIN_INCIDENTS_RATE


# ---------------------------------------------------------------------------- apply dialog
def show_flash() -> None:
    """Toast and success line for the apply made in the previous run, if any."""
    msg = st.session_state.pop(FLASH, None)
    if msg:
        st.toast(msg, icon=":material/check_circle:")
        st.success(msg, icon=":material/check_circle:")


def _close() -> None:
    st.session_state.pop(DIALOG, None)


@st.cache_data(show_spinner="Replaying old and new rules over the stored history...")
def _preview(path: str, rules_json: str) -> pol.Preview:
    import json

    return pol.preview(state.store(), POLICY, json.loads(rules_json))


def _gated(r: Mapping[str, Any], side: str, metric: str) -> str:
    """One impact cell as text, with the same evidence gates as :func:`summary_cards`."""
    def val(m: str) -> Any:
        x = r.get(f"{side}_{m}")
        return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x

    x = val(metric)
    if val("incidents") is None and val("episodes_per_week") is None:
        return "-"                                   # no such rule on this side, or no replay
    n_inc = int(val("incidents") or 0)
    if metric == "recall":
        if n_inc == 0:
            return "no incidents"
        if n_inc < MIN_INCIDENTS_RATE:
            return f"insufficient (n={n_inc})"
        return "-" if x is None else f"{x:.0%} (n={n_inc})"
    if metric == "precision":
        n_ep = val("episodes")
        if n_inc == 0:
            return "no incidents"
        if n_ep is None:
            return "insufficient (episode count unknown)"
        if int(n_ep) < MIN_EPISODES_PRECISION:
            return f"insufficient (n={int(n_ep)} episodes)"
        return "-" if x is None else f"{x:.0%} (n={int(n_ep)} episodes)"
    if x is None:
        return "-"
    if metric in ("incidents", "incidents_caught", "episodes"):
        return str(int(x))
    return f"{x:.3f}" if metric == "time_in_alert_pct" else f"{x:.2f}"


def impact_frame(impact: pd.DataFrame) -> pd.DataFrame:
    """The preview's impact as rows ``series, metric, old, new`` (text, numbers rounded for reading).

    Recall reads "insufficient (n=...)" below :data:`MIN_INCIDENTS_RATE` incidents and precision below
    :data:`MIN_EPISODES_PRECISION` episodes (or when the preview does not give the episode count), as
    on the summary cards. In-sample: each rule replayed over the stored history.
    """
    names = {"episodes_per_week": "episodes / week", "time_in_alert_pct": "time in alert (%)",
             "incidents_caught": "incidents caught", "incidents": "incidents", "recall": "recall",
             "precision": "precision"}
    rows = [{"series": r["series"], "metric": label, "old": _gated(r, "old", m), "new": _gated(r, "new", m)}
            for r in impact.to_dict("records") for m, label in names.items()]
    return pd.DataFrame(rows, columns=["series", "metric", "old", "new"])


def show_preview(pv: pol.Preview, impact_note: str = "") -> None:
    """The body of an apply preview: rule diff, replayed impact (in-sample), replay notes, approval."""
    st.dataframe(diff_frame(pv.diff), hide_index=True, width="stretch")
    if len(pv.impact):
        st.markdown("What the old and the new rules would have done over the stored history "
                    f"(in-sample, not a prediction{impact_note}):")
        st.dataframe(impact_frame(pv.impact), hide_index=True, width="stretch")
    if pv.notes:
        with st.expander(f"Notes on the replay ({len(pv.notes)})"):
            for note in pv.notes:
                st.caption(note)
    if pv.significance:
        st.warning("Needs approval by a second person (approver role) before it takes effect: "
                   + "; ".join(pv.significance), icon=":material/how_to_reg:")
    else:
        st.info("Takes effect at once (not a significant change).", icon=":material/bolt:")


def confirm_apply(rules: list[dict[str, Any]], base: int, *, key: str, action: str,
                  meta: dict[str, Any] | None = None) -> pol.PolicyVersion | None:
    """Reason box and **Confirm and apply** of an apply dialog (widget keys ``<key>.reason`` and
    ``<key>.confirm``): writes one version as the session user, the editor role checked again at the click.
    A conflict or bad input is shown in the dialog and nothing is written. Returns the new version (caches
    cleared), else None."""
    reason = st.text_input("Reason (required, recorded in the audit trail)", key=f"{key}.reason")
    if not st.button("Confirm and apply", type="primary", key=f"{key}.confirm", width="stretch"):
        return None
    user, _ = session_user()
    try:
        state.require_edit(action)
        v = pol.apply(state.store(), POLICY, rules, base_version=base, user=user, reason=reason, meta=meta)
    except ConflictError as exc:
        st.error(f"Not applied. {exc}", icon=":material/sync_problem:")
        return None
    except StudioError as exc:
        st.error(str(exc))
        return None
    state.after_write()
    st.session_state.pop(f"{key}.reason", None)
    return v


def outcome(v: pol.PolicyVersion) -> str:
    """"waits for a second person's approval." or "it is in force." for a version just written."""
    return "waits for a second person's approval." if v.status == "pending_approval" else "it is in force."


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
        for k in (LOADED, CTX, DRAFT, SUGGESTION, "thr.reason"):   # reload the policy and the editor from it
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


def show_suggestion_check(sug) -> None:
    """The held-out check of a suggested draft: predicted (fit period) vs measured (last part) alert rate."""
    if sug is None:
        return
    with st.expander("Held-out check of the suggested levels" + ("" if sug.sufficient else " (insufficient)"),
                     expanded=True):
        st.caption(f"Predicted from the fit period, measured on the last {HOLDOUT:.0%} of the history "
                   f"(from {sug.split:%Y-%m-%d %H:%M} UTC), for warning {sug.warning:g}"
                   + (f" / critical {sug.critical:g}" if sug.critical is not None else "")
                   + ", any level firing. Moving the sliders does not update this table.")
        st.dataframe(sug.rows(), hide_index=True, width="stretch")
        for line in sug.notes:
            st.caption(line)
