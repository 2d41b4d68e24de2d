"""One pending dialog per page. A button calls :meth:`PendingDialogs.request`; the page calls
:meth:`PendingDialogs.show` on every run, so the dialog stays open across reruns until it is answered
or dismissed (dismissing clears the request)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st


class PendingDialogs:
    """A registry of dialogs by kind and the session-state slot holding the one requested."""

    def __init__(self, key: str) -> None:
        self.key = key
        self._dialogs: dict[str, Callable[..., Any]] = {}

    def register(self, kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: make ``fn`` (an ``@st.dialog`` function) the dialog opened for ``kind``."""
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._dialogs[kind] = fn
            return fn
        return deco

    def request(self, kind: str, **kwargs: Any) -> None:
        st.session_state[self.key] = (kind, kwargs)

    def clear(self) -> None:
        st.session_state.pop(self.key, None)

    def show(self) -> None:
        """Open the requested dialog, if any (an unknown kind is dropped). Call once per page run."""
        item = st.session_state.get(self.key)
        if not item:
            return
        kind, kwargs = item
        fn = self._dialogs.get(kind)
        if fn is None:
            self.clear()
            return
        fn(**kwargs)
