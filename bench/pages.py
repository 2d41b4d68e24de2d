"""Page render times on the 100-service benchmark database: ``python bench/pages.py [--dir DIR]
[--pages data,trends] [--no-browser] [--no-apptest] [--rebuild]``.

The database (500 series: 100 services x the five demo metrics, 30 days at one minute, about 21.5M
points, the demo incidents and the demo policy) is built once by ``data.generate.write_demo`` (every
CSV goes through ``Store.ingest``, as an upload does) and kept in ``$STUDIO_BENCH_PAGES_DIR``
(default ``/tmp/studio-bench-pages``; ``--dir`` overrides); ``--rebuild`` builds it again. Building
takes several minutes; later runs reuse it. Its audit key stays beside it (``DIR/audit``).

For every page, two ways:

* **AppTest** (``streamlit.testing.v1``, in this process): *first* is the page's first run in a new
  session with ``st.cache_data`` cleared (as after any write: an upload, an apply, another process'
  import), *new session* a second session opening it with the cache warm, *re-render* the run after
  one representative widget change (named in the table). The heavy modules are imported first, as
  the app's warm-up thread does, so import time is not counted.
* **Browser** (Playwright driving ``/usr/bin/chromium``, the app started with
  ``python -m ui.serve run app.py`` on a free port): *first* is from ``goto`` until the page's last
  element is shown and Streamlit reports the script finished (its ``script_finished`` message on the
  websocket) with nothing else running; the server's query cache is dropped before, by touching the
  database file (the change check every page makes then clears it). *Re-render*: from the widget
  change until the same. A Streamlit exception box on any page fails the run.

Goals (issue 14): first render <= 2 s, re-render <= 500 ms. The baseline is a bare page (a title and
one line) rendered by AppTest in the same process; every AppTest figure is also printed as a ratio to
it. The machine is shared: the 1-minute load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

APP = ROOT / "app.py"
DIR_ENV = "STUDIO_BENCH_PAGES_DIR"
DEFAULT_DIR = Path("/tmp/studio-bench-pages")
SPEC = {"services": 100, "days": 30, "seed": 7, "freq": "1min", "metrics": "all"}
GOAL_FIRST_S = 2.0
GOAL_RERENDER_S = 0.5
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
QUIET_S = 0.4          # browser: no script run for this long after the last one = idle
TIMEOUT_S = 120        # per page run (generous: a failing goal is reported, not a hang)


# ---------------------------------------------------------------------------- the database
def bench_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """Where the benchmark database lives: ``given``, else ``$STUDIO_BENCH_PAGES_DIR``, else /tmp."""
    return Path(given or os.environ.get(DIR_ENV) or DEFAULT_DIR)


def use_audit_dir(directory: Path) -> None:
    """Keep the audit key and anchor of the benchmark database beside it (unless the caller set them)."""
    os.environ.setdefault("STUDIO_AUDIT_DIR", str(directory / "audit"))


def ensure_db(directory: Path, rebuild: bool = False, verbose: bool = True) -> Path:
    """The benchmark database in ``directory`` (built when missing, of another spec, or ``rebuild``)."""
    directory.mkdir(parents=True, exist_ok=True)
    use_audit_dir(directory)
    db, stamp = directory / "studio.duckdb", directory / "studio.duckdb.built.json"
    if not rebuild and db.exists() and stamp.exists():
        try:
            if json.loads(stamp.read_text()).get("spec") == SPEC:
                return db
        except (OSError, ValueError):
            pass
    from data.generate import write_demo

    for f in (db, Path(str(db) + ".wal"), stamp):
        f.unlink(missing_ok=True)
    shutil.rmtree(directory / "audit", ignore_errors=True)
    if verbose:
        print(f"building the benchmark database in {directory} (several minutes, once)...", flush=True)
    t = time.perf_counter()
    csv_dir = directory / "csv"
    summary = write_demo(csv_dir, db, services=SPEC["services"], days=SPEC["days"], seed=SPEC["seed"],
                         freq=SPEC["freq"], verbose=verbose)
    shutil.rmtree(csv_dir, ignore_errors=True)
    stamp.write_text(json.dumps({"spec": SPEC, "series": summary["series"], "points": summary["points"],
                                 "seconds": round(time.perf_counter() - t, 1)}))
    return db


def load() -> str:
    """The 1-, 5- and 15-minute load averages as text (the machine is shared)."""
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------- the pages
@dataclass(frozen=True)
class Page:
    """A page, the text its last element shows (the browser waits for it), and its representative
    widget change (``change`` for AppTest, ``click`` for the browser; None = a plain rerun)."""

    title: str
    file: str
    done_text: str
    change_label: str
    change: Callable[[Any], None] | None = None
    click: Callable[[Any], None] | None = None
    url: str = field(default="")
    done_after: str = ""       # the last element's text after the change (default: ``done_text``)

    @property
    def path(self) -> str:
        """The page's URL path (the default page is the app's root)."""
        return "" if self.url == "/" else self.url or Path(self.file).stem


_KEYS: list[str] = []   # the database's series keys, read once before anything else opens it


def _second_key() -> str:
    """The second series key (a widget change picks another series than the default first one)."""
    return _KEYS[1]


def _at_select(key: str, value: Callable[[], Any]) -> Callable[[Any], None]:
    def change(at: Any) -> None:
        at.selectbox(key=key).select(value())
    return change


def _browser_select(label: str, value: Callable[[], str], tab: str | None = None) -> Callable[[Any], None]:
    """Pick ``value`` in the selectbox labelled ``label`` (typing it, then Enter), after opening ``tab``."""
    def click(page: Any) -> None:
        main = page.get_by_test_id("stMain")
        if tab:
            main.get_by_role("tab", name=tab).click()
        box = main.get_by_test_id("stSelectbox").filter(
            has=page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True)).locator("visible=true").first
        box.locator("input").click()
        page.keyboard.type(value())
        page.keyboard.press("Enter")
    return click


def _at_text(key: str, value: str) -> Callable[[Any], None]:
    def change(at: Any) -> None:
        at.text_input(key=key).input(value)
    return change


def _browser_text(label: str, value: str) -> Callable[[Any], None]:
    """Type ``value`` into the text input labelled ``label`` and press Enter."""
    def click(page: Any) -> None:
        box = page.get_by_test_id("stMain").get_by_test_id("stTextInput").filter(
            has=page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True)).first
        box.locator("input").fill(value)
        box.locator("input").press("Enter")
    return click


def _rerun_key(page: Any) -> None:
    """A click that reruns the page without changing a widget: its own link in the navigation."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Overview").click()


def _at_slider_step(key: str) -> Callable[[Any], None]:
    """Move the slider ``key`` one step (up, or down at its maximum)."""
    def change(at: Any) -> None:
        s = at.slider(key=key)
        s.set_value(s.value + s.step if s.value + s.step <= s.max else s.value - s.step)
    return change


def _browser_slider_step(index: int = 0) -> Callable[[Any], None]:
    """Move the ``index``-th slider of the page one step with the keyboard (its thumb focused)."""
    def click(page: Any) -> None:
        thumb = page.get_by_test_id("stMain").get_by_test_id("stSlider").nth(index).get_by_role("slider")
        thumb.focus()
        page.keyboard.press("ArrowRight")
    return click


def _at_trends_resolution(at: Any) -> None:
    at.selectbox(key="trends.resolution").select("15m")


PAGES = (
    Page("Overview", "overview.py", "Recent notifications", "rerun (its navigation link)", None, _rerun_key, url="/"),
    Page("Data", "data.py", "Delete this upload...", "explorer: another series",
         _at_select("data.series", _second_key), _browser_select("Series", _second_key, tab="Series explorer")),
    Page("Trends & anomalies", "trends.py", "Median by weekday and hour (UTC)", "resolution 15m",
         _at_trends_resolution, _browser_select("Resolution", lambda: "15m")),
    Page("Thresholds", "thresholds.py", "Apply...", "another series",
         _at_select("thr.series", _second_key), _browser_select("Series", _second_key)),
    Page("Thresholds (slider)", "thresholds.py", "Apply...", "warning slider one step",
         _at_slider_step("thr.w"), _browser_slider_step(0)),
    Page("Recommendations", "recommendations.py", "Compute recommendations", "preset conservative",
         _at_select("rec.preset", lambda: "conservative"), _browser_select("Preset", lambda: "conservative")),
    Page("Experiments", "experiments.py", "Injected incidents per simulated day", "another series",
         _at_select("exp.series", _second_key), _browser_select("Series", _second_key)),
    Page("SLOs", "slos.py", "Name the SLO to see its budget.", "name a new SLO (budget of the first series)",
         _at_text("slo.name.New SLO...", "bench"), _browser_text("Name", "bench"),
         done_after="Add burn-rate rules to the policy..."),
    Page("Policies", "policies.py", "Export", "audit log: another action",
         _at_select("pol.audit_action", lambda: "upload"),
         _browser_select("Action", lambda: "upload", tab="Audit log")),
)


# ---------------------------------------------------------------------------- AppTest
def _warm_imports() -> None:
    """What the app's warm-up thread and the first page visits import once per server process."""
    import importlib

    from ui import warmup

    warmup._import_all()
    for m in ("plotly.graph_objects", "ui.charts", "ui.widgets", "ui.trends", "ui.thresholds.view",
              "ui.thresholds.editor", "ui.recommendations", "ui.experiments", "ui.slos", "ui.policies",
              "core.alerting.recommend.fleet", "core.slo", "core.experiment.analyse"):
        importlib.import_module(m)


def _check(at: Any, where: str) -> None:
    if at.exception:
        raise AssertionError(f"{where}: exception shown: {[e.value for e in at.exception][:2]}")


def baseline(runs: int = 5) -> dict[str, float]:
    """Median seconds of a bare page (a title and one line) by AppTest in this process: ``first`` (a new
    session's first run, which the page figures ``first`` and ``session`` are compared with) and
    ``rerender`` (a rerun of it)."""
    from streamlit.testing.v1 import AppTest

    first, again = [], []
    for _ in range(runs):
        at = AppTest.from_string("import streamlit as st\nst.title('Bare')\nst.write('one line')",
                                 default_timeout=TIMEOUT_S)
        t = time.perf_counter()
        at.run()
        first.append(time.perf_counter() - t)
        t = time.perf_counter()
        at.run()
        again.append(time.perf_counter() - t)
    return {"first": statistics.median(first), "session": statistics.median(first),
            "rerender": statistics.median(again)}


def apptest_page(page: Page) -> dict[str, float]:
    """``first`` (cold cache), ``session`` (new session, warm cache) and ``rerender`` seconds of a page."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def open_() -> tuple[Any, float]:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
        at.switch_page(f"pages/{page.file}")
        t = time.perf_counter()
        at.run()
        dt = time.perf_counter() - t
        _check(at, page.title)
        return at, dt

    st.cache_data.clear()
    _, first = open_()
    at, session = open_()
    if page.change is not None:
        page.change(at)
    t = time.perf_counter()
    at.run()
    rerender = time.perf_counter() - t
    _check(at, f"{page.title} after {page.change_label}")
    return {"first": first, "session": session, "rerender": rerender}


# ---------------------------------------------------------------------------- browser
class ScriptRuns:
    """Times of the messages on the page's websocket: ``started`` / ``finished`` script runs (the
    server's ``new_session`` and ``script_finished``) and ``requested`` reruns (the browser's
    ``rerun_script``, sent when a widget changes)."""

    def __init__(self, page: Any) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self.finished: list[float] = []
        self.started: list[float] = []
        self.requested: list[float] = []

        def on_received(payload: Any) -> None:
            if not isinstance(payload, (bytes, bytearray)):
                return
            msg = ForwardMsg()
            try:
                msg.ParseFromString(bytes(payload))
            except Exception:  # not a ForwardMsg (never expected): ignore it
                return
            kind = msg.WhichOneof("type")
            if kind == "script_finished":
                self.finished.append(time.perf_counter())
            elif kind == "new_session":
                self.started.append(time.perf_counter())

        def on_sent(payload: Any) -> None:
            if not isinstance(payload, (bytes, bytearray)):
                return
            msg = BackMsg()
            try:
                msg.ParseFromString(bytes(payload))
            except Exception:
                return
            if msg.WhichOneof("type") == "rerun_script":
                self.requested.append(time.perf_counter())

        def on_ws(ws: Any) -> None:
            ws.on("framereceived", on_received)
            ws.on("framesent", on_sent)

        page.on("websocket", on_ws)

    def wait_idle(self, page: Any, after: int, timeout_s: float | None = None) -> float:
        """Wait for a run finished after the ``after``-th one and then ``QUIET_S`` without another run
        starting; returns the time of the last finish."""
        timeout_s = TIMEOUT_S if timeout_s is None else timeout_s
        deadline = time.perf_counter() + timeout_s
        while True:
            page.wait_for_timeout(20)
            now = time.perf_counter()
            if len(self.finished) > after:
                last = self.finished[-1]
                busy = len(self.started) and self.started[-1] > last
                if not busy and now - last >= QUIET_S:
                    return last
            if now > deadline:
                raise TimeoutError(f"no finished script run within {timeout_s:g} s")


def browser_pages(db: Path, pages: list[Page], log_dir: Path) -> dict[str, dict[str, float]]:
    """Browser ``first`` and ``rerender`` seconds per page title."""
    from playwright.sync_api import sync_playwright

    from tests.test_browser import serve_app  # the browser tests' launcher: python -m ui.serve run app.py

    out: dict[str, dict[str, float]] = {}

    with serve_app(db, log_dir) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            warm = browser.new_page(viewport={"width": 1400, "height": 1000})   # server warm-up: imports
            warm.goto(f"{url}/policies")
            warm.get_by_test_id("stMain").get_by_text("Export", exact=True).first.wait_for(
                state="attached", timeout=TIMEOUT_S * 1000)
            warm.close()
            for p in pages:
                try:
                    out[p.title] = _browser_page(browser, url, db, p, log_dir)
                    print(f"  browser {p.title}: " + ", ".join(f"{k} {v:.2f} s" for k, v in out[p.title].items())
                          + f" (load {load()})", flush=True)
                except Exception as exc:   # one page's failure is reported, the others still measured
                    out[p.title] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
                    print(f"  browser {p.title}: FAILED {out[p.title]['error']}", flush=True)
        finally:
            browser.close()
    return out


def _browser_page(browser: Any, url: str, db: Path, p: Page, log_dir: Path) -> dict[str, float]:
    """One page in a new browser tab: ``first``, ``shell`` and ``rerender`` seconds."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.set_default_timeout(TIMEOUT_S * 1000)
        runs = ScriptRuns(page)
        os.utime(db)                       # the server's next change check drops its cache
        t0 = time.perf_counter()
        page.goto(f"{url}/{p.path}")
        page.get_by_test_id("stMain").get_by_text(p.done_text, exact=True).first.wait_for(state="attached")
        shown = time.perf_counter()
        last = runs.wait_idle(page, 0)
        first = max(last, shown) - t0
        shell = runs.started[0] - t0 if runs.started else float("nan")
        _fail_on_exception(page, p.title)
        n, asked = len(runs.finished), len(runs.requested)
        (p.click or _rerun_key)(page)
        last = runs.wait_idle(page, n)
        page.get_by_test_id("stMain").get_by_text(p.done_after or p.done_text, exact=True).first.wait_for(
            state="attached")
        if len(runs.requested) <= asked:
            raise AssertionError(f"{p.title}: {p.change_label} sent no rerun")
        rerender = last - runs.requested[asked]      # from the widget change reaching the socket
        _fail_on_exception(page, f"{p.title} after {p.change_label}")
        page.screenshot(path=str(log_dir / f"{Path(p.file).stem}.png"), full_page=True)
        return {"first": first, "shell": shell, "rerender": rerender}
    except Exception:
        page.screenshot(path=str(log_dir / f"{Path(p.file).stem}-failed.png"), full_page=True)
        raise
    finally:
        page.close()


def _fail_on_exception(page: Any, where: str) -> None:
    boxes = page.get_by_test_id("stException")
    if boxes.count():
        raise AssertionError(f"{where}: Streamlit exception shown: {boxes.first.inner_text()[:500]}")


# ---------------------------------------------------------------------------- report
def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def table(pages: list[Page], at: dict[str, dict[str, float]], br: dict[str, dict[str, float]],
          base: dict[str, float] | None) -> str:
    """The Markdown table of the figures (seconds; AppTest ones with their ratio to the bare page)."""
    rows = ["| page | re-render change | AppTest first | AppTest new session | AppTest re-render | browser first "
            "| browser re-render | goals met |", "|---|---|---|---|---|---|---|---|"]

    def cell(d: dict[str, float], k: str, ratio: bool) -> str:
        v = d.get(k)
        if v is None:
            return "-"
        if k == "first" and "shell" in d:   # browser: the app shell's share (static files, websocket)
            return f"{v:.2f} (shell {d['shell']:.2f})"
        return f"{v:.2f}" + (f" ({v / base[k]:.0f}x)" if ratio and base else "")

    for p in pages:
        a, b = at.get(p.title, {}), br.get(p.title, {})
        if "error" in b:
            rows.append(f"| {p.title} | {p.change_label} | {cell(a, 'first', True)} | {cell(a, 'session', True)} | "
                        f"{cell(a, 'rerender', True)} | failed: {b['error']} | - | no |")
            continue
        firsts = [d["first"] for d in (a, b) if "first" in d]
        rerenders = [d["rerender"] for d in (a, b) if "rerender" in d]
        met = all(x <= GOAL_FIRST_S for x in firsts) and all(x <= GOAL_RERENDER_S for x in rerenders)
        rows.append(f"| {p.title} | {p.change_label} | {cell(a, 'first', True)} | {cell(a, 'session', True)} | "
                    f"{cell(a, 'rerender', True)} | {cell(b, 'first', False)} | {cell(b, 'rerender', False)} | "
                    f"{'yes' if met and (firsts or rerenders) else 'no'} |")
    return "\n".join(rows)


def run(directory: Path, names: list[str] | None = None, apptest: bool = True, browser: bool = True,
        rebuild: bool = False) -> dict[str, Any]:
    """Build or reuse the database, measure, print the table; returns the figures."""
    db = ensure_db(directory, rebuild)
    os.environ["STUDIO_DB"] = str(db)
    from core.data.store import Store

    with Store(db) as s:
        _KEYS[:] = s.series_keys()
    pages = [p for p in PAGES if names is None or Path(p.file).stem in names or p.title in names]
    print(f"database {db} ({json.loads((directory / 'studio.duckdb.built.json').read_text())['points']:,} points); "
          f"load {load()} (1/5/15 min) on {os.cpu_count()} cores", flush=True)
    at: dict[str, dict[str, float]] = {}
    base: dict[str, float] | None = None
    if apptest:
        _warm_imports()
        base = baseline()
        print(f"baseline: bare page by AppTest, first run {base['first'] * 1e3:.0f} ms, rerun "
              f"{base['rerender'] * 1e3:.0f} ms (load {load()})", flush=True)
        for p in pages:
            at[p.title] = apptest_page(p)
            print(f"  AppTest {p.title}: " + ", ".join(f"{k} {v:.2f} s" for k, v in at[p.title].items())
                  + f" (load {load()})", flush=True)
    br: dict[str, dict[str, float]] = {}
    if browser:
        if not CHROMIUM.exists():
            print(f"no Chromium at {CHROMIUM}: browser figures skipped")
        else:
            log_dir = directory / "browser"
            log_dir.mkdir(exist_ok=True)
            br = browser_pages(db, pages, log_dir)
    print(f"\nseconds (ratio to the bare page); goals: first <= {GOAL_FIRST_S:g} s, re-render <= "
          f"{GOAL_RERENDER_S * 1e3:.0f} ms; load {load()} on {os.cpu_count()} cores\n")
    print(table(pages, at, br, base))
    return {"apptest": at, "browser": br, "baseline_s": base, "load": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    global TIMEOUT_S
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=None, help=f"where the database is kept (default ${DIR_ENV} or {DEFAULT_DIR})")
    ap.add_argument("--pages", default=None, help="comma-separated page files (stems) to measure, e.g. data,trends")
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--no-apptest", action="store_true")
    ap.add_argument("--rebuild", action="store_true", help="build the database again")
    ap.add_argument("--timeout", type=float, default=TIMEOUT_S, help=f"seconds per page run (default {TIMEOUT_S})")
    args = ap.parse_args(argv)
    TIMEOUT_S = args.timeout
    names = [n.strip() for n in args.pages.split(",")] if args.pages else None
    run(bench_dir(args.dir), names, apptest=not args.no_apptest, browser=not args.no_browser, rebuild=args.rebuild)
    return 0


if __name__ == "__main__":
    sys.exit(main())
