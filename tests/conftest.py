"""Shared fixtures. NAB reference data is read from ../shared/nab (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NAB_DIR = Path(os.environ.get("STUDIO_NAB", ROOT.parent / "shared" / "nab"))


@pytest.fixture
def store(tmp_path):
    """A fresh Store in a temporary file."""
    from core.store import Store

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
