"""Confirm dialogs for destructive actions. Each states exactly what will be removed, writes with the
current actor, clears the query cache and queues a toast for the rerun.

A button does not open a dialog directly: it calls :func:`request` and the page calls
:func:`show_pending` on every run, so the dialog stays open across reruns until it is answered or
dismissed (dismissing clears the request).
"""

from __future__ import annotations

import streamlit as st

from core.errors import StudioError
from ui import state
from ui.widgets import toast_later

PENDING = "ui.pending_dialog"


def request(kind: str, **kwargs: object) -> None:
    """Ask for the ``kind`` dialog (``"delete_upload"``, ``"delete_series"`` or ``"delete_incidents"``)
    with its arguments."""
    st.session_state[PENDING] = (kind, kwargs)


def _clear() -> None:
    st.session_state.pop(PENDING, None)


def show_pending() -> None:
    """Open the requested dialog, if any. Call once per page run, after the buttons."""
    item = st.session_state.get(PENDING)
    if item:
        kind, kwargs = item
        {"delete_upload": confirm_delete_upload, "delete_series": confirm_delete_series,
         "delete_incidents": confirm_delete_incidents}[kind](**kwargs)


def _buttons(prefix: str) -> tuple[bool, bool]:
    c1, c2 = st.columns(2)
    yes = c1.button("Delete", type="primary", key=f"{prefix}.yes", icon=":material/delete:", width="stretch")
    no = c2.button("Cancel", key=f"{prefix}.no", width="stretch")
    return yes, no


def upload_removal_text(upload_id: int, name: str, accepted: int) -> str:
    """What deleting an upload removes, in words."""
    return (f"Delete upload **#{upload_id} `{name}`**: its record and the points it last wrote "
            f"(it stored {accepted:,} points; any that a later upload overwrote belong to that upload "
            "and stay). Series left with no points are removed; incident windows stay.")


def series_removal_text(key: str, points: int, own_incidents: int) -> str:
    """What deleting a series removes, in words."""
    return (f"Delete series **`{key}`**: all {points:,} of its points and {own_incidents} incident "
            "window(s) attached to it. Global incidents and uploads' records stay.")


def incidents_removal_text(labels: list[str]) -> str:
    """What deleting incident windows removes, in words (one line per window)."""
    head = f"Delete **{len(labels)} incident window(s)**:"
    tail = ("Only these windows are removed: points, series and uploads stay. Rule scores and "
            "replays computed against these windows will change when they are run again.")
    return "\n".join([head, "", *[f"- `{x}`" for x in labels], "", tail])


@st.dialog("Delete upload", icon=":material/delete:", on_dismiss=_clear)
def confirm_delete_upload(upload_id: int, name: str, accepted: int) -> None:
    st.markdown(upload_removal_text(upload_id, name, accepted))
    yes, no = _buttons("dlg.upload")
    if yes:
        _clear()
        try:
            n = state.store().delete_upload(int(upload_id), actor=state.actor())
        except StudioError as exc:
            st.error(str(exc))
            return
        state.after_write()
        toast_later(f"Deleted upload #{upload_id} ({n:,} points removed)", ":material/delete:")
        st.rerun()
    if no:
        _clear()
        st.rerun()


@st.dialog("Delete series", icon=":material/delete:", on_dismiss=_clear)
def confirm_delete_series(key: str, points: int, own_incidents: int) -> None:
    st.markdown(series_removal_text(key, points, own_incidents))
    yes, no = _buttons("dlg.series")
    if yes:
        _clear()
        try:
            n = state.store().delete_series(key, actor=state.actor())
        except StudioError as exc:
            st.error(str(exc))
            return
        state.after_write()
        toast_later(f"Deleted series {key} ({n:,} points removed)", ":material/delete:")
        st.rerun()
    if no:
        _clear()
        st.rerun()


@st.dialog("Delete incidents", icon=":material/delete:", on_dismiss=_clear)
def confirm_delete_incidents(ids: list[int], labels: list[str], clear_key: str | None = None) -> None:
    """Confirm, then delete incident windows ``ids`` (described by ``labels``). ``clear_key`` is the
    session key of the widget that picked them, emptied after the deletion."""
    st.markdown(incidents_removal_text(labels))
    yes, no = _buttons("dlg.incidents")
    if yes:
        _clear()
        try:
            n = state.store().delete_incidents([int(i) for i in ids], actor=state.actor())
        except StudioError as exc:
            st.error(str(exc))
            return
        if clear_key:
            st.session_state.pop(clear_key, None)
        state.after_write()
        toast_later(f"Deleted {n} incident window(s)", ":material/delete:")
        st.rerun()
    if no:
        _clear()
        st.rerun()
