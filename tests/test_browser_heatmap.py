"""End-to-end in headless Chromium: on the Thresholds page a click on a cell of the level x for heat
map puts that cell's level and `for` into the rule editor (the Streamlit selection event as a browser
sends it, which AppTest cannot produce). Skipped when Chromium or Playwright is missing."""

from __future__ import annotations

import time

import pytest

from tests.test_browser import _shot_dir, browser_page, serve_app  # noqa: F401 (browser_page: a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def demo_server(tmp_path, demo_db_bytes):
    db = tmp_path / "demo.duckdb"
    db.write_bytes(demo_db_bytes)
    with serve_app(db, tmp_path, STUDIO_ROLES=str(tmp_path / "none.toml")) as url:
        yield url


def _settled(page, want_for: str | None = None, timeout_s: float = 60) -> str:
    """Wait until the page shows its three charts and the For field (optionally a given value)."""
    deadline = time.monotonic() + timeout_s
    box = page.locator('input[aria-label="For"]')
    while time.monotonic() < deadline:
        if page.get_by_test_id("stPlotlyChart").count() >= 3 and box.count():
            v = box.input_value()
            if v and (want_for is None or v == want_for):
                return v
        time.sleep(0.5)
    raise AssertionError(f"page did not settle (For = {box.input_value() if box.count() else None!r})")


def test_clicking_a_heat_map_cell_fills_the_editor(demo_server, browser_page, tmp_path):  # noqa: F811
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 2600})
    page.goto(f"{demo_server}/thresholds")
    page.get_by_text("When would it have fired?").wait_for()
    assert _settled(page) == "5m"                                   # FleetCpuHigh, for 5m
    grid = page.get_by_test_id("stPlotlyChart").nth(2)
    grid.scroll_into_view_if_needed()
    cells = grid.locator("g.scatterlayer .trace").first.locator("path.point")
    cells.nth(0).wait_for(state="attached")
    columns = grid.locator("g.xtick text").all_text_contents()
    rows = grid.locator("g.ytick text").all_text_contents()
    assert columns[0] == "0s" and "15m" in columns
    # the cells are laid out level-major: pick the 15m column of a middle row
    row = len(rows) // 2
    target = cells.nth(row * len(columns) + columns.index("15m"))
    b = target.bounding_box()
    page.mouse.click(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)
    assert _settled(page, "15m") == "15m"
    warning = page.get_by_test_id("stSlider").first.get_by_test_id("stSliderThumbValue").inner_text()
    assert float(warning) == pytest.approx(float(rows[row]))        # the cell's level, on the slider
    assert page.get_by_test_id("stException").count() == 0
    page.screenshot(path=str(_shot_dir(tmp_path) / "thresholds_heat_map_click.png"), full_page=True)
