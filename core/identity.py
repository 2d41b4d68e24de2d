"""Who is using the studio and what they may do. No Streamlit import: the UI passes ``st.user``.

Roles come from a TOML file (``config/roles.toml``, or the path in ``$STUDIO_ROLES``)::

    [local]
    user = "local-operator"          # name when nobody is logged in; $STUDIO_USER overrides
    [roles]
    "alice@example.com" = ["editor", "approver"]
    default = ["editor"]

Roles are ``viewer`` (read), ``editor`` (apply, import, roll back) and ``approver`` (approve or
reject someone else's significant change). Every user can view.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import PermissionDenied, ValidationError

ROLES = ("viewer", "editor", "approver")
DEFAULT_ROLES_PATH = Path(__file__).resolve().parents[1] / "config" / "roles.toml"
DEFAULT_LOCAL_USER = "local-operator"


@dataclass(frozen=True)
class User:
    """A person (or the local operator). ``roles`` always includes ``viewer``."""

    name: str
    email: str | None = None
    roles: frozenset[str] = field(default_factory=lambda: frozenset({"viewer"}))

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
    """Read the roles file; a missing file gives an empty config (everyone gets the default roles).

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


def roles_for(who: str | None, config: Mapping[str, Any] | None = None, *, email: str | None = None
              ) -> frozenset[str]:
    """Roles granted to a user name and/or e-mail (e-mail entry wins), else ``default``, plus viewer."""
    roles = (config or {}).get("roles", {})
    _check_roles(roles)
    granted: Any = None
    for key in (email, who):
        if key and key in roles:
            granted = roles[key]
            break
    if granted is None:
        granted = roles.get("default", ["editor"])
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
    ``[local] user`` from the config, else ``"local-operator"``.
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
        return User(str(name), str(email) if email else None, roles_for(str(name), cfg, email=email))
    name = os.environ.get("STUDIO_USER") or (cfg.get("local") or {}).get("user") or DEFAULT_LOCAL_USER
    return User(str(name), None, roles_for(str(name), cfg))


_ACTIONS = {"viewer": "view policies", "editor": "change policies (apply, import, roll back)",
            "approver": "approve or reject significant policy changes"}


def require(user: User, role: str) -> None:
    """Raise :class:`PermissionDenied` unless ``user`` has ``role``."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {ROLES}")
    if not user.has(role):
        raise PermissionDenied(
            f"{user.id} may not {_ACTIONS[role]}: that needs the {role!r} role, and they have "
            f"{sorted(user.roles)} (roles are set in {roles_path()})")
