"""Issue 5's end-to-end journey in a real headless Chromium: tune a threshold, apply it, audit it, roll it
back, export it.

A demo database (``data.generate``: 2 services x 3 days, demo policy seeded as v1) is built in a temporary
folder and served by ``streamlit run app.py`` on a free localhost port. Then, as one user:

1. Thresholds: pick ``error_rate_pct{service="api-gateway"}`` (no rule covers it), start a new rule, drop
   its critical level (a warning-only rule is not a significant change, so it needs no second person),
   lower the warning slider from the suggested level (the 99th percentile of the first 70 % of the
   history, incidents left out: ``core.alerting.recommend``) to 0.5 % and see the summary cards move to the
   numbers ``core.alerting.replay`` gives for that rule, worked out before the server started;
2. Apply: the dialog says it takes effect at once; give a reason, confirm: v2 is in force;
3. Policies: v2 in the history and its ``policy.apply`` entry in the audit log (chain intact);
4. roll back to v1 through the dialog: v3, with its ``policy.rollback`` audit entry;
5. download the Prometheus rules of v3 and read them back with ``yaml.safe_load``;
6. stop the server and check the database says the same (three versions, v3 equal in content to v1).

Skipped (with the reason) when Chromium or Playwright is missing. Screenshots are kept in
``test-artifacts/browser/<test>/`` (``tests.test_browser.artifact_dir``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

try:
    from playwright.sync_api import Error as PlaywrightError
except ImportError:                           # the browser_page fixture skips the test then
    PlaywrightError = RuntimeError

from tests.apptest_util import ROOT
from tests.test_browser import _free_port, _shot_dir, _wait_healthy, browser_page  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]

KEY = 'error_rate_pct{service="api-gateway"}'
RULE = "ApiGatewayErrorRatePctHigh"          # the name the page gives a new rule for KEY
TARGET = 0.5                                 # the warning threshold the journey sets (percent)
USER = "journey-sre"
APPLY_REASON = "journey: warn on api-gateway error rate above 0.5 %"
ROLLBACK_REASON = "journey: back to the seeded policy"
WAIT_MS = 30_000
#: the rows of a Streamlit dataframe: glide-data-grid keeps an accessible copy of the visible cells in
#: a <table> inside its <canvas>; header cells first
GRID_ROWS_JS = ("el => Array.from(el.querySelectorAll('table tr'))"
                ".map(r => Array.from(r.querySelectorAll('th,td')).map(c => c.textContent))")


def _choose(page, box, option: str, tries: int = 3) -> None:
    """Pick ``option`` in the Streamlit selectbox ``box``. A click can land while the page is still
    settling after a rerun (the box takes focus but its menu stays shut), so the menu is opened again,
    by the keyboard, a bounded number of times."""
    wanted = page.get_by_role("option", name=option, exact=True)
    box.locator("input").click()
    for _ in range(tries):
        try:
            wanted.wait_for(timeout=5_000)
            break
        except PlaywrightError:
            box.locator("input").press("ArrowDown")
    wanted.click()


@dataclass
class Journey:
    url: str
    db: Path
    stop: Callable[[], None]
    series: object            # the KEY series' SeriesData, read from the database before the server started
    audit_entries: int        # audit entries after the build (uploads, incidents, the seed, ...)
    seeded_rules: int         # rules in the seeded v1


def _expected_cards(data, warning: float) -> dict[str, str]:
    """The summary cards the page must show for the warning-only rule at ``warning``."""
    from core.alerting.replay import replay
    from core.alerting.rules import Rule
    from ui.thresholds.view import summary_cards

    rule = Rule.from_dict({"name": RULE, "series": KEY, "comparator": ">", "warning": warning, "for": "5m",
                           "missing": "nodata", "unit": "percent"})
    s = replay(rule, data.values, series=KEY).summary(severity="warning", incidents=data.incidents)
    return {label: value for label, value, _ in summary_cards(s)}


@pytest.fixture
def journey(tmp_path) -> Iterator[Journey]:
    """A running ``streamlit run app.py`` over a fresh demo database, acting as :data:`USER` (editor)."""
    from core.data.store import Store
    from core.data.store.audit import list_audit
    from core.policy import versions as pol
    from data.generate import write_demo
    from ui.thresholds.editor import make_series_data

    db = tmp_path / "journey.duckdb"
    summary = write_demo(tmp_path / "demo", db, services=2, days=3)
    assert summary["policy"], "the demo policy was not seeded"
    with Store(db) as s:                      # read before the server takes the database's lock
        data = make_series_data(KEY, s.get_points(KEY), s.list_incidents(KEY), "percent")
        n_audit = len(list_audit(s))
        seeded = pol.history(s)
    assert [v.number for v in seeded] == [1], "expected the demo policy as the only version"
    roles = tmp_path / "roles.toml"
    roles.write_text(f'[local]\nuser = "{USER}"\n[roles]\ndefault = ["editor"]\n')
    port = _free_port()
    log = tmp_path / "streamlit.log"
    env = {**os.environ, "STUDIO_DB": str(db), "STUDIO_ROLES": str(roles), "STUDIO_USER": USER,
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    cmd = [sys.executable, "-m", "ui.serve", "run", "app.py", "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)

    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield Journey(url, db, stop, data, n_audit, len(seeded[0].rule_dicts))
    finally:
        stop()


# ---------------------------------------------------------------------------- page helpers
def _cards(main) -> dict[str, str]:
    out = {}
    for m in main.get_by_test_id("stMetric").all():
        label = m.get_by_test_id("stMetricLabel").inner_text().strip()
        out[label] = m.get_by_test_id("stMetricValue").inner_text().strip()
    return out


def _wait_cards(main, want: dict[str, str], what: str) -> None:
    """Wait (bounded) until the summary cards show exactly ``want``."""
    deadline = time.monotonic() + WAIT_MS / 1000
    got: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            got = _cards(main)
        except PlaywrightError:               # an element was replaced by a rerun while being read
            got = {}
        if all(got.get(k) == v for k, v in want.items()):
            return
        time.sleep(0.25)
    raise AssertionError(f"{what}: cards show {got}, expected {want}")


def _grid(main, must_contain: str) -> list[dict[str, str]]:
    """Rows (dicts by column header) of the visible dataframe whose cells include ``must_contain``;
    waits (bounded) for it, since the grid fills its accessible table after drawing."""
    deadline = time.monotonic() + WAIT_MS / 1000
    rows: list[list[str]] = []
    while time.monotonic() < deadline:
        for grid in main.locator("[data-testid=stDataFrame]:visible").all():
            try:
                rows = grid.evaluate(GRID_ROWS_JS)
            except PlaywrightError:           # replaced by a rerun while being read
                continue
            if any(must_contain in c for r in rows[1:] for c in r):
                return [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]
        time.sleep(0.25)
    raise AssertionError(f"no visible table shows {must_contain!r} (last one read: {rows})")


def _lap(t0: float, what: str) -> None:
    print(f"{time.monotonic() - t0:6.1f} s  {what}")


def _no_exception(page) -> None:
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()


# ---------------------------------------------------------------------------- the journey
def test_tune_apply_audit_rollback_export(browser_page, journey, tmp_path):  # noqa: F811  (skips before the build)
    shots = _shot_dir(tmp_path)
    try:
        _journey(journey, browser_page, shots)
    except Exception:
        browser_page.screenshot(path=str(shots / "failed.png"), full_page=True)
        print(browser_page.get_by_test_id("stMain").inner_text()[-3000:])
        raise


def _journey(journey: Journey, page, shots: Path) -> None:
    from playwright.sync_api import expect

    t0 = time.monotonic()
    page.goto(journey.url)
    main = page.get_by_test_id("stMain")
    nav = page.get_by_test_id("stSidebarNav")
    main.get_by_role("heading", name="Overview").wait_for()
    _lap(t0, "overview")

    # 1. Thresholds: a new warning-only rule for the api-gateway error rate, then lower its threshold
    nav.get_by_role("link", name="Thresholds").click()
    main.get_by_role("heading", name="Thresholds").wait_for()
    main.get_by_test_id("stMetric").first.wait_for()
    main.get_by_test_id("stSelectbox").filter(has_text="Series").locator("input").click()
    page.get_by_role("option", name=KEY, exact=True).click()
    main.get_by_role("button", name="New rule for this series").click()
    main.get_by_text(f"New rule {RULE}").wait_for()
    main.get_by_test_id("stCheckbox").filter(has_text="Critical").click()
    expect(main.get_by_role("radio", name="critical")).to_have_count(0, timeout=WAIT_MS)
    slider = main.get_by_role("slider", name=re.compile(r"^warning threshold"))
    start = float(slider.get_attribute("aria-valuetext"))
    from ui.thresholds.editor import suggest_rule
    suggested = suggest_rule(journey.series)["warning"]      # the engine's balanced level, on the slider grid
    assert start == pytest.approx(suggested, abs=1e-9)
    main.get_by_text("Held-out check of the suggested levels").first.wait_for()
    before = _expected_cards(journey.series, start)
    _wait_cards(main, before, f"warning at {start}")
    page.screenshot(path=str(shots / "1_thresholds_p99.png"), full_page=True)

    _lap(t0, "new rule at p99")
    slider.focus()
    page.keyboard.press("Home")               # to the slider's minimum, then keyboard steps up (bounded)
    for _ in range(200):
        if float(slider.get_attribute("aria-valuetext")) >= TARGET - 1e-9:
            break
        page.keyboard.press("ArrowRight")
    assert float(slider.get_attribute("aria-valuetext")) == pytest.approx(TARGET)
    after = _expected_cards(journey.series, TARGET)
    assert after["Episodes / week"] != before["Episodes / week"]         # the change is visible at all
    _wait_cards(main, after, f"warning at {TARGET}")
    main.get_by_text(f"warning > {TARGET:g}").first.wait_for()           # the chart's threshold line moved
    _no_exception(page)
    page.screenshot(path=str(shots / "2_thresholds_moved.png"), full_page=True)

    _lap(t0, "thresholds tuned")

    # 2. Apply: not significant, so in force at once
    main.get_by_role("button", name="Apply...").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Takes effect at once (not a significant change).").wait_for()
    diff = _grid(dialog, RULE)
    assert [(r["rule"], r["change"]) for r in diff] == [(RULE, "added")]
    page.screenshot(path=str(shots / "3_apply_dialog.png"))
    dialog.get_by_label("Reason (required, recorded in the audit trail)").fill(APPLY_REASON)
    dialog.get_by_role("button", name="Confirm and apply").click()
    main.get_by_text("Created v2: it is in force.").first.wait_for()
    dialog.wait_for(state="detached")
    _no_exception(page)

    _lap(t0, "applied")

    # 3. Policies: v2 in history, its audit entry, chain intact
    nav.get_by_role("link", name="Policies").click()
    main.get_by_role("heading", name="Policies").wait_for()
    version = main.get_by_test_id("stMetric").filter(has_text="Version").get_by_test_id("stMetricValue")
    expect(version).to_have_text("v2", timeout=WAIT_MS)
    page.get_by_role("tab", name="History & diff").click()
    hist = _grid(main, APPLY_REASON)
    assert [(r["version"], r["status"], r["author"]) for r in hist] == [
        ("2", "approved", USER), ("1", "approved", "seed")]
    assert hist[0]["reason"] == APPLY_REASON and hist[0]["in force"] == "true"
    page.get_by_role("tab", name="Audit log").click()
    main.get_by_text(f"Audit chain intact, {journey.audit_entries + 1} entries.").wait_for()
    log = _grid(main, APPLY_REASON)                                   # newest first
    assert (log[0]["actor"], log[0]["action"], log[0]["reason"]) == (USER, "policy.apply", APPLY_REASON)
    page.screenshot(path=str(shots / "4_policies_audit.png"), full_page=True)

    _lap(t0, "history and audit seen")

    # 4. Roll back to v1 through the dialog: v3
    page.get_by_role("tab", name="History & diff").click()
    main.get_by_role("button", name="Roll back...").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Creates v3 with the rules of v1").wait_for()
    dialog.get_by_text(f"0 added, 1 removed, 0 changed, {journey.seeded_rules} unchanged").wait_for()
    page.screenshot(path=str(shots / "5_rollback_dialog.png"))
    dialog.get_by_label("Reason (recorded in the audit trail)").fill(ROLLBACK_REASON)
    dialog.get_by_role("button", name="Roll back", exact=True).click()
    main.get_by_text("Rolled back: v3 has the rules of v1.").first.wait_for()
    dialog.wait_for(state="detached")
    expect(version).to_have_text("v3", timeout=WAIT_MS)
    page.get_by_role("tab", name="History & diff").click()
    hist = _grid(main, ROLLBACK_REASON)
    assert [r["version"] for r in hist] == ["3", "2", "1"]
    assert hist[0]["reason"] == f"rollback to v1: {ROLLBACK_REASON}" and hist[0]["in force"] == "true"
    page.get_by_role("tab", name="Audit log").click()
    main.get_by_text(f"Audit chain intact, {journey.audit_entries + 2} entries.").wait_for()
    log = _grid(main, ROLLBACK_REASON)
    assert (log[0]["actor"], log[0]["action"]) == (USER, "policy.rollback") and ROLLBACK_REASON in log[0]["reason"]
    assert (log[1]["action"], log[1]["reason"]) == ("policy.apply", APPLY_REASON)
    _no_exception(page)
    page.screenshot(path=str(shots / "6_after_rollback.png"), full_page=True)

    _lap(t0, "rolled back")

    # 5. Export v3 as Prometheus rules and read the file back
    page.get_by_role("tab", name="Import / export").click()
    box = main.locator(".st-key-pol-export_v:not([data-stale='true'])")    # the export's Version selectbox
    _choose(page, box, "v3")
    expect(main.locator("[data-stale='true']")).to_have_count(0, timeout=WAIT_MS)   # the rerun is done
    # the first rerun after a write drops the flash line above the tabs, which resets them to the first
    # tab (Policies page, Streamlit 1.67): open the export tab again
    page.get_by_role("tab", name="Import / export").click()
    with page.expect_download(timeout=WAIT_MS) as dl:
        main.get_by_role("button", name="Prometheus rules YAML").click()
    download = dl.value
    assert download.suggested_filename == "default-v3.rules.yml"
    doc = yaml.safe_load(Path(download.path()).read_text(encoding="utf-8"))
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert doc["groups"] and rules and all(r.get("alert") and r.get("expr") for r in rules)
    names = {r["alert"] for r in rules}
    assert RULE not in names and "ApiGatewayLatencyHigh" in names                 # v3 = v1's rules
    gw = [r["expr"] for r in rules if r["alert"] == "ApiGatewayLatencyHigh"]
    assert any('latency_p95_ms{service="api-gateway"}' in e and "> 150" in e for e in gw), gw
    page.screenshot(path=str(shots / "7_export.png"), full_page=True)
    _no_exception(page)

    _lap(t0, "exported")

    # 6. The database agrees once the server has let go of it
    journey.stop()
    from core.data.store import Store
    from core.data.store.audit import verify_audit
    from core.policy import versions as pol

    with Store(journey.db) as s:
        versions = pol.history(s)
        assert [(v.number, v.status, v.author) for v in versions] == [
            (1, "approved", "seed"), (2, "approved", USER), (3, "approved", USER)]
        assert versions[2].content_hash == versions[0].content_hash
        v2_rule = next(r for r in versions[1].rule_dicts if r["name"] == RULE)
        assert v2_rule["warning"] == TARGET and v2_rule.get("critical") is None
        assert pol.active_version(s).number == 3
        assert verify_audit(s)[0]
    _lap(t0, "database checked")
