"""Issue 14's story in a real headless Chromium, on the demo: accept a recommendation and apply it, upload a
newer export, see what the change did and a drift notice, watch an alert storm roll the change back, and
check who was told.

The demo (``data.generate``, :data:`tests.story_util.DEMO`: 4 services x 5 metrics x 14 days, the demo policy
seeded as v1) is built so that it ends in the hour before the test starts (:func:`tests.story_util.story_start`),
so the change applied during the test takes effect after the demo and before the newer export, as in real
use. ``data.generate.write_followups`` writes the two later exports: ``newer.csv`` (3 more days of every
series; the api-gateway request rate drops to 60 %) and ``storm.csv`` (2 days of the applied series flapping
above and below any level the recommendation can choose: one episode an hour). ``tests/test_generate.py``
checks those properties on the same data without a browser. A local HTTP server started by the test is the
configured notification channel (one generic webhook, one Slack-compatible), through ``$STUDIO_NOTIFY``.

Steps (one helper each; every page visited is screenshotted and checked for a Streamlit exception):

1. ``overview``: the front page renders.
2. ``accept_recommendation``: Recommendations page, compute, pick the payments error-rate recommendation,
   **Apply selected...**, the preview says it needs a second person, confirm: v2 waits for approval.
3. ``second_person_approves``: an approver logged in through OIDC approves v2 (``core.policy.versions.approve``
   with an authenticated user: the browser session is the local operator, who may not approve their own
   change); Policies shows v2 in force and both audit entries.
4. ``upload`` the newer export on the Data page.
5. ``predicted_vs_actual`` on the Overview [needs ``core.policy.outcomes``, branch s3-14out].
6. ``drift_notice_delivered``: the drift watch and the delivery run as cron would (``python -m core notify
   check-drift`` / ``deliver``); the local server got the drift and the pending-approval notices; the
   Policies page's Notifications list and delivery log show them sent.
7. ``upload`` the storm export.
8. ``rollback_trigger_fires`` [needs ``core.policy.triggers``, branch s3-14out]: the alert-storm trigger rolled
   v2 back; the Overview says so, the audit log has it, the delivery log shows the rollback notice sent.
9. ``database_agrees``: after the server stopped, the store says the same (versions, audit chain, notices).

A step whose feature is missing is not run; the test then ends with ``pytest.skip`` naming those steps
(after every other step ran and passed). Screenshots: ``test-artifacts/browser/story/`` (or
``$STUDIO_TEST_ARTIFACTS/browser/story/``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import Error as PlaywrightError
except ImportError:                           # the browser_page fixture skips the test then
    PlaywrightError = RuntimeError

from tests.apptest_util import ROOT
from tests.story_util import APPLIED, APPLIED_RULE, CONTINUE_DAYS, DEMO, SHIFTED, STORM_HOURS, story_start
from tests.test_browser import artifact_dir, browser_page, serve_app  # noqa: F401  (browser_page: a fixture)
from tests.test_browser_journey import GRID_ROWS_JS, _cards, _choose, _grid

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CRITICAL_IN_FORCE = 5.0      # PaymentsErrorRateHigh's critical level in the demo policy (percent)
USER = "story-sre"
APPROVER = "lead@example.com"
APPLY_REASON = "story: payments error rate pages 15 times a week; take the balanced recommendation"
APPROVE_REASON = "story: reviewed the replay, fine by me"
WAIT_MS = 60_000
VIEWPORT = {"width": 2400, "height": 1300}
COMPUTE_MS = 240_000          # recommending 20 series on a loaded 2-core machine
#: features built on other branches, detected by import (the steps that need them are skipped until merged)
HAS_OUTCOMES = importlib.util.find_spec("core.policy.outcomes") is not None
HAS_TRIGGERS = importlib.util.find_spec("core.policy.triggers") is not None


# ---------------------------------------------------------------------------- the notification endpoint
class Sink:
    """A local HTTP endpoint that answers 200 to every POST and keeps ``(path, json body)``."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    received.append((self.path, json.loads(body or b"{}")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def webhooks(self, kind: str) -> list[dict[str, Any]]:
        return [b for p, b in list(self.received) if p == "/webhook" and b.get("kind") == kind]

    def slack_texts(self) -> list[str]:
        return [b.get("text", "") for p, b in list(self.received) if p == "/slack"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------- the story's state
@dataclass
class Story:
    page: Any
    url: str
    db: Path
    env: dict[str, str]
    exports: dict[str, Any]
    sink: Sink
    shots: Path
    t0: float = field(default_factory=time.monotonic)
    not_run: list[str] = field(default_factory=list)
    recommended: dict[str, str] = field(default_factory=dict)

    @property
    def main(self) -> Any:
        return self.page.get_by_test_id("stMain")

    def lap(self, what: str) -> None:
        print(f"{time.monotonic() - self.t0:6.1f} s  {what}")

    def shot(self, name: str, full_page: bool = True) -> None:
        """Fail on any Streamlit exception shown, then keep a screenshot of the page."""
        no_exception(self.page)
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=full_page)

    def go(self, title: str) -> None:
        self.page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
        self.main.get_by_role("heading", name=title).first.wait_for(timeout=WAIT_MS)

    def cli(self, *args: str) -> str:
        """``python -m core ARGS`` against the story's database (as cron would run it); its output."""
        r = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=self.env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, f"python -m core {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
        return r.stdout


def no_exception(page: Any) -> None:
    exc = page.get_by_test_id("stException")
    assert exc.count() == 0, exc.first.inner_text()


@pytest.fixture
def story(browser_page, tmp_path, monkeypatch) -> Iterator[Story]:  # noqa: F811  (browser_page skips first)
    """The demo database and its two later exports, the notification sink, and the app serving them."""
    from core.data.store import Store
    from core.policy import versions as pol
    from data.generate import write_demo, write_followups

    start = story_start()
    db = tmp_path / "story.duckdb"
    summary = write_demo(tmp_path / "demo", db, start=start, **DEMO)
    assert summary["policy"], "the demo policy was not seeded"
    exports = write_followups(tmp_path / "later", start=start, continue_days=CONTINUE_DAYS, storm=APPLIED,
                              storm_hours=STORM_HOURS, **DEMO)
    assert exports["shift"] == {SHIFTED: 0.6}
    with Store(db) as s:
        assert [v.number for v in pol.history(s)] == [1]
    sink = Sink()
    notify_file = tmp_path / "notify.toml"
    notify_file.write_text(
        "[notify]\ndedup_window_s = 3600\nmax_attempts = 3\nbackoff_s = 1\ntimeout_s = 5\n\n"
        f'[[notify.channel]]\nname = "story-webhook"\ntype = "webhook"\nurl = "{sink.url}/webhook"\n\n'
        f'[[notify.channel]]\nname = "story-slack"\ntype = "slack"\nurl = "{sink.url}/slack"\n')
    roles = tmp_path / "roles.toml"
    roles.write_text(f'[local]\nuser = "{USER}"\n[roles]\ndefault = ["editor"]\n')
    env = {"STUDIO_ROLES": str(roles), "STUDIO_USER": USER, "STUDIO_NOTIFY": str(notify_file)}
    for k, v in env.items():      # this process's own core calls (the approval) see the same configuration
        monkeypatch.setenv(k, v)
    try:
        with serve_app(db, tmp_path, **env) as url:
            yield Story(browser_page, url, db, {**os.environ, "STUDIO_DB": str(db)}, exports, sink,
                        artifact_dir("story"))
    finally:
        sink.close()


# ---------------------------------------------------------------------------- the steps
def overview(st: Story) -> None:
    st.page.set_viewport_size(VIEWPORT)      # wide: the delivery log's last columns (ok, http_status) are drawn
    st.page.goto(st.url)
    st.main.get_by_role("heading", name="Overview").first.wait_for(timeout=WAIT_MS)
    st.page.get_by_test_id("stMetric").first.wait_for()
    st.main.get_by_role("heading", name="Recent notifications").wait_for()   # the script ran to its end
    st.shot("01_overview")
    st.lap("overview")


def accept_recommendation(st: Story) -> None:
    """Compute the fleet's recommendations, accept the one for APPLIED and apply it through the preview."""
    st.go("Recommendations")
    st.main.get_by_role("button", name="Compute recommendations").click()
    st.main.get_by_text(re.compile(r"series recommended \(balanced\)")).wait_for(timeout=COMPUTE_MS)
    from playwright.sync_api import expect

    detail = st.main.get_by_test_id("stSelectbox").filter(has_text="Detail")
    _choose(st.page, detail, APPLIED)
    expect(detail.locator("input")).to_have_value(APPLIED, timeout=WAIT_MS)
    expect(st.main.locator("[data-stale='true']")).to_have_count(0, timeout=WAIT_MS)   # the rerun is done
    st.main.get_by_text(f"Constraint: critical may move at most 20% per apply (from {CRITICAL_IN_FORCE:g})").first \
        .wait_for(timeout=WAIT_MS)                                   # the detail view is APPLIED's
    cards = {k: v for k, v in _cards(st.main).items()
             if k in ("Recommended warning", "Critical", "Predicted episodes / week", "Risk")}
    assert len(cards) == 4, cards
    st.recommended = cards
    st.shot("02_recommendations")
    st.lap(f"recommendations computed; {APPLIED}: {cards}")

    _choose(st.page, st.main.get_by_test_id("stMultiSelect").filter(has_text="Recommendations to apply"), APPLIED)
    st.page.keyboard.press("Escape")
    st.main.get_by_role("button", name="Apply selected...").click()
    dialog = st.page.get_by_role("dialog")
    dialog.get_by_text("Needs approval by a second person").wait_for(timeout=WAIT_MS)
    diff = _grid(dialog, APPLIED_RULE)                                # one row per changed field
    assert {(r["rule"], r["change"]) for r in diff} == {(APPLIED_RULE, "changed")}, diff
    assert {"warning", "critical"} <= {r["field"] for r in diff}, diff
    assert float(next(r["before"] for r in diff if r["field"] == "critical")) == CRITICAL_IN_FORCE
    st.shot("03_apply_preview", full_page=False)
    dialog.get_by_label("Reason (required, recorded in the audit trail)").fill(APPLY_REASON)
    dialog.get_by_role("button", name="Confirm and apply").click()
    st.main.get_by_text("Created v2: waits for a second person's approval.").first.wait_for(timeout=WAIT_MS)
    dialog.wait_for(state="detached")
    st.shot("04_applied_pending")
    st.lap("recommendation applied: v2 waits for approval")


def second_person_approves(st: Story) -> None:
    """The approver (logged in through OIDC, so not the local operator's claimed name) approves v2."""
    from core.data.store import Store, audit
    from core.policy import versions as pol
    from core.policy.identity import User

    lead = User(name="lead", email=APPROVER, roles=frozenset({"viewer", "approver"}), authenticated=True)
    with Store(st.db) as s:
        audit.install(s)
        v = pol.approve(s, 2, lead, APPROVE_REASON)
    assert v.status == "approved"
    st.go("Policies")
    version = st.main.get_by_test_id("stMetric").filter(has_text="Version").get_by_test_id("stMetricValue")
    _wait_text(version, "v2", "the Policies page's version in force")
    _grid(st.main, APPLIED_RULE)                                       # the rules in force list it
    st.page.get_by_role("tab", name="Audit log").click()
    st.main.get_by_text(re.compile(r"Audit chain intact, \d+ entries\.")).wait_for(timeout=WAIT_MS)
    log = _grid(st.main, APPROVE_REASON)                               # newest first
    assert (log[0]["actor"], log[0]["action"], log[0]["reason"]) == (APPROVER, "policy.approve", APPROVE_REASON)
    assert [(r["actor"], r["action"]) for r in log[1:3]] == [(USER, "notify.enqueue"), (USER, "policy.apply")], log
    assert log[2]["reason"] == APPLY_REASON                            # the approval request went out with it
    st.shot("05_policies_v2_in_force")
    st.lap("v2 approved and in force")


def upload(st: Story, path: str, shot: str) -> None:
    """Upload one export through the Data page's file uploader and import it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    name = Path(path).name
    st.go("Data")
    st.main.get_by_role("button", name=re.compile(r"Delete \d+ incident window")).wait_for(timeout=WAIT_MS)
    preview = st.main.get_by_text("detected format")
    for attempt in range(3):      # a rerun racing the first upload can drop it: offer the file again
        st.page.locator("input[type='file']").first.set_input_files(path)
        try:
            preview.first.wait_for(timeout=20_000)
            break
        except PlaywrightTimeout:
            st.page.screenshot(path=str(st.shots / f"{shot}_retry_{attempt}.png"), full_page=True)
    preview.first.wait_for()
    st.main.get_by_role("button", name="Import 1 file(s)").click()
    done = st.main.get_by_text(re.compile(rf"^{re.escape(name)} \(\w+\): .* points accepted"))
    done.first.wait_for(timeout=WAIT_MS * 2)
    text = done.first.inner_text()
    assert "points accepted" in text and " 0 rejected" in text, text
    st.shot(shot)
    st.lap(f"uploaded {name}: {text}")


def predicted_vs_actual(st: Story) -> None:
    """After the newer export: the Overview's recent changes show v2's prediction next to what it did."""
    if not HAS_OUTCOMES:
        st.not_run.append("predicted vs actual on the Overview (no core.policy.outcomes: merge s3-14out)")
        return
    st.go("Overview")
    st.main.get_by_text(re.compile(r"predicted vs\.? actual", re.I)).first.wait_for(timeout=WAIT_MS)
    rows = _grid(st.main, APPLIED_RULE)
    row = next(r for r in rows if any(APPLIED_RULE in c for c in r.values()))
    text = " ".join(row.values())
    assert "v2" in text or "2" in row.values(), row
    st.shot("07_overview_predicted_vs_actual")
    st.lap(f"predicted vs actual: {row}")


def drift_notice_delivered(st: Story) -> None:
    """The drift watch and the delivery (as cron runs them), the local endpoint, and the Policies page's
    notification list and delivery log."""
    out = st.cli("notify", "check-drift")
    drifted = [ln.split(" since ")[0] for ln in out.splitlines() if ": drift" in ln]
    assert SHIFTED in drifted, out
    st.lap(f"drift check: {len(drifted)} series drifted: {', '.join(drifted)}")
    out = st.cli("notify", "deliver")
    assert re.search(r"sent [1-9]\d*, retrying 0, failed 0", out), out
    drift = [b for b in st.sink.webhooks("drift") if b["payload"].get("series") == SHIFTED]
    assert len(drift) == 1, st.sink.received
    assert drift[0]["payload"]["test"] == "ks" and "Recommendations page" in drift[0]["body"]
    pending = st.sink.webhooks("pending_approval")
    assert [b["payload"]["version"] for b in pending] == [2]
    assert any(SHIFTED in t and t.startswith("*Drift:") for t in st.sink.slack_texts())

    st.go("Policies")
    st.page.get_by_role("tab", name="Audit log").click()
    st.main.get_by_test_id("stExpander").filter(has_text="Notifications (").locator("summary").click()
    title = f"Drift: {SHIFTED} has shifted since its baseline period"
    notices = _notification_grid(st, 0, title)
    row = next(r for r in notices if r["title"] == title)
    assert (row["kind"], row["channels"]) == ("drift", "story-slack: sent, story-webhook: sent"), row
    approval = next(r for r in notices if r["kind"] == "pending_approval")
    assert approval["channels"] == "story-slack: sent, story-webhook: sent", approval
    log = _notification_grid(st, 1, title)
    mine = [r for r in log if r["title"] == title]
    assert sorted(r["channel"] for r in mine) == ["story-slack", "story-webhook"], log
    assert all(r.get("ok") == "true" and r.get("http_status") == "200" for r in mine), json.dumps(mine)
    st.main.get_by_test_id("stExpander").filter(has_text="Notifications (").get_by_test_id("stDataFrame").nth(1) \
        .scroll_into_view_if_needed()
    st.shot("08_policies_notifications")
    st.lap("drift notice and approval request delivered and logged")


def rollback_trigger_fires(st: Story) -> None:
    """After the storm export: the alert-storm trigger rolled v2 back (v3 = v1's rules); the Overview, the
    audit log and the delivery log say so."""
    if not HAS_TRIGGERS:
        st.not_run.append("rollback trigger after the storm upload (no core.policy.triggers: merge s3-14out)")
        return
    rollback_in_store(st)
    rollback_on_overview(st)
    rollback_audited_and_delivered(st)
    st.lap("alert storm rolled v2 back; audited and delivered")


def rollback_in_store(st: Story) -> None:
    """v3, with v1's rules, is in force: the rollback the trigger made (waited for, bounded: the check may
    run after the import's rerun)."""
    from core.data.store import Store
    from core.policy import versions as pol

    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        with Store(st.db) as s:
            versions = pol.history(s)
            active = pol.active_version(s)
        if len(versions) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert [v.number for v in versions] == [1, 2, 3], [(v.number, v.status, v.reason) for v in versions]
    assert active.number == 3 and active.content_hash == versions[0].content_hash, active
    assert re.search(r"storm", versions[2].reason, re.I), versions[2].reason


def rollback_on_overview(st: Story) -> None:
    st.go("Overview")
    st.main.get_by_text(re.compile(r"roll(ed)? ?back", re.I)).first.wait_for(timeout=WAIT_MS)
    st.shot("10_overview_rollback")


def rollback_audited_and_delivered(st: Story) -> None:
    st.go("Policies")
    version = st.main.get_by_test_id("stMetric").filter(has_text="Version").get_by_test_id("stMetricValue")
    _wait_text(version, "v3", "the Policies page's version in force after the trigger")
    st.page.get_by_role("tab", name="Audit log").click()
    st.main.get_by_text(re.compile(r"Audit chain intact, \d+ entries\.")).wait_for(timeout=WAIT_MS)
    log = _grid(st.main, "policy.rollback")
    rb = next(r for r in log if r["action"] == "policy.rollback")
    assert re.search(r"storm", rb["reason"], re.I), rb
    st.cli("notify", "deliver")
    rollback = st.sink.webhooks("rollback")
    assert len(rollback) == 1 and "storm" in json.dumps(rollback[0]).lower(), st.sink.received
    assert any("storm" in t.lower() for t in st.sink.slack_texts()), st.sink.slack_texts()
    st.page.reload()                  # the delivery ran in another process: read the log again
    st.main.get_by_role("heading", name="Policies").first.wait_for(timeout=WAIT_MS)
    st.page.get_by_role("tab", name="Audit log").click()
    st.main.get_by_test_id("stExpander").filter(has_text="Notifications (").locator("summary").click()
    notices = _notification_grid(st, 0, "rollback")
    row = next(r for r in notices if r["kind"] == "rollback")
    assert row["channels"] == "story-slack: sent, story-webhook: sent", row
    log = _notification_grid(st, 1, row["title"])
    assert sorted(r["channel"] for r in log if r["title"] == row["title"]) == ["story-slack", "story-webhook"]
    st.shot("11_policies_rollback_audit_and_delivery")


def database_agrees(st: Story) -> None:
    """The store, read by core after the steps: versions, the audit chain, notices and uploads."""
    from core.data.store import Store
    from core.data.store.audit import list_audit, verify_audit
    from core.policy import notify
    from core.policy import versions as pol

    with Store(st.db) as s:
        versions = pol.history(s)
        assert [(v.number, v.status) for v in versions[:2]] == [(1, "approved"), (2, "approved")]
        assert versions[1].author == USER and versions[1].decided_by == APPROVER
        v2 = next(r for r in versions[1].rule_dicts if r["name"] == APPLIED_RULE)
        assert f"{v2['warning']:.4g}" == st.recommended["Recommended warning"]
        assert verify_audit(s)[0]
        actions = list(list_audit(s)["action"])
        assert actions.count("policy.apply") == 1 and actions.count("policy.approve") == 1
        kinds = notify.notices(s, 200)["kind"].tolist()
        assert "drift" in kinds and "pending_approval" in kinds
        uploads = s.query_df("SELECT name FROM uploads ORDER BY id")["name"].tolist()
    assert uploads[-2:] == ["newer.csv", "storm.csv"], uploads
    st.lap("database checked")


def _notification_grid(st: Story, which: int, must_contain: str) -> list[dict[str, str]]:
    """Rows of the Notifications expander's notices (``which`` 0) or delivery log (1) table, once one of its
    cells contains ``must_contain`` (bounded wait: the grid fills its accessible table after drawing)."""
    grid = st.main.get_by_test_id("stExpander").filter(has_text="Notifications (").get_by_test_id("stDataFrame")
    grid = grid.nth(which)
    deadline = time.monotonic() + WAIT_MS / 1000
    rows: list[list[str]] = []
    while time.monotonic() < deadline:
        try:
            rows = grid.evaluate(GRID_ROWS_JS)
        except PlaywrightError:               # replaced by a rerun while being read
            rows = []
        if any(must_contain in c for r in rows[1:] for c in r):
            return [dict(zip(rows[0], r, strict=False)) for r in rows[1:]]
        time.sleep(0.25)
    raise AssertionError(f"the notifications table #{which} shows no {must_contain!r} (read: {rows})")


def _wait_text(locator: Any, want: str, what: str) -> None:
    from playwright.sync_api import expect

    try:
        expect(locator).to_have_text(want, timeout=WAIT_MS)
    except AssertionError as exc:
        raise AssertionError(f"{what}: expected {want!r}") from exc


# ---------------------------------------------------------------------------- the journey
def test_story_on_the_demo(story):
    st = story
    try:
        overview(st)
        accept_recommendation(st)
        second_person_approves(st)
        upload(st, st.exports["newer"], "06_data_newer_uploaded")
        predicted_vs_actual(st)
        drift_notice_delivered(st)
        upload(st, st.exports["storm"], "09_data_storm_uploaded")
        rollback_trigger_fires(st)
        database_agrees(st)
    except Exception:
        st.page.screenshot(path=str(st.shots / "failed.png"), full_page=True)
        print(st.main.inner_text()[-3000:])
        raise
    if st.not_run:
        pytest.skip("every other step passed; not run: " + "; ".join(st.not_run))
