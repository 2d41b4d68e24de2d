"""Notification outbox and delivery log for the Policies page (read directly: deliveries are made by
``python -m core notify deliver`` in another process, so a cached copy would go stale)."""

from __future__ import annotations

import streamlit as st

from core.policy import notify
from ui import state


def show_log() -> None:
    """Notices with each channel's state, and every delivery attempt, newest first."""
    store = state.store()
    notices = notify.notices(store, 200)
    with st.expander(f"Notifications ({len(notices)} notices)", expanded=False):
        if notices.empty:
            st.caption("No notices yet. Pending approvals and SLO burn-rate alerts are queued here and sent to the "
                       "channels configured in config/notify.toml ($STUDIO_NOTIFY) by `python -m core notify deliver`.")
            return
        st.dataframe(notices[["id", "created_at", "kind", "title", "channels"]], hide_index=True, width="stretch",
                     key="pol.notices")
        log = notify.delivery_log(store, 500)
        st.caption(f"Delivery log: {len(log)} attempts, newest first (failed attempts are retried with back-off).")
        st.dataframe(log, hide_index=True, width="stretch", key="pol.delivery_log")
