"""Shared fixtures. NAB reference data is read from ../shared/nab (never copied into the repo)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NAB_DIR = Path(os.environ.get("STUDIO_NAB", ROOT.parent / "shared" / "nab"))


_HYPOTHESIS_TMP: str | None = None


def pytest_configure(config):
    """Keep Hypothesis' storage (example database, constants and unicode caches) out of the tree.

    The installed hypothesis reads ``HYPOTHESIS_STORAGE_DIRECTORY`` the first time it touches storage,
    which its pytest plugin does while collecting (``pytest_collection_modifyitems``), before any
    fixture runs; so it is set here. A value the caller set is kept."""
    global _HYPOTHESIS_TMP
    if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
        _HYPOTHESIS_TMP = tempfile.mkdtemp(prefix="studio-hypothesis-")
        os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = _HYPOTHESIS_TMP


def pytest_unconfigure(config):
    global _HYPOTHESIS_TMP
    if _HYPOTHESIS_TMP is not None:
        if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY") == _HYPOTHESIS_TMP:
            del os.environ["HYPOTHESIS_STORAGE_DIRECTORY"]
        shutil.rmtree(_HYPOTHESIS_TMP, ignore_errors=True)
        _HYPOTHESIS_TMP = None


@pytest.fixture(scope="session", autouse=True)
def _isolated_db(tmp_path_factory):
    """Point ``STUDIO_DB`` at a session tmp file so no test can create or change ``data/studio.duckdb``
    (even when the caller's shell has ``STUDIO_DB`` set). A test that sets ``STUDIO_DB`` itself
    (``monkeypatch.setenv``) still wins for its own duration."""
    path = tmp_path_factory.mktemp("session_db") / "studio.duckdb"
    old = os.environ.get("STUDIO_DB")
    os.environ["STUDIO_DB"] = str(path)
    yield path
    if old is None:
        os.environ.pop("STUDIO_DB", None)
    else:
        os.environ["STUDIO_DB"] = old


@pytest.fixture(scope="session", autouse=True)
def _isolated_audit_dir(tmp_path_factory):
    """Keep the audit key and anchor files (``$STUDIO_AUDIT_DIR``) in a session tmp directory, never in
    the repository or the user's home; a key or anchor set in the caller's shell is ignored here."""
    path = tmp_path_factory.mktemp("audit_dir")
    saved = {k: os.environ.pop(k, None) for k in ("STUDIO_AUDIT_DIR", "STUDIO_AUDIT_KEY", "STUDIO_AUDIT_ANCHOR")}
    os.environ["STUDIO_AUDIT_DIR"] = str(path)
    yield path
    os.environ.pop("STUDIO_AUDIT_DIR", None)
    for k, v in saved.items():
        if v is not None:
            os.environ[k] = v


@pytest.fixture
def store(tmp_path):
    """A fresh Store in a temporary file."""
    from core.data.store import Store

    s = Store(tmp_path / "test.duckdb")
    yield s
    s.close()


@pytest.fixture
def nab_dir() -> Path:
    if not (NAB_DIR / "windows.json").exists():
        pytest.skip(f"NAB reference data not found at {NAB_DIR}")
    return NAB_DIR


def make_points(n: int = 1440, *, series: str = "m", start: str = "2026-01-01", freq: str = "1min",
                seed: int = 0, level: float = 100.0, noise: float = 5.0) -> pd.DataFrame:
    """A seeded points frame: one series of Gaussian noise around ``level``."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    return pd.DataFrame({"series": series, "ts": ts, "value": level + noise * rng.standard_normal(n)})


@pytest.fixture(scope="session")
def demo_db_bytes(tmp_path_factory) -> bytes:
    """A small demo database (2 services x 3 days at 5-minute steps, demo policy as v1), built once
    per session; tests copy it (see tests.apptest_util.demo_copy)."""
    from tests.apptest_util import build_demo_db

    return build_demo_db(tmp_path_factory.mktemp("demo"))
