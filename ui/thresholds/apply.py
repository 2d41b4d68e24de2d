"""Thresholds page: the Apply dialog (preview with diff and impact, confirm, write as the session user),
its flash message, and the banners about the policy in force and a suggestion's held-out check.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.errors import ConflictError, StudioError
from core.policy import versions as pol
from ui import state
from ui.policy_apply import POLICY, show_preview
from ui.session import session_user
from ui.thresholds.editor import CTX, DIALOG, DRAFT, FLASH, HOLDOUT, LOADED, SUGGESTION, loaded_policy


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
