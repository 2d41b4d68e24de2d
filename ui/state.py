"""The cached store and cached queries. Every write goes through :func:`after_write`, which clears
the query cache so no page shows stale data."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.store import Store, default_db_path


@st.cache_resource(show_spinner=False)
def _store(path: str) -> Store:
    return Store(path)


def store() -> Store:
    """The app's one Store (per database path), shared by every session of this server."""
    return _store(str(default_db_path()))


def after_write() -> None:
    """Call after any write to the store: drops cached query results."""
    st.cache_data.clear()


@st.cache_data(show_spinner=False)
def list_series(path: str) -> pd.DataFrame:
    return _store(path).list_series()


def series_table() -> pd.DataFrame:
    return list_series(str(default_db_path()))


@st.cache_data(show_spinner=False, max_entries=64)
def _points(path: str, key: str, start: object = None, end: object = None) -> pd.DataFrame:
    return _store(path).get_points(key, start, end)


def points(key: str, start: object = None, end: object = None) -> pd.DataFrame:
    return _points(str(default_db_path()), key, start, end)


@st.cache_data(show_spinner=False)
def _incidents(path: str, key: str | None, start: object = None, end: object = None) -> pd.DataFrame:
    return _store(path).list_incidents(key, start, end)


def incidents(key: str | None = None, start: object = None, end: object = None) -> pd.DataFrame:
    return _incidents(str(default_db_path()), key, start, end)


def actor() -> str:
    """Who is acting, for the audit trail (replaced by core.identity once roles exist)."""
    try:
        from core.identity import current_user  # noqa: PLC0415

        return current_user(st).name
    except Exception:  # identity module not there yet, or no login configured
        return "local"
