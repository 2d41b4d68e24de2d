"""Overview page (AppTest): fleet health on an empty database, the small database and the small demo;
computing the derived columns, the glob filter, a pending approval at the top of the attention list,
and opening a series on the Trends page."""

from __future__ import annotations

import pytest

from core.alerting.rules import Rule
from core.policy import versions as pol
from core.policy.identity import User
from tests.apptest_util import (
    EDITOR_AND_VIEWER_ROLES,
    app_store,
    build_small_db,
    demo_copy,
    ok,
    open_page,
    studio_db,
    texts,
)

API_LAT = 'latency_ms{service="api"}'
CHECKOUT = 'latency_p95_ms{service="checkout"}'


def _table(at):
    return next(d.value for d in at.dataframe if "anomalies_7d" in d.value.columns)


@pytest.fixture
def small_db(tmp_path):
    with studio_db(build_small_db(tmp_path / "small.duckdb")) as p:
        yield p


@pytest.fixture
def demo(tmp_path, demo_db_bytes, monkeypatch):
    with demo_copy(tmp_path, demo_db_bytes, EDITOR_AND_VIEWER_ROLES, monkeypatch) as p:
        yield p


def test_empty_database_says_how_to_get_data(tmp_path):
    from core.data.store import Store

    Store(tmp_path / "empty.duckdb").close()
    with studio_db(tmp_path / "empty.duckdb"):
        at = ok(open_page("overview.py"))
    assert "No data yet" in texts(at) and "make demo" in texts(at)


def test_small_database_compute_quality_and_filter(small_db):
    at = ok(open_page("overview.py"))
    t = _table(at)
    assert len(t) == 4 and t["grade"].isna().all()               # nothing computed on the first render
    assert "Quality grade**: not computed yet" in texts(at)
    at.button(key="ovw.fast").click().run()
    t = _table(ok(at)).set_index("series")
    assert t.loc[API_LAT, "grade"] != "A"                          # the only series with a gap and NaNs
    assert set(t.drop(index=API_LAT)["grade"]) == {"A"}
    assert "Quality grade**: 4 of 4 series, computed" in texts(at)
    at.text_input(key="ovw.glob").input("latency*").run()
    assert sorted(_table(ok(at))["series"]) == [API_LAT, 'latency_ms{service="db"}']
    at.text_input(key="ovw.glob").input("nothing*").run()
    assert "No series matches 'nothing*'" in texts(ok(at))
    at.text_input(key="ovw.glob").input("").run()
    assert len(_table(ok(at))) == 4 and not _table(at)["grade"].isna().any()   # kept across reruns


def test_demo_fleet_alerts_pending_approval_and_link_to_trends(demo):
    s = app_store(demo)
    v1 = pol.active_version(s)
    boss = User("ed", "ed@example.com", frozenset({"viewer", "editor"}), os_account="ed-os")
    pol.apply(s, "default", [*v1.rules(), Rule(name="NewPage", series=CHECKOUT, warning=500.0, critical=900.0)],
              base_version=v1.number, user=boss, reason="page on checkout latency", meta=v1.meta)
    at = ok(open_page("overview.py"))
    att = at.dataframe[0].value
    assert att["what"].iloc[0] == "Pending approval" and att["subject"].iloc[0] == "default v2"
    assert "page on checkout latency" in att["why"].iloc[0]
    assert "Pending approvals" in texts(at) and "No policy change waits for approval." not in texts(at)
    at.button(key="ovw.fast").click().run()
    t = _table(ok(at)).set_index("series")
    ruled = t[t["rules"].notna()]
    assert len(ruled) and ruled["alerts_per_week"].notna().all()
    assert t[t["rules"].isna()]["alerts_per_week"].isna().all()
    at.selectbox(key="ovw.pick").set_value(CHECKOUT).run()
    at.button(key="ovw.trends").click().run()
    ok(at)
    assert at.title[0].value == "Trends & anomalies"
    assert at.selectbox(key="trends.series").value == CHECKOUT


def test_open_a_series_on_the_recommendations_page(small_db):
    at = ok(open_page("overview.py"))
    at.selectbox(key="ovw.pick").set_value(API_LAT).run()
    at.button(key="ovw.rec").click().run()
    ok(at)
    assert at.title[0].value == "Recommendations"
    assert at.text_input(key="rec.glob").value == API_LAT        # the fleet table is filtered to it
