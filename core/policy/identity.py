"""Who is using the studio and what they may do. No Streamlit import: the UI passes ``st.user``.

Roles come from a TOML file (``config/roles.toml``, or the path in ``$STUDIO_ROLES``)::

    [local]
    user = "local-operator"          # name when nobody is logged in; $STUDIO_USER overrides
    [roles]
    "alice@example.com" = ["editor", "approver"]
    # default = ["editor"]           # roles of anyone not listed (see below)

Roles are ``viewer`` (read), ``editor`` (apply, import, roll back) and ``approver`` (approve or
reject someone else's significant change). Every user can view.

Who is not listed gets ``default`` when the file sets it. Without ``default`` the studio fails
closed when OIDC login is configured (an unlisted account, i.e. anyone the identity provider knows,
is a viewer) and stays usable for a lone operator when it is not (the local operator is an editor).
A missing roles file is the same as an empty one.

Local mode (no login) takes the operator's name on trust (``$STUDIO_USER``), so it is not proof of
identity: every :class:`User` also carries the operating-system account the process runs as
(:func:`os_account`), which :mod:`core.policy.versions` records on every version and audit entry and compares
before a local approval (the author and the approver must be different OS accounts).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data.store.audit import os_account
from core.errors import PermissionDenied, ValidationError

ROLES = ("viewer", "editor", "approver")
DEFAULT_ROLES_PATH = Path(__file__).resolve().parents[2] / "config" / "roles.toml"
DEFAULT_LOCAL_USER = "local-operator"


@dataclass(frozen=True)
class User:
    """A person (or the local operator). ``roles`` always includes ``viewer``.

    ``authenticated`` is True when the identity comes from OIDC login (verified by the identity
    provider) and False in local mode, where the name is only claimed. ``os_account`` is the OS account
    the session runs as (:func:`os_account`; None: fill it in at write time); it is not part of equality.
    """

    name: str
    email: str | None = None
    roles: frozenset[str] = field(default_factory=lambda: frozenset({"viewer"}))
    authenticated: bool = False
    os_account: str | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        """The identity recorded as author/actor: the e-mail when known, else the name."""
        return self.email or self.name

    def has(self, role: str) -> bool:
        return role in self.roles


def roles_path() -> Path:
    env = os.environ.get("STUDIO_ROLES")
    return Path(env) if env else DEFAULT_ROLES_PATH


def load_config(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read the roles file; a missing file gives an empty config (see :func:`roles_for` for who gets what).

    Raises :class:`ValidationError` naming the offending key when a role is unknown.
    """
    p = Path(path) if path is not None else roles_path()
    if not p.exists():
        return {}
    try:
        cfg = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{p} is not valid TOML: {exc}", path=str(p)) from exc
    _check_roles(cfg.get("roles", {}), source=str(p))
    return cfg


def _check_roles(roles: Any, source: str = "config") -> None:
    if not isinstance(roles, Mapping):
        raise ValidationError(f"[roles] in {source} must be a table of name = [roles]", path="roles")
    for who, granted in roles.items():
        if isinstance(granted, str):
            granted = [granted]
        if not isinstance(granted, list):
            raise ValidationError(f"roles of {who!r} in {source} must be a list such as [\"editor\"]",
                                  path=f"roles.{who}")
        bad = [r for r in granted if r not in ROLES]
        if bad:
            raise ValidationError(f"unknown role(s) {bad} for {who!r} in {source}; expected any of {list(ROLES)}",
                                  path=f"roles.{who}")


def roles_for(who: str | None, config: Mapping[str, Any] | None = None, *, email: str | None = None,
              logged_in: bool = False) -> frozenset[str]:
    """Roles granted to a user name and/or e-mail (e-mail entry wins), else ``default``, plus viewer.

    Without a ``default`` entry an unlisted user is a viewer when ``logged_in`` (OIDC: fail closed)
    and an editor otherwise (the local operator of a single-user install)."""
    roles = (config or {}).get("roles", {})
    _check_roles(roles)
    granted: Any = None
    for key in (email, who):
        if key and key in roles:
            granted = roles[key]
            break
    if granted is None:
        granted = roles.get("default", [] if logged_in else ["editor"])
    if isinstance(granted, str):
        granted = [granted]
    return frozenset({"viewer", *granted})


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:  # st.user raises for unknown attributes in some versions
        return None


ANONYMOUS = User("anonymous", None, frozenset({"viewer"}))


def current_user(user_info: Any = None, config: Mapping[str, Any] | None = None) -> User:
    """The user of this session.

    Parameters
    ----------
    user_info : object, optional
        Streamlit's ``st.user`` (or a dict like it: ``is_logged_in``, ``email``, ``name``). Pass it only
        when OIDC login is configured; when it says the user is logged in, that identity is used.
    config : mapping, optional
        Parsed roles config (default :func:`load_config`).

    When ``user_info`` says ``is_logged_in`` is False (login is configured but nobody logged in), the
    session is :data:`ANONYMOUS`, a viewer: with OIDC configured, changes need a logged-in person.
    Otherwise (no login configured: ``is_logged_in`` absent) the local operator: ``$STUDIO_USER``, else
    ``[local] user`` from the config, else ``"local-operator"``. Unlisted users get ``default``, else
    viewer when logged in and editor in local mode (:func:`roles_for`).
    """
    cfg = load_config() if config is None else config
    logged_in = None if user_info is None else _get(user_info, "is_logged_in")
    if logged_in is False:
        return ANONYMOUS
    if logged_in:
        email = _get(user_info, "email")
        name = _get(user_info, "name") or email
        if not name:
            raise PermissionDenied("logged-in user has neither a name nor an e-mail; cannot attribute changes")
        return User(str(name), str(email) if email else None,
                    roles_for(str(name), cfg, email=email, logged_in=True), authenticated=True,
                    os_account=os_account())
    name = os.environ.get("STUDIO_USER") or (cfg.get("local") or {}).get("user") or DEFAULT_LOCAL_USER
    return User(str(name), None, roles_for(str(name), cfg), os_account=os_account())


_ACTIONS = {"viewer": "view policies", "editor": "change policies or data (apply, import, roll back, ingest, delete)",
            "approver": "approve or reject significant policy changes"}


def require(user: User, role: str) -> None:
    """Raise :class:`PermissionDenied` unless ``user`` has ``role``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    if not user.has(role):
        raise PermissionDenied(
            f"{user.id} may not {_ACTIONS[role]}: that needs the {role!r} role, and they have "
            f"{sorted(user.roles)} (roles are set in {roles_path()})")
