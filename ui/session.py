"""Who is using the studio in this browser session, shared by every page that writes.

Identity: OIDC login is configured when ``.streamlit/secrets.toml`` has an ``[auth]`` section; only
then does ``st.user`` carry an ``is_logged_in`` key. :func:`session_user` is ``ui.state``'s identity:
:func:`core.policy.identity.current_user` of ``st.user`` (logged in: that person; not logged in: an anonymous
viewer; no login configured: the local operator, ``$STUDIO_USER`` or the roles file's ``[local]``).
"""

from __future__ import annotations

import streamlit as st

from core.policy.identity import ANONYMOUS, User
from ui import state


# ---------------------------------------------------------------------------- identity
def oidc_configured() -> bool:
    """Whether OIDC login is configured (``st.user`` has ``is_logged_in`` only with an ``[auth]`` secret)."""
    try:
        return "is_logged_in" in st.user
    except Exception:  # no script context or no auth support
        return False


def session_user() -> tuple[User, str | None]:
    """``(user, error)``: the session's user, or an anonymous viewer plus the error when the roles file is
    invalid (so a broken file never grants write access). The same identity every page uses
    (``ui.state``), so the Policies page and the data pages never disagree about who is acting."""
    user, error = state._identity()
    return (ANONYMOUS if user is None else user), error


def show_identity(user: User, error: str | None) -> None:
    """Who is acting and with which roles, plus log in / log out when OIDC is configured."""
    roles = ", ".join(sorted(user.roles))
    if not oidc_configured():
        how = "local operator (no login configured)"
    elif user.id == ANONYMOUS.id:
        how = "not logged in (read-only until you log in)"
    else:
        how = "logged in with OIDC"
    c1, c2 = st.columns([5, 1])
    c1.markdown(f":material/person: **{user.id}** | {how} | roles: **{roles}**")
    if oidc_configured():
        if user.id == ANONYMOUS.id:
            c2.button("Log in", on_click=st.login, icon=":material/login:", key="pol.login")
        else:
            c2.button("Log out", on_click=st.logout, icon=":material/logout:", key="pol.logout")
    if error:
        st.error(error)


def write_note(user: User, role: str = "editor") -> str | None:
    """Why write controls are disabled for ``user`` (None when they hold ``role``)."""
    if user.has(role):
        return None
    return (f"{user.id} has roles {', '.join(sorted(user.roles))}: changes need the {role!r} role "
            "(set in the roles file, config/roles.toml or $STUDIO_ROLES)")
