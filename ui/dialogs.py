"""Confirm dialogs for destructive actions. Each states exactly what will be removed, writes with the
current actor, clears the query cache and queues a toast for the rerun. The role is checked again
when "Delete" is pressed, not only when the button that opened the dialog was drawn.

A button does not open a dialog directly: it calls :func:`request` and the page calls
:func:`show_pending` on every run, so the dialog stays open across reruns until it is answered or
dismissed (dismissing clears the request).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from core.errors import PermissionDenied, StudioError
from ui import state
from ui.pending import PendingDialogs
from ui.widgets import toast_later

PENDING = "ui.pending_dialog"


_PENDING = PendingDialogs(PENDING)
request = _PENDING.request
_clear = _PENDING.clear
show_pending = _PENDING.show


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


def _confirm(prefix: str, text: str, action: str, write: Callable[[], Any], done: Callable[[Any], str],
             clear_key: str | None = None) -> None:
    """The body every delete dialog shares: say what goes, then on "Delete" check the role again
    (:func:`ui.state.require_edit`: the dialog may have been opened under other roles), ``write()``
    (returns a count), clear the caches and queue the toast ``done(count)``; on "Cancel" close.

    A refusal or a failed write is shown in the dialog and closes the request, so the dialog does
    not open again on the next run.
    """
    st.markdown(text)
    yes, no = _buttons(prefix)
    if yes:
        _clear()
        try:
            state.require_edit(action)
            n = write()
        except StudioError as exc:
            st.error(str(exc), icon=":material/block:" if isinstance(exc, PermissionDenied) else None)
            return
        if clear_key:
            st.session_state.pop(clear_key, None)
        state.after_write()
        toast_later(done(n), ":material/delete:")
        st.rerun()
    if no:
        _clear()
        st.rerun()


@_PENDING.register("delete_upload")
@st.dialog("Delete upload", icon=":material/delete:", on_dismiss=_clear)
def confirm_delete_upload(upload_id: int, name: str, accepted: int) -> None:
    try:   # what deleting it would remove now, including values it overwrote that cannot come back
        text = state.store().upload_removal_preview(int(upload_id)).summary(done=False)
    except Exception:  # upload already gone: fall back to the stored counts
        text = upload_removal_text(upload_id, name, accepted)
    _confirm("dlg.upload", text, f"delete upload #{upload_id}",
             lambda: state.store().delete_upload(int(upload_id), actor=state.actor()),
             lambda r: r.summary() if hasattr(r, "summary") else f"Deleted upload #{upload_id} ({r:,} points removed)")


@_PENDING.register("delete_series")
@st.dialog("Delete series", icon=":material/delete:", on_dismiss=_clear)
def confirm_delete_series(key: str, points: int, own_incidents: int) -> None:
    _confirm("dlg.series", series_removal_text(key, points, own_incidents), f"delete series {key}",
             lambda: state.store().delete_series(key, actor=state.actor()),
             lambda n: f"Deleted series {key} ({n:,} points removed)")


@_PENDING.register("delete_incidents")
@st.dialog("Delete incidents", icon=":material/delete:", on_dismiss=_clear)
def confirm_delete_incidents(ids: list[int], labels: list[str], clear_key: str | None = None) -> None:
    """Confirm, then delete incident windows ``ids`` (described by ``labels``). ``clear_key`` is the
    session key of the widget that picked them, emptied after the deletion."""
    _confirm("dlg.incidents", incidents_removal_text(labels), f"delete {len(ids)} incident window(s)",
             lambda: state.store().delete_incidents([int(i) for i in ids], actor=state.actor()),
             lambda n: f"Deleted {n} incident window(s)", clear_key=clear_key)
