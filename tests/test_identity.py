"""Identity and roles: OIDC user vs local operator, roles file, require()."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core.errors import PermissionDenied, ValidationError
from core.policy import identity
from core.policy.identity import ROLES, User, current_user, load_config, require, roles_for

CFG = {"local": {"user": "ops-box"},
       "roles": {"default": ["editor"], "alice@example.com": ["editor", "approver"], "vic": ["viewer"]}}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("STUDIO_USER", raising=False)
    monkeypatch.delenv("STUDIO_ROLES", raising=False)


def test_logged_in_oidc_user_gets_roles_by_email():
    st_user = SimpleNamespace(is_logged_in=True, email="alice@example.com", name="Alice")
    u = current_user(st_user, CFG)
    assert u.name == "Alice" and u.email == "alice@example.com" and u.id == "alice@example.com"
    assert u.roles == frozenset({"viewer", "editor", "approver"})


def test_mapping_user_info_and_unknown_email_gets_default():
    u = current_user({"is_logged_in": True, "email": "zed@example.com", "name": "Zed"}, CFG)
    assert u.roles == frozenset({"viewer", "editor"})


def test_no_login_configured_falls_back_to_local_operator_from_config():
    u = current_user(SimpleNamespace(), CFG)           # st.user without [auth]: no is_logged_in at all
    assert (u.name, u.email, u.id) == ("ops-box", None, "ops-box")
    assert u.roles == frozenset({"viewer", "editor"})
    assert current_user({}, CFG).id == "ops-box"


def test_login_configured_but_not_logged_in_is_an_anonymous_viewer():
    u = current_user(SimpleNamespace(is_logged_in=False), CFG)
    assert (u.id, u.roles) == ("anonymous", frozenset({"viewer"}))
    assert current_user({"is_logged_in": False}, CFG).roles == frozenset({"viewer"})


def test_studio_user_env_wins_and_default_name(monkeypatch):
    assert current_user(None, {}).name == "local-operator"
    assert current_user(None, {}).roles == frozenset({"viewer", "editor"})   # no config: editor
    monkeypatch.setenv("STUDIO_USER", "vic")
    u = current_user(None, CFG)
    assert u.name == "vic" and u.roles == frozenset({"viewer"})


def test_roles_file_from_env(tmp_path, monkeypatch):
    f = tmp_path / "roles.toml"
    f.write_text('[local]\nuser = "night-shift"\n[roles]\ndefault = ["viewer"]\n"night-shift" = ["approver"]\n')
    monkeypatch.setenv("STUDIO_ROLES", str(f))
    u = current_user()
    assert u.name == "night-shift" and u.roles == frozenset({"viewer", "approver"})
    assert roles_for("someone", load_config()) == frozenset({"viewer"})


def test_bad_role_names_the_key(tmp_path):
    f = tmp_path / "roles.toml"
    f.write_text('[roles]\n"bob@example.com" = ["editor", "admin"]\n')
    with pytest.raises(ValidationError) as ei:
        load_config(f)
    assert ei.value.path == "roles.bob@example.com" and "admin" in str(ei.value)


def test_missing_file_is_empty_config(tmp_path):
    assert load_config(tmp_path / "nope.toml") == {}


def test_project_roles_file_parses_and_fails_closed_for_oidc():
    cfg = load_config(identity.DEFAULT_ROLES_PATH)
    assert all(set(v) <= set(ROLES) for v in cfg["roles"].values())
    assert "default" not in cfg["roles"]             # the shipped file must not widen unlisted accounts
    u = current_user({"is_logged_in": True, "email": "mallory@example.com", "name": "M"}, cfg)
    assert u.roles == frozenset({"viewer"})
    assert current_user({"is_logged_in": True, "email": "carol@example.com"}, cfg).roles == frozenset({"viewer"})
    assert current_user(None, cfg).roles == frozenset({"viewer", "editor"})   # local-operator, unlisted


def test_unlisted_oidc_account_is_a_viewer_unless_default_widens_it():
    listed_only = {"roles": {"alice@example.com": ["editor", "approver"]}}
    zed = {"is_logged_in": True, "email": "zed@example.com", "name": "Zed"}
    u = current_user(zed, listed_only)
    assert (u.roles, u.authenticated) == (frozenset({"viewer"}), True)
    assert current_user(zed, {}).roles == frozenset({"viewer"})           # no roles file at all
    assert current_user({"is_logged_in": True, "email": "alice@example.com"}, listed_only).roles == \
        frozenset({"viewer", "editor", "approver"})
    assert current_user(zed, {"roles": {"default": ["editor"]}}).roles == frozenset({"viewer", "editor"})
    # local mode keeps editor for a lone operator, unless default says otherwise
    local = current_user(None, listed_only)
    assert (local.roles, local.authenticated) == (frozenset({"viewer", "editor"}), False)
    assert current_user(None, {"roles": {"default": ["viewer"]}}).roles == frozenset({"viewer"})


def test_users_carry_the_os_account(monkeypatch):
    monkeypatch.setattr(identity, "os_account", lambda: "sre7")
    monkeypatch.setenv("STUDIO_USER", "alice@example.com")
    u = current_user(None, CFG)
    assert (u.id, u.os_account, u.authenticated) == ("alice@example.com", "sre7", False)
    o = current_user({"is_logged_in": True, "email": "bob@example.com"}, CFG)
    assert (o.os_account, o.authenticated) == ("sre7", True)
    assert User("a", os_account="x") == User("a", os_account="y")       # not part of who the user is


def test_os_account_is_the_uid_name_not_the_user_env(monkeypatch):
    pwd = pytest.importorskip("pwd")
    import os

    real = pwd.getpwuid(os.getuid()).pw_name
    monkeypatch.setenv("USER", "someone-else")
    monkeypatch.setenv("LOGNAME", "someone-else")
    assert identity.os_account() == real


def test_require():
    viewer = User("vic", None, frozenset({"viewer"}))
    require(viewer, "viewer")
    with pytest.raises(PermissionDenied) as ei:
        require(viewer, "editor")
    assert "'editor'" in str(ei.value) and "vic" in str(ei.value)
    with pytest.raises(ValueError):
        require(viewer, "admin")
