"""Applying a policy change from any page (Thresholds, Recommendations, Experiments, SLOs): the policy
in force, new rule names, the evidence gates of impact figures, the preview body (diff, replayed impact,
approval) and the confirm-and-apply step. Shared, so it holds no page's session state."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from core.data.frame import parse_key
from core.errors import ConflictError, StudioError
from core.policy import versions as pol
from ui import state
from ui.policy_tables import diff_frame
from ui.session import session_user

#: a recall rate needs at least this many labelled incidents; below it the page shows counts only
MIN_INCIDENTS_RATE = 5


#: precision needs at least this many alert episodes (and one labelled incident)
MIN_EPISODES_PRECISION = 5


POLICY = pol.DEFAULT_POLICY


@st.cache_data(show_spinner=False)
def _policy(path: str) -> dict[str, Any]:
    s = state.store()
    active = pol.active_version(s, POLICY)
    return {"active": active.number if active else None, "base": pol.latest_number(s, POLICY),
            "rules": active.rule_dicts if active else []}


def current_policy() -> dict[str, Any]:
    """``active`` (number in force or None), ``base`` (highest version number) and ``rules`` (dicts in force)."""
    return _policy(state.db_path())


def rule_name(key: str, taken: Iterable[str] = ()) -> str:
    """A CamelCase rule name from a series key: ``latency_p95_ms{service="checkout"}`` ->
    ``CheckoutLatencyP95MsHigh`` (a number is appended when the name is taken)."""
    name, labels = parse_key(key)
    words = re.split(r"[^A-Za-z0-9]+", " ".join([*labels.values(), name]))
    base = "".join(w[:1].upper() + w[1:] for w in words if w) + "High"
    taken, out, i = set(taken), base, 2
    while out in taken:
        out, i = f"{base}{i}", i + 1
    return out


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
                  meta: dict[str, Any] | None = None,
                  predictions: Mapping[str, Mapping[str, Any]] | None = None) -> pol.PolicyVersion | None:
    """Reason box and **Confirm and apply** of an apply dialog (widget keys ``<key>.reason`` and
    ``<key>.confirm``): writes one version as the session user, the editor role checked again at the click.
    A conflict or bad input is shown in the dialog and nothing is written. Returns the new version (caches
    cleared), else None. ``predictions``: recommendation predictions by series, stored as the change's
    predicted episodes/week (:func:`core.policy.versions.apply`)."""
    reason = st.text_input("Reason (required, recorded in the audit trail)", key=f"{key}.reason")
    if not st.button("Confirm and apply", type="primary", key=f"{key}.confirm", width="stretch"):
        return None
    user, _ = session_user()
    try:
        state.require_edit(action)
        v = pol.apply(state.store(), POLICY, rules, base_version=base, user=user, reason=reason, meta=meta,
                      predictions=predictions)
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
