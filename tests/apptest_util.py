"""Helpers for page tests: small seeded databases and running a page the way the app runs it.

Pages are run through ``app.py`` (``st.navigation``) and ``AppTest.switch_page``, so
``st.page_link`` targets resolve exactly as in the real app. A page file that ``app.py`` does not
register is run on its own.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"


def _pages_dir() -> str:
    """The folder ``app.py`` registers its pages from (``pages`` unless app.py says otherwise)."""
    found = re.findall(r'st\.Page\(\s*"([^"/]+)/[^"/]+\.py"', APP.read_text())
    return found[0] if found else "pages"


PAGES_DIR = _pages_dir()
PAGES = sorted((ROOT / PAGES_DIR).glob("*.py"))
TIMEOUT = 60  # seconds per script run: generous, the machine is shared

# The small database: 2 services x 2 metrics, 3 days at 5-minute steps.
START = pd.Timestamp("2026-01-01", tz="UTC")
STEP = pd.Timedelta("5min")
N = 3 * 24 * 12
SERVICES = ("api", "db")
GAP = (300, 336)          # points [300, 336) of latency_ms{service="api"} are absent (a 3-hour gap)
NAN_AT = (10, 11, 12)     # ... and these three are reported but missing (NaN)


def small_points() -> pd.DataFrame:
    """Seeded points for :data:`SERVICES`: ``latency_ms`` and ``error_pct`` per service."""
    rng = np.random.default_rng(7)
    ts = pd.date_range(START, periods=N, freq=STEP)
    frames = []
    for svc in SERVICES:
        lat = 120 + 10 * np.sin(np.arange(N) * 2 * np.pi / 288) + rng.normal(0, 3, N)
        err = np.abs(rng.normal(0.5, 0.2, N))
        lat_df = pd.DataFrame({"series": f'latency_ms{{service="{svc}"}}', "ts": ts, "value": lat})
        if svc == "api":
            lat_df.loc[list(NAN_AT), "value"] = np.nan
            lat_df = lat_df.drop(index=range(*GAP))
        frames += [lat_df, pd.DataFrame({"series": f'error_pct{{service="{svc}"}}', "ts": ts, "value": err})]
    return pd.concat(frames, ignore_index=True)


def small_point_count() -> int:
    return len(small_points())


def build_small_db(path: Path) -> Path:
    """Write :func:`small_points` as one upload plus one incident window; returns ``path``."""
    from core.data.store import Store

    with Store(path) as s:
        s.write_points(small_points(), name="seed.csv", sha256="seed-sha", fmt="long", actor="test")
        s.add_incidents(pd.DataFrame({
            "series": ['latency_ms{service="api"}'],
            "start": [START + pd.Timedelta("1D")], "end": [START + pd.Timedelta("1D2h")],
            "kind": ["degradation"], "note": ["seeded"],
        }), source="seed-incidents.csv", actor="test")
    return path


def registered(page: Path) -> bool:
    """Whether ``app.py`` registers this page file with ``st.Page``."""
    return f'"{PAGES_DIR}/{page.name}"' in APP.read_text()


@contextmanager
def studio_db(path: Path):
    """Point ``STUDIO_DB`` at ``path`` for the duration of the block."""
    old = os.environ.get("STUDIO_DB")
    os.environ["STUDIO_DB"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("STUDIO_DB", None)
        else:
            os.environ["STUDIO_DB"] = old


def open_page(page: Path | str):
    """An :class:`AppTest` showing ``page`` (already run once). Needs ``STUDIO_DB`` set."""
    from streamlit.testing.v1 import AppTest

    page = ROOT / PAGES_DIR / Path(page).name
    if registered(page):
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        at.run()
        if page.name != "overview.py":  # the default page
            at.switch_page(f"{PAGES_DIR}/{page.name}")
            at.run()
    else:
        at = AppTest.from_file(str(page), default_timeout=TIMEOUT)
        at.run()
    return at


def texts(at) -> str:
    """Every alert, markdown, caption and title text of a run, joined (for 'is it on screen' checks)."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def metric_values(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def build_demo_db(directory: Path) -> bytes:
    """Bytes of a small demo database (2 services x 3 days at 5-minute steps, demo policy as v1)."""
    from data.generate import write_demo

    write_demo(directory / "csv", directory / "demo.duckdb", services=2, days=3, freq="5min")
    return (directory / "demo.duckdb").read_bytes()


#: the roles file of the page tests: ``ed`` edits, ``carol`` and unlisted accounts only view
EDITOR_AND_VIEWER_ROLES = """
[roles]
ed = ["editor"]
carol = ["viewer"]
default = ["viewer"]
"""


def ok(at):
    """``at`` after asserting its run showed no exception (the exceptions are the failure message)."""
    assert not at.exception, [e.value for e in at.exception]
    return at


@contextmanager
def demo_copy(tmp_path: Path, demo: bytes, roles: str, monkeypatch, user: str = "ed"):
    """A private copy of the demo database as ``STUDIO_DB``, with a roles file and ``STUDIO_USER``."""
    p = tmp_path / "studio.duckdb"
    p.write_bytes(demo)
    (tmp_path / "roles.toml").write_text(roles)
    monkeypatch.setenv("STUDIO_ROLES", str(tmp_path / "roles.toml"))
    monkeypatch.setenv("STUDIO_USER", user)
    with studio_db(p):
        yield p


def app_store(path):
    """The Store instance the app itself holds for ``path`` (a second connection is not allowed)."""
    from ui import state

    return state._store(str(path))
