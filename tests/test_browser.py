"""End-to-end in a real headless Chromium: the app starts, the Overview renders, a CSV uploads.

Starts ``streamlit run app.py`` on a free localhost port over a small temporary database and drives
Debian's ``/usr/bin/chromium`` with Playwright. Skipped (with the reason) when either is missing.
Screenshots are kept as test artifacts (:func:`artifact_dir`): ``$STUDIO_SCREENSHOTS`` if set, else
``$STUDIO_TEST_ARTIFACTS/browser/<test>/``, else ``test-artifacts/browser/<test>/`` in the repository (gitignored).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.apptest_util import PAGES_DIR, ROOT, build_small_db

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
START_TIMEOUT_S = 90
UI_TIMEOUT_MS = 45_000
CSV = 'series,timestamp,value\nreq_rate{svc="web"},2026-03-01T00:00:00Z,10\nreq_rate{svc="web"},' \
      '2026-03-01T00:01:00Z,12\nreq_rate{svc="web"},2026-03-01T00:02:00Z,11\n'

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"streamlit not healthy after {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@contextmanager
def serve_app(db: Path, tmp_path: Path, **env_extra: str):
    """Run the app (``python -m ui.serve run app.py``) over ``db`` on a free localhost port until the
    block ends; yields its base URL. ``env_extra``: more environment variables (e.g. STUDIO_ROLES)."""
    port = _free_port()
    log = tmp_path / "streamlit.log"
    env = {**os.environ, "STUDIO_DB": str(db), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **env_extra}
    cmd = [sys.executable, "-m", "ui.serve", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture
def server(tmp_path):
    """A running ``streamlit run app.py`` over a small database; yields its base URL."""
    with serve_app(build_small_db(tmp_path / "browser.duckdb"), tmp_path) as url:
        yield url


@pytest.fixture
def browser_page():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright (python) is not installed: pip install playwright")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def artifact_dir(name: str) -> Path:
    """A fresh folder for one browser test's screenshots, kept after the run: ``<root>/browser/<name>``
    where root is ``$STUDIO_TEST_ARTIFACTS`` or the repository's ``test-artifacts/`` (gitignored)."""
    root = Path(os.environ.get("STUDIO_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    d = root / "browser" / re.sub(r"[^\w.-]+", "_", name)
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True, exist_ok=True)
    return d


def _shot_dir(tmp_path: Path) -> Path:
    """``$STUDIO_SCREENSHOTS`` if set, else :func:`artifact_dir` named after the running test."""
    if os.environ.get("STUDIO_SCREENSHOTS"):
        d = Path(os.environ["STUDIO_SCREENSHOTS"])
        d.mkdir(parents=True, exist_ok=True)
        return d
    current = os.environ.get("PYTEST_CURRENT_TEST", "")       # "tests/x.py::test_name (call)"
    return artifact_dir(current.split("::")[-1].split(" ")[0] or tmp_path.name)


def test_overview_then_upload_on_the_data_page(server, browser_page, tmp_path):
    page = browser_page
    shots = _shot_dir(tmp_path)
    page.goto(server)
    main = page.get_by_test_id("stMain")
    main.get_by_role("heading", name="Overview").wait_for()
    page.get_by_test_id("stMetric").first.wait_for()
    main.get_by_role("heading", name="Fleet health").wait_for()
    main.get_by_text("Quality grade: not computed yet").wait_for()   # the fleet table's freshness line
    main.get_by_role("heading", name="Recent notifications").wait_for()   # the script ran to its sections' end
    metrics = page.get_by_test_id("stMetric").all_inner_texts()
    assert any("Series" in m and "4" in m for m in metrics), metrics
    assert page.get_by_test_id("stException").count() == 0
    page.screenshot(path=str(shots / "overview.png"), full_page=True)

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Data").click()
    main.get_by_role("heading", name="Data").wait_for()
    main.get_by_role("button", name="Delete 0 incident window(s)...").wait_for()  # the run has finished
    csv = tmp_path / "web_rate.csv"
    csv.write_text(CSV)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    preview = main.get_by_text("detected format")
    for attempt in range(3):   # a rerun racing the first upload can drop it: offer the file again
        page.locator("input[type='file']").first.set_input_files(str(csv))
        try:
            preview.wait_for(timeout=15_000)
            break
        except PlaywrightTimeout:
            page.screenshot(path=str(shots / f"upload_retry_{attempt}.png"), full_page=True)
    preview.wait_for()
    main.get_by_role("button", name="Import 1 file(s)").click()
    ok = main.get_by_text("points accepted")
    ok.wait_for()
    assert "web_rate.csv" in ok.inner_text() and "3 points accepted" in ok.inner_text()
    assert page.get_by_test_id("stException").count() == 0
    page.screenshot(path=str(shots / "data_after_upload.png"), full_page=True)

    page.get_by_role("tab", name="Series explorer").click()
    main.get_by_test_id("stSelectbox").filter(has_text="Series").locator("input").click()
    page.get_by_role("option", name='latency_ms{service="api"}').click()
    main.get_by_text("828 points (3 missing)").wait_for()   # 864 - a 36-point gap; 3 NaN values
    main.get_by_text("Gaps (1)").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    page.screenshot(path=str(shots / "data_explorer.png"), full_page=True)
    main.get_by_role("radio", name="Last 1 day").click()      # the window (2026-01-02 23:55, 01-03 23:55]
    main.get_by_text("288 points (0 missing)").wait_for()
    main.get_by_text("Gaps (0)").wait_for()

    # Delete the seeded incident window through its confirm dialog.
    page.get_by_role("tab", name="Upload", exact=True).click()
    main.get_by_test_id("stMultiSelect").locator("input").click()
    page.get_by_role("option", name="#1 latency_ms").click()
    page.keyboard.press("Escape")
    main.get_by_role("button", name="Delete 1 incident window(s)...").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Delete 1 incident window(s)").wait_for()
    page.screenshot(path=str(shots / "delete_incident_dialog.png"))
    dialog.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_text("Deleted 1 incident window(s)").wait_for()
    dialog.wait_for(state="detached")

    # Delete the upload just made, through its confirm dialog (a dialog reruns as a fragment).
    page.get_by_role("tab", name="Uploads").click()
    main.get_by_test_id("stSelectbox").filter(has_text="Upload").locator("input").click()
    page.get_by_role("option", name="#2 web_rate.csv").click()
    main.get_by_role("button", name="Delete this upload...").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Deleting upload #2 (web_rate.csv) removes the 3 points").wait_for()
    page.screenshot(path=str(shots / "delete_dialog.png"))
    dialog.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_text("Deleted upload #2 (web_rate.csv): 3 points removed").wait_for()
    dialog.wait_for(state="detached")
    page.get_by_role("tab", name="Series explorer").click()
    main.get_by_test_id("stSelectbox").filter(has_text="Series").locator("input").click()
    assert page.get_by_role("option").count() == 4  # back to the four seeded series


# Streamlit 1.67 treats a folder named exactly ``pages/`` next to the entry script as a legacy (v1)
# multipage app until some session has called st.navigation (streamlit/runtime/pages_manager.py:
# PagesManager.uses_pages_directory; streamlit/runtime/scriptrunner/script_runner.py: _mpa_v1). So the
# first visit of a freshly started server that goes straight to /data runs pages/data.py without
# app.py: file-name navigation and the default (centred) layout. Renaming the folder fixes it; this
# test then runs as a normal test.
def test_a_direct_url_shows_the_app_navigation_and_wide_layout(server, browser_page, tmp_path):
    page = browser_page
    page.goto(f"{server}/data")   # the first request this server sees
    main = page.get_by_test_id("stMain")
    main.get_by_role("heading", name="Data").wait_for()
    main.get_by_role("button", name="Delete 0 incident window(s)...").wait_for()  # the page ran to its end
    page.screenshot(path=str(_shot_dir(tmp_path) / "direct_data.png"), full_page=True)
    nav = page.get_by_test_id("stSidebarNav")
    links = [t.split("\n")[-1] for t in nav.get_by_role("link").all_inner_texts()]
    titles = re.findall(r'st\.Page\("pages/\w+\.py", title="([^"]+)"', (ROOT / "app.py").read_text())
    assert len(titles) >= 5 and links == titles, (PAGES_DIR, links, titles)    # app.py's navigation, in order
    width = page.get_by_test_id("stMainBlockContainer").bounding_box()["width"]
    assert width > 1000, f"main column is {width:.0f} px wide: not the app's wide layout"
    assert page.get_by_test_id("stException").count() == 0
