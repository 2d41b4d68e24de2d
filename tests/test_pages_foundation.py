"""Overview and Data pages, the shared UI helpers, and a render check of every page (AppTest)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from core.data.store import Store
from core.errors import IngestError
from tests.apptest_util import (
    GAP,
    PAGES,
    START,
    STEP,
    N,
    app_store,
    build_small_db,
    metric_values,
    open_page,
    small_point_count,
    studio_db,
    texts,
)

GOOD = b'series,timestamp,value\ncpu{host="x"},2026-02-01T00:00:00Z,1.5\ncpu{host="x"},2026-02-01T00:01:00Z,2.5\n' \
       b'cpu{host="y"},2026-02-01T00:00:00Z,7\n'
BAD = b"series,timestamp,value\nm,2026-02-01T00:00:00Z,1\nm,not-a-time,2\n"
API_LAT = 'latency_ms{service="api"}'


@pytest.fixture
def small_db(tmp_path):
    with studio_db(build_small_db(tmp_path / "small.duckdb")) as p:
        yield p


@pytest.fixture
def empty_db(tmp_path):
    p = tmp_path / "empty.duckdb"
    Store(p).close()
    with studio_db(p):
        yield p



# ---------------------------------------------------------------------------- every page
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_page_renders_with_data(small_db, page):
    at = open_page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title and at.title[0].value


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_page_renders_on_an_empty_db(empty_db, page):
    at = open_page(page)
    assert not at.exception, [e.value for e in at.exception]
    if page.name in ("overview.py", "data.py"):
        assert "No data yet" in texts(at)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    """The seeded demo fleet (2 services x 3 days, 10 series) loaded through the real upload path."""
    gen = pytest.importorskip("data.generate")
    d = tmp_path_factory.mktemp("demo")
    gen.write_demo(d / "csv", d / "demo.duckdb", services=2, days=3)
    return d / "demo.duckdb"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_page_renders_on_the_demo_fleet(demo_db, page):
    with studio_db(demo_db):
        at = open_page(page)
    assert not at.exception, [e.value for e in at.exception]
    if page.name == "overview.py":
        m = metric_values(at)
        assert m["Series"] == "10" and m["Uploads"] == "2"  # one CSV per service, five metrics each


# ---------------------------------------------------------------------------- overview
def test_overview_shows_what_is_loaded(small_db):
    at = open_page("overview.py")
    assert not at.exception
    m = metric_values(at)
    # 4 series x 864 points, minus the 36-point gap of the api latency series.
    assert small_point_count() == 4 * N - (GAP[1] - GAP[0]) == 3420
    assert m == {"Series": "4", "Points": "3,420", "Time span": "2d 23h", "Uploads": "1", "Incidents": "1"}
    # the fleet-health table and its quality grades: tests/test_pages_overview.py


def test_quality_is_computed_from_stored_points_in_batches(small_db):
    from ui.state import compute_quality

    s = app_store(small_db)
    whole = compute_quality(s)
    sliced = compute_quality(s, max_points=900)  # one series per batch
    pd.testing.assert_frame_equal(whole, sliced)
    row = whole.set_index("series").loc[API_LAT]
    assert row["points"] == N - (GAP[1] - GAP[0])
    assert row["gaps"] == 1
    assert row["longest_gap_s"] == (GAP[1] - GAP[0]) * STEP.total_seconds()  # 36 missing 5-min slots
    assert row["nan"] == 3


def test_batches_respect_the_point_budget():
    from ui.state import _batches

    s = pd.DataFrame({"key": list("abcde"), "points": [5, 5, 5, 30, 1]})
    assert _batches(s, 10) == [["a", "b"], ["c"], ["d"], ["e"]]
    assert _batches(s, 1000) == [list("abcde")]
    assert _batches(s.iloc[:0], 10) == []


def test_summarize_counts_and_span():
    from ui.state import summarize

    series = pd.DataFrame({"points": [10, 5],
                           "first_ts": pd.to_datetime(["2026-01-02", "2026-01-01"], utc=True),
                           "last_ts": pd.to_datetime(["2026-01-03 00:00", "2026-01-02 06:00"], utc=True)})
    got = summarize(series, pd.DataFrame({"id": [1, 2, 3]}), pd.DataFrame({"id": [1]}))
    assert got["series"] == 2 and got["points"] == 15 and got["uploads"] == 3 and got["incidents"] == 1
    assert got["start"] == pd.Timestamp("2026-01-01", tz="UTC")
    assert got["span_s"] == 2 * 86400.0
    empty = summarize(series.iloc[:0], pd.DataFrame(), pd.DataFrame())
    assert empty["series"] == 0 and empty["points"] == 0 and empty["span_s"] is None


def test_grade_counts_and_worst_series():
    from ui.widgets import grade_counts, worst_series

    q = pd.DataFrame({"series": list("abcde"), "grade": ["A", "F", "insufficient", "A", "C"],
                      "score": [95.0, 10.0, None, 91.0, 75.0], "issues": [[], ["x"], ["few"], [], ["y"]]})
    assert grade_counts(q).to_dict() == {"A": 2, "B": 0, "C": 1, "D": 0, "F": 1, "insufficient": 1}
    assert worst_series(q, 3)["series"].tolist() == ["b", "e", "d"]
    assert worst_series(q, 10)["series"].iloc[-1] == "c"  # unscored after every scored series


@pytest.mark.parametrize("seconds,text", [
    (None, "-"), (float("nan"), "-"), (float("inf"), "-"), (0, "0s"), (0.4, "0s"), (45, "45s"), (59.6, "1m"),
    (125, "2m 5s"), (3600, "1h"), (3605, "1h"), (7500, "2h 5m"), (86400, "1d"), (86400 + 300, "1d"),
    (86400 * 3 + 3600 * 4 + 59, "3d 4h"), (-125, "-2m 5s"), (np.float64(90), "1m 30s")])
def test_fmt_duration(seconds, text):
    from core.fmt import fmt_duration

    assert fmt_duration(seconds) == text


def test_fmt_ts_is_utc_to_the_minute():
    from core.fmt import fmt_ts

    assert fmt_ts(pd.Timestamp("2026-01-02 03:04:59", tz="UTC")) == "2026-01-02 03:04 UTC"
    # 09:30 in UTC+5:30 is 04:00 UTC; a naive time is taken as UTC already.
    assert fmt_ts(pd.Timestamp("2026-01-02 09:30", tz="Asia/Kolkata")) == "2026-01-02 04:00 UTC"
    assert fmt_ts(pd.Timestamp("2026-01-02 09:30")) == "2026-01-02 09:30 UTC"
    assert fmt_ts(None) == "-" and fmt_ts(pd.NaT) == "-" and fmt_ts(float("nan"), missing="") == ""


# ---------------------------------------------------------------------------- charts
def test_chart_points_break_gaps_and_keep_extremes():
    from ui.charts import chart_points, series_figure

    n = 20_000
    ts = pd.date_range("2026-01-01", periods=n, freq="1min", tz="UTC")
    v = np.sin(np.arange(n) / 50.0)
    v[12_345] = 50.0   # a one-point spike
    v[777] = -40.0     # a one-point dip
    df = pd.DataFrame({"ts": ts, "value": v}).drop(index=range(5000, 5100))  # a 100-minute gap
    out = chart_points(df, buckets=1000)
    assert len(out) <= 2 * 1000 + 2 + 1
    assert out["value"].max() == 50.0 and out["value"].min() == -40.0
    nan_ts = out.loc[out["value"].isna(), "ts"]
    assert len(nan_ts) == 1 and ts[4999] < nan_ts.iloc[0] < ts[5100]  # the line breaks inside the gap
    assert out["ts"].is_monotonic_increasing
    inc = pd.DataFrame({"start": [ts[100]], "end": [ts[200]], "kind": ["spike"]})
    fig = series_figure(df, inc, title="t")
    assert len(fig.data[0].x) == len(chart_points(df)) and len(fig.layout.shapes) == 1


# ---------------------------------------------------------------------------- import actions
def test_import_files_keeps_good_files_and_reports_bad_and_duplicates(store):
    from ui.widgets import errors_frame, import_files

    seen = []
    res = import_files([("good.csv", GOOD), ("bad.csv", BAD), ("again.csv", GOOD)], "auto", "tester",
                       store=store, progress=lambda i, n, name: seen.append((i, n, name)))
    assert seen == [(1, 3, "good.csv"), (2, 3, "bad.csv"), (3, 3, "again.csv")]
    good, bad, again = res
    assert good.ok and not good.is_noop and good.report.accepted == 3 and good.report.series_count == 2
    assert not bad.ok and bad.error
    assert again.ok and again.is_noop and again.report.duplicate_of == good.report.upload_id
    assert sorted(store.series_keys()) == ['cpu{host="x"}', 'cpu{host="y"}']
    assert store.list_uploads()["actor"].tolist() == ["tester"]
    errs = errors_frame(res)
    assert list(errs.columns) == ["file", "row", "column", "message"]
    assert errs["file"].tolist() == ["bad.csv"]


def test_import_errors_name_file_row_and_column():
    from ui.widgets import errors_frame, import_files

    class Failing:
        def ingest(self, data, *, fmt, name, actor):
            raise IngestError("value is not a number; expected a float", file=name, row=3, column="value")

    res = import_files([("x.csv", b"whatever")], store=Failing())
    errs = errors_frame(res)
    assert errs.to_dict("records") == [{"file": "x.csv", "row": 3, "column": "value",
                                        "message": "value is not a number; expected a float"}]
    assert res[0].where == "x.csv, row 3, column 'value'"


def test_preview_parses_without_storing(store):
    from ui.widgets import preview_file

    pv = preview_file(GOOD, "good.csv", "auto")
    assert pv["ok"] and pv["rows"] == 3 and pv["points"] == 3 and pv["series"] == 2
    assert pv["format"] and len(pv["head"]) == 3
    assert pv["start"] == pd.Timestamp("2026-02-01", tz="UTC")
    assert not preview_file(BAD, "bad.csv", "auto")["ok"]
    assert store.series_keys() == []


def test_incident_import_stores_once(store):
    from ui.widgets import import_incident_file

    csv = b"series,start,end,kind\n,2026-01-01T00:00:00Z,2026-01-01T01:00:00Z,outage\n"
    first = import_incident_file(("inc.csv", csv), "tester", store=store)
    assert first.ok and not first.is_noop and "1 incident window" in first.message
    second = import_incident_file(("inc.csv", csv), "tester", store=store)
    assert second.ok and second.is_noop
    assert len(store.list_incidents()) == 1
    bad = import_incident_file(("bad.csv", b"series,start,end\nm,2026-01-02,2026-01-01\n"), store=store)
    assert not bad.ok and bad.name == "bad.csv"


# ---------------------------------------------------------------------------- data page
def test_data_page_upload_preview_import_and_duplicate(small_db):
    at = open_page("data.py")
    at.file_uploader[0].set_value([("good.csv", GOOD, "text/csv"), ("bad.csv", BAD, "text/csv")]).run()
    assert not at.exception
    shown = texts(at)
    assert "**good.csv**: detected format" in shown and "3 points in 2 series" in shown
    assert "bad.csv" in " ".join(e.value for e in at.error)  # its preview already says what is wrong
    at.button(key="data.import").click().run()
    assert not at.exception
    ok = [e.value for e in at.success]
    assert any("good.csv" in s and "3 points accepted" in s for s in ok), ok
    assert any("could not be imported" in e.value for e in at.error)
    err_tables = [d.value for d in at.dataframe if "message" in d.value.columns]
    assert err_tables and err_tables[0]["file"].tolist() == ["bad.csv"]
    assert len(app_store(small_db).series_keys()) == 6
    # The same file again is a no-op, reported as such.
    at.file_uploader[0].set_value(("good.csv", GOOD, "text/csv")).run()
    at.button(key="data.import").click().run()
    assert any("Duplicate file" in e.value for e in at.info)
    assert len(app_store(small_db).list_uploads()) == 2


def test_data_page_explorer_and_delete_series_dialog(small_db):
    at = open_page("data.py")
    at.selectbox(key="data.series").set_value(API_LAT).run()
    assert not at.exception
    assert f"{N - 36:,} points (3 missing)" in texts(at)
    gap_tables = [d.value for d in at.dataframe if "duration_s" in d.value.columns]
    assert gap_tables and gap_tables[0]["duration_s"].tolist() == [36 * 300.0]
    at.button(key="data.del_series").click().run()
    shown = texts(at)
    assert f"all {N - 36:,} of its points and 1 incident window(s)" in shown
    at.button(key="dlg.series.yes").click().run()
    assert not at.exception
    s = app_store(small_db)
    assert API_LAT not in s.series_keys() and len(s.series_keys()) == 3
    assert len(s.list_incidents()) == 0
    assert any("Deleted series" in t.proto.body for t in at.toast)


def test_data_page_delete_upload_dialog_then_no_data(small_db):
    at = open_page("data.py")
    at.button(key="data.del_upload").click().run()
    assert "Deleting upload #1 (seed.csv) removes the 3,420 points it last wrote" in texts(at)
    at.button(key="dlg.upload.yes").click().run()
    assert not at.exception
    assert app_store(small_db).series_keys() == []
    assert "No data yet" in texts(at)


def test_data_page_cancel_keeps_everything(small_db):
    at = open_page("data.py")
    at.button(key="data.del_upload").click().run()
    at.button(key="dlg.upload.no").click().run()
    assert not at.exception
    assert "Deleting upload #1" not in texts(at)  # the dialog is closed and stays closed
    at.run()
    assert "Deleting upload #1" not in texts(at)
    assert len(app_store(small_db).series_keys()) == 4


def test_data_page_incident_upload(small_db):
    from core.data.incidents import split_source

    at = open_page("data.py")
    csv = b"series,start,end,kind\n,2026-01-03T00:00:00Z,2026-01-03T00:30:00Z,outage\n"
    at.file_uploader[1].set_value(("outages.csv", csv, "text/csv")).run()
    at.button(key="data.import_inc").click().run()
    assert not at.exception
    assert any("outages.csv: 1 incident window(s) stored." in e.value for e in at.success)
    inc = app_store(small_db).list_incidents()
    labels = split_source(inc["source"])["label"]          # stored source carries the content hash
    assert sorted(labels) == ["outages.csv", "seed-incidents.csv"]
    assert inc.loc[(labels == "outages.csv").to_numpy(), "series"].isna().all()  # a global window
    # the same windows again, under another name: found by content, nothing stored twice
    at.file_uploader[1].set_value(("copy.csv", csv, "text/csv")).run()
    at.button(key="data.import_inc").click().run()
    assert len(app_store(small_db).list_incidents()) == len(inc)


def test_data_page_is_read_only_without_the_editor_role(small_db, tmp_path, monkeypatch):
    roles = tmp_path / "roles.toml"
    roles.write_text('[local]\nuser = "visitor"\n[roles]\ndefault = []\n')
    monkeypatch.setenv("STUDIO_ROLES", str(roles))
    at = open_page("data.py")
    assert not at.exception
    assert "Read-only: visitor lacks the 'editor' role" in texts(at)
    assert at.button(key="data.del_upload").disabled and at.button(key="data.del_series").disabled


# ---------------------------------------------------------------------------- speed
@pytest.mark.slow
def test_overview_is_fast_on_a_100_series_db(tmp_path):
    rng = np.random.default_rng(1)
    n = 3 * 24 * 12
    ts = pd.date_range(START, periods=n, freq=STEP)
    pts = pd.concat([pd.DataFrame({"series": f'm{{svc="s{i:03d}"}}', "ts": ts, "value": rng.normal(0, 1, n)})
                     for i in range(100)], ignore_index=True)
    path = tmp_path / "big.duckdb"
    with Store(path) as s:
        s.write_points(pts, name="big.csv", sha256="big", fmt="long")
    with studio_db(path):
        t0 = time.perf_counter()
        at = open_page("overview.py")
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        at.run()
        warm = time.perf_counter() - t0
    assert not at.exception
    assert metric_values(at)["Series"] == "100"
    print(f"overview on 100 series x {n} points: cold {cold:.2f} s, warm {warm:.2f} s")
    assert warm < 2.0, f"warm overview took {warm:.2f} s"


# ---------------------------------------------------------------------------- time windows
def test_window_start_is_open_and_ends_at_the_last_point():
    from ui.widgets import TIME_RANGES, window_start

    last = pd.Timestamp("2026-01-03 23:55", tz="UTC")
    assert window_start(last, "Last 1 day") == pd.Timestamp("2026-01-02 23:55:00.000001", tz="UTC")
    assert window_start(last, "Last 30 days") == last - pd.Timedelta(days=30) + pd.Timedelta(microseconds=1)
    assert window_start(last, "All") is None and window_start(None, "Last 1 day") is None
    assert window_start(pd.NaT, "Last 7 days") is None and window_start(last, None) is None
    assert list(TIME_RANGES) == ["Last 1 day", "Last 7 days", "Last 30 days", "All"]


def test_gaps_in_window_keeps_overlapping_gaps_whole():
    from ui.widgets import gaps_in_window

    t = pd.to_datetime(["2026-01-01 00:00", "2026-01-01 03:00", "2026-01-02 10:00", "2026-01-02 11:00",
                        "2026-01-03 05:00", "2026-01-03 05:30"], utc=True)
    gaps = pd.DataFrame({"start": t[0::2], "end": t[1::2], "duration_s": [10800.0, 3600.0, 1800.0]})
    got = gaps_in_window(gaps, pd.Timestamp("2026-01-02 10:30", tz="UTC"))
    assert got["duration_s"].tolist() == [3600.0, 1800.0]   # the 10:00-11:00 gap straddles the start
    assert gaps_in_window(gaps, pd.Timestamp("2026-01-02 11:00", tz="UTC"))["duration_s"].tolist() == [1800.0]
    assert gaps_in_window(gaps, None) is gaps


def test_incident_label():
    from ui.widgets import incident_label

    row = {"id": 3, "series": API_LAT, "start": pd.Timestamp("2026-01-02 00:00", tz="UTC"),
           "end": pd.Timestamp("2026-01-02 02:00", tz="UTC"), "kind": "degradation"}
    assert incident_label(row) == f"#3 {API_LAT}: 2026-01-02 00:00 to 02:00 UTC (degradation)"
    row.update(series=None, kind=None, end=pd.Timestamp("2026-01-03 01:00", tz="UTC"))
    assert incident_label(row) == "#3 all series: 2026-01-02 00:00 to 2026-01-03 01:00 UTC"


def _chart_shapes(at) -> int:
    import json

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return len(spec["layout"].get("shapes", []))


def test_data_page_time_range_picker(small_db):
    at = open_page("data.py")
    at.selectbox(key="data.series").set_value(API_LAT).run()
    # Default "Last 7 days" covers all 3 days: the 36-point gap, the 3 NaNs and the incident are in it.
    assert at.segmented_control(key="data.range").value == "Last 7 days"
    shown = texts(at)
    assert f"{N - 36:,} points (3 missing), 2026-01-01 00:00 UTC to 2026-01-03 23:55 UTC" in shown
    assert "**Gaps** (1)" in shown and _chart_shapes(at) == 1
    # Last 1 day = (2026-01-02 23:55, 2026-01-03 23:55]: 288 five-minute points, none missing; the gap
    # (2026-01-02 01:00-04:00) and the incident (2026-01-02 00:00-02:00) both end before it.
    at.segmented_control(key="data.range").set_value("Last 1 day").run()
    assert not at.exception
    shown = texts(at)
    assert "288 points (0 missing), 2026-01-02 23:55 UTC to 2026-01-03 23:55 UTC" in shown
    assert "**Gaps** (0)" in shown and _chart_shapes(at) == 0
    at.segmented_control(key="data.range").set_value("All").run()
    assert f"{N - 36:,} points (3 missing)" in texts(at)


# ---------------------------------------------------------------------------- deleting incidents
def test_incidents_removal_text_lists_every_window():
    from ui.dialogs import incidents_removal_text

    text = incidents_removal_text(["#1 a: x", "#2 b: y"])
    assert text.startswith("Delete **2 incident window(s)**:")
    assert "- `#1 a: x`\n- `#2 b: y`" in text and "points, series and uploads stay" in text


def test_data_page_deletes_incidents_behind_the_dialog(small_db, monkeypatch):
    from core.data.store.audit import list_audit

    monkeypatch.setenv("STUDIO_USER", "alice")
    s = app_store(small_db)
    s.add_incidents(pd.DataFrame({"series": [None], "start": ["2026-01-03T00:00:00Z"],
                                  "end": ["2026-01-03T00:30:00Z"], "kind": ["outage"]}), source="more.csv")
    at = open_page("data.py")
    assert at.button(key="data.del_inc").disabled  # nothing picked yet
    at.multiselect(key="data.inc_pick").set_value([2]).run()
    at.button(key="data.del_inc").click().run()
    shown = texts(at)
    assert "Delete **1 incident window(s)**:" in shown
    assert "- `#2 all series: 2026-01-03 00:00 to 00:30 UTC (outage)`" in shown
    at.button(key="dlg.incidents.yes").click().run()
    assert not at.exception
    assert s.list_incidents()["id"].tolist() == [1]  # only the picked window went
    assert any("Deleted 1 incident window(s)" in t.proto.body for t in at.toast)
    assert at.multiselect(key="data.inc_pick").value == []
    trail = list_audit(s, action="delete_incidents")
    assert len(trail) == 1 and trail["actor"].iloc[0] == "alice" and trail["detail"].iloc[0]["ids"] == [2]
    assert len(s.series_keys()) == 4  # points and series untouched


def test_cancelling_the_incident_dialog_keeps_them(small_db):
    at = open_page("data.py")
    at.multiselect(key="data.inc_pick").set_value([1]).run()
    at.button(key="data.del_inc").click().run()
    at.button(key="dlg.incidents.no").click().run()
    assert not at.exception and "incident window(s)**:" not in texts(at)
    assert len(app_store(small_db).list_incidents()) == 1


def test_a_broken_roles_file_makes_the_data_page_read_only(small_db, tmp_path, monkeypatch):
    roles = tmp_path / "roles.toml"
    roles.write_text('[roles]\ndefault = ["superuser"]\n')   # not a known role
    monkeypatch.setenv("STUDIO_ROLES", str(roles))
    at = open_page("data.py")
    assert not at.exception
    assert "the roles file has a problem, so the app is read-only" in texts(at)
    assert "superuser" in texts(at)
    assert at.button(key="data.del_upload").disabled and at.button(key="data.del_series").disabled


# ---------------------------------------------------------------------------- roles re-checked at the write
def _become_viewer(tmp_path, monkeypatch) -> None:
    roles = tmp_path / "viewer-roles.toml"
    roles.write_text('[local]\nuser = "visitor"\n[roles]\ndefault = []\n')
    monkeypatch.setenv("STUDIO_ROLES", str(roles))


@pytest.mark.parametrize("opener,prefix", [("data.del_upload", "dlg.upload"), ("data.del_series", "dlg.series"),
                                           ("data.del_inc", "dlg.incidents")])
def test_a_dialog_opened_as_editor_refuses_once_the_role_is_gone(small_db, tmp_path, monkeypatch, opener, prefix):
    at = open_page("data.py")
    if opener == "data.del_inc":
        at.multiselect(key="data.inc_pick").set_value([1]).run()
    at.button(key=opener).click().run()
    assert at.button(key=f"{prefix}.yes")  # the dialog is open, drawn while the user was an editor
    _become_viewer(tmp_path, monkeypatch)
    at.button(key=f"{prefix}.yes").click().run()
    assert not at.exception
    refusals = [e.value for e in at.error if "Not allowed to delete" in e.value]
    assert refusals and "visitor lacks the 'editor' role" in refusals[0] and "nothing was changed" in refusals[0]
    s = app_store(small_db)
    assert len(s.series_keys()) == 4 and len(s.list_uploads()) == 1 and len(s.list_incidents()) == 1
    assert not any("Deleted" in t.proto.body for t in at.toast)
    at.run()  # the refused request is closed, not re-opened
    assert not at.exception and "Not allowed" not in texts(at)
    assert not [b for b in at.button if b.key == f"{prefix}.yes"]


def test_imports_recheck_the_role_at_the_click(small_db, tmp_path, monkeypatch):
    from ui import state

    at = open_page("data.py")
    at.file_uploader[0].set_value(("good.csv", GOOD, "text/csv")).run()
    at.file_uploader[1].set_value(("outages.csv", b"series,start,end\n,2026-01-03T00:00:00Z,2026-01-03T00:30:00Z\n",
                                   "text/csv")).run()
    assert not at.button(key="data.import").disabled and not at.button(key="data.import_inc").disabled
    # The roles change between drawing the page (buttons enabled) and handling the click.
    real = state.edit_refusal
    monkeypatch.setattr(state, "edit_refusal", lambda action: real(action) or f"Not allowed to {action}: revoked")
    at.button(key="data.import").click().run()
    assert not at.exception
    assert any("Not allowed to import 1 file(s): revoked" in e.value for e in at.error)
    at.button(key="data.import_inc").click().run()
    assert any("Not allowed to import incidents from outages.csv: revoked" in e.value for e in at.error)
    s = app_store(small_db)
    assert len(s.list_uploads()) == 1 and len(s.series_keys()) == 4 and len(s.list_incidents()) == 1
    # With the role really gone, the buttons are drawn disabled (a browser cannot click them).
    monkeypatch.setattr(state, "edit_refusal", real)
    _become_viewer(tmp_path, monkeypatch)
    at.run()
    assert at.button(key="data.import").disabled and at.button(key="data.import_inc").disabled


def test_edit_refusal_reads_the_roles_each_time(tmp_path, monkeypatch):
    from core.errors import PermissionDenied
    from ui import state

    editor = tmp_path / "editor.toml"
    editor.write_text('[local]\nuser = "ed"\n[roles]\ndefault = ["editor"]\n')
    monkeypatch.setenv("STUDIO_ROLES", str(editor))
    assert state.edit_refusal("delete upload #1") is None
    state.require_edit("delete upload #1")  # no error
    _become_viewer(tmp_path, monkeypatch)
    msg = state.edit_refusal("delete upload #1")
    assert msg is not None and msg.startswith("Not allowed to delete upload #1: visitor lacks the 'editor' role")
    with pytest.raises(PermissionDenied, match="delete upload #1"):
        state.require_edit("delete upload #1")


def test_point_arrays_match_get_points(small_db):
    s = app_store(small_db)
    keys = [API_LAT, "no_such_series", 'error_pct{service="db"}']
    found, code, t, v = s.point_arrays(keys)
    assert found == [API_LAT, 'error_pct{service="db"}']
    for i, key in enumerate(found):
        pts = s.get_points(key)
        sel = code == i
        np.testing.assert_array_equal(t[sel], pts["ts"].astype("datetime64[ns, UTC]").astype("int64").to_numpy())
        np.testing.assert_array_equal(v[sel], pts["value"].to_numpy())   # NaN where missing, same places
    assert np.isnan(v[code == 0]).sum() == 3
    assert s.point_arrays(["nothing"])[0] == []


def test_quality_from_arrays_equals_the_frame_report_in_any_order(small_db):
    from core.data.quality import quality_from_arrays, quality_report

    s = app_store(small_db)
    pts = s.get_points()
    want = quality_report(pts)
    found, code, t, v = s.point_arrays(sorted(pts["series"].unique(), reverse=True))
    perm = np.random.default_rng(3).permutation(code.size)   # series in pieces, times shuffled
    got = quality_from_arrays(found, code[perm], t[perm], v[perm])
    pd.testing.assert_frame_equal(got, want)


def test_quality_memo_reassesses_only_the_series_an_upload_changed(small_db, monkeypatch):
    from ui import state

    s = app_store(small_db)
    plain = state.compute_quality(s)
    state._QUALITY_MEMO.clear()
    read: list[list[str]] = []
    real = type(s).point_arrays

    def counting(self, keys):
        read.append(list(keys))
        return real(self, keys)

    monkeypatch.setattr(type(s), "point_arrays", counting)
    pd.testing.assert_frame_equal(state.compute_quality(s, memo=True), plain)
    assert sorted(k for batch in read for k in batch) == sorted(plain["series"])
    read.clear()
    pd.testing.assert_frame_equal(state.compute_quality(s, memo=True), plain)   # nothing changed: no read
    assert read == []
    # an upload replacing one value of one series (same point count): only that series is read again
    one = s.get_points(API_LAT).iloc[[5]].assign(value=999.0)
    s.write_points(one, name="fix.csv", sha256="fix-sha", fmt="long", actor="test")
    after = state.compute_quality(s, memo=True)
    assert [k for batch in read for k in batch] == [API_LAT]
    pd.testing.assert_frame_equal(after, state.compute_quality(s))
