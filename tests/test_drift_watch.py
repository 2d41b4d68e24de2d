"""Drift notices (core.policy.drift_watch): the recent window starts at the last applied change covering
a series (or its baseline split), a shifted series gets one de-duplicated ``drift`` notice with the
test and sample sizes, a stationary one none; the CLI verb and the ingest hook."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from core.alerting.rules import Rule
from core.data.store import audit
from core.policy import drift_watch, notify
from core.policy import versions as pol
from core.policy.identity import User

T0 = pd.Timestamp("2026-01-01T00:00:00Z")
ED = User("ed", "ed@example.com", frozenset({"viewer", "editor", "approver"}), os_account="ed-os")
NOW = T0 + pd.Timedelta(days=14)


def _ar_cycle(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = lfilter([1.0], [1.0, -0.8], rng.normal(0.0, 0.6, n))
    return 10 + np.sin(2 * np.pi * np.arange(n) / 288) + noise


def _csv(path, days=14, shift_from_day=9):
    idx = pd.date_range(T0, periods=days * 288, freq="5min")
    a = _ar_cycle(1, len(idx))
    a[idx >= T0 + pd.Timedelta(days=shift_from_day)] += float(np.std(a))   # +1 sd after day 9
    b = _ar_cycle(2, len(idx))
    rows = [f"{t.isoformat()},{k},{float(v)!r}"
            for k, ser in (("lat_a", a), ("lat_b", b)) for t, v in zip(idx, ser, strict=True)]
    path.write_text("timestamp,series,value\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def s(store):
    audit.install(store)
    return store


def _conf():
    return notify.NotifyConfig(channels=())


def _policy(s):
    pol.apply(s, "default", [Rule(name="O", series="other", warning=1.0)], base_version=0, user=ED,
              reason="init", now=T0)
    v2 = pol.apply(s, "default", [Rule(name="O", series="other", warning=1.0),
                                  Rule(name="A", series="lat_a", warning=50.0)], base_version=1, user=ED,
                   reason="cover lat_a", now=T0 + pd.Timedelta(days=9))
    if v2.status == "pending_approval":
        boss = User("boss", "b@example.com", frozenset({"viewer", "approver"}), os_account="boss-os")
        pol.approve(s, v2, boss, "ok", now=T0 + pd.Timedelta(days=9))
    return v2


def test_last_change_covering_a_series():
    v1 = pol.PolicyVersion("p", 1, None, "ed", T0, "r", '[{"name": "O", "series": "other", "warning": 1.0}]',
                           "h", None, "approved", False, in_force_from=T0)
    v2 = pol.PolicyVersion("p", 2, 1, "ed", T0, "r", '[{"name": "O", "series": "other", "warning": 1.0}, '
                           '{"name": "A", "series": "lat_*", "warning": 5.0}]', "h", None, "approved", False,
                           in_force_from=T0 + pd.Timedelta(days=1))
    v3 = pol.PolicyVersion("p", 3, 2, "ed", T0, "r", '[{"name": "O", "series": "other", "warning": 2.0}, '
                           '{"name": "A", "series": "lat_*", "warning": 5.0}]', "h", None, "approved", False,
                           in_force_from=T0 + pd.Timedelta(days=2))
    assert drift_watch.last_change([v1, v2, v3], "lat_a") is v2      # v3 changed only "other"
    assert drift_watch.last_change([v1, v2, v3], "other") is v3
    assert drift_watch.last_change([v1, v2, v3], "cpu") is None


def test_baseline_split_is_the_whole_days_of_the_first_70_percent():
    ts = pd.date_range(T0, periods=14 * 288, freq="5min")
    assert drift_watch.baseline_split(ts) == T0 + pd.Timedelta(days=9)     # 70 % of 13.997 d = 9.8 d


def test_shifted_series_gets_one_drift_notice_since_the_change(s, tmp_path):
    s.ingest(_csv(tmp_path / "m.csv"), actor="ed")
    _policy(s)
    res = {d.key: d for d in drift_watch.check_drift(s, config=_conf(), now=NOW)}
    a, b = res["lat_a"], res["lat_b"]
    assert a.since == T0 + pd.Timedelta(days=9) and a.change == "default v2"
    assert (a.result.verdict, a.result.test, a.result.n_baseline, a.result.n_recent) == ("drift", "ks", 216, 120)
    assert a.notice_id is not None
    assert b.change is None and b.since == T0 + pd.Timedelta(days=9) and b.result.verdict == "stable"
    assert b.notice_id is None
    n = notify.notices(s)
    assert n["kind"].tolist() == ["drift"]
    assert "lat_a" in n["title"].iloc[0] and "default v2" in n["title"].iloc[0]
    assert "216 baseline and 120 recent 1h blocks" in n["body"].iloc[0]
    assert "Recommendations page" in n["body"].iloc[0]
    again = drift_watch.check_drift(s, config=_conf(), now=NOW + pd.Timedelta(minutes=10))
    assert [d.notice_id for d in again] == [None, None]                   # de-duplicated by the outbox
    assert len(notify.notices(s)) == 1


def test_cli_check_drift_and_ingest_hook(tmp_path, monkeypatch, capsys):
    from core.__main__ import main

    db = tmp_path / "cli.duckdb"
    monkeypatch.setenv("STUDIO_NOTIFY", str(tmp_path / "none.toml"))
    monkeypatch.delenv("STUDIO_NOTIFY_WEBHOOK", raising=False)
    monkeypatch.delenv("STUDIO_NOTIFY_SLACK", raising=False)
    f = _csv(tmp_path / "m.csv")
    assert main(["ingest", "--db", str(db), str(f)]) == 0
    out = capsys.readouterr().out
    assert "notice: drift on lat_a since its baseline period" in out and "lat_b" not in out.split("notice:")[-1]
    assert main(["notify", "--db", str(db), "check-drift"]) == 0
    out = capsys.readouterr().out
    assert "lat_a since baseline" in out and "drift: already notified within the window" in out
    assert "lat_b since baseline" in out and ": stable;" in out


def test_an_upload_reports_the_series_it_added_or_changed(s, tmp_path):
    f = _csv(tmp_path / "m.csv")
    first = s.ingest(f)
    assert first.changed_series == ("lat_a", "lat_b")
    pts = s.get_points("lat_b").iloc[:3]
    pts.loc[pts.index[0], "value"] = 99.0                       # one value of lat_b changed
    again = s.write_points(pd.concat([pts, s.get_points("lat_a").iloc[:2]]), name="fix.csv", sha256="fix",
                           fmt="long")
    assert (again.updated, again.unchanged, again.changed_series) == (1, 4, ("lat_b",))
    same = s.write_points(s.get_points("lat_a").iloc[:5], name="same.csv", sha256="same", fmt="long")
    assert same.unchanged == 5 and same.changed_series == ()
    assert s.ingest(f).changed_series == ()                     # a duplicate file changes nothing
    s.bulk_min_bytes = 0                                       # the DuckDB CSV path reports them too
    newer = tmp_path / "newer.csv"
    newer.write_text("timestamp,series,value\n2026-02-01T00:00:00Z,lat_b,1.5\n2026-02-01T00:00:00Z,lat_c,2\n"
                     "2026-01-01T00:00:00Z,lat_a," + repr(float(s.get_points("lat_a")["value"].iloc[0])) + "\n")
    bulk = s.ingest(newer)
    assert (bulk.inserted, bulk.unchanged, bulk.changed_series) == (2, 1, ("lat_b", "lat_c"))


def test_check_drift_can_be_limited_to_some_series(s, tmp_path):
    s.ingest(_csv(tmp_path / "m.csv"))
    res = drift_watch.check_drift(s, config=_conf(), now=NOW, keys=["lat_b", "not_stored"])
    assert [d.key for d in res] == ["lat_b"] and res[0].notice_id is None
    assert notify.notices(s).empty


def test_the_ingest_hook_checks_drift_only_on_the_series_the_upload_changed(tmp_path, monkeypatch, capsys):
    from core.__main__ import main

    db = tmp_path / "cli.duckdb"
    monkeypatch.setenv("STUDIO_NOTIFY", str(tmp_path / "none.toml"))
    monkeypatch.delenv("STUDIO_NOTIFY_WEBHOOK", raising=False)
    monkeypatch.delenv("STUDIO_NOTIFY_SLACK", raising=False)
    seen: list[list[str]] = []
    real = drift_watch.check_drift

    def spy(store, *a, keys=None, **kw):
        seen.append(None if keys is None else list(keys))
        return real(store, *a, keys=keys, **kw)

    monkeypatch.setattr(drift_watch, "check_drift", spy)
    assert main(["ingest", "--db", str(db), str(_csv(tmp_path / "m.csv"))]) == 0
    assert seen == [["lat_a", "lat_b"]]
    newer = tmp_path / "newer.csv"
    newer.write_text("timestamp,series,value\n2026-01-15T00:00:00Z,lat_b,10.5\n")
    assert main(["ingest", "--db", str(db), str(newer)]) == 0
    assert seen[-1] == ["lat_b"]                                # only what the upload touched
    assert main(["ingest", "--db", str(db), str(newer)]) == 0     # a duplicate: nothing to check
    assert len(seen) == 2
    capsys.readouterr()


def test_watch_runs_the_same_checks_after_each_file(tmp_path, monkeypatch, capsys):
    from core.__main__ import main
    from core.commands import ingest as ingest_cmd

    db = tmp_path / "cli.duckdb"
    monkeypatch.setenv("STUDIO_NOTIFY", str(tmp_path / "none.toml"))
    monkeypatch.delenv("STUDIO_NOTIFY_WEBHOOK", raising=False)
    monkeypatch.delenv("STUDIO_NOTIFY_SLACK", raising=False)
    calls: list[tuple[str, ...]] = []
    real = ingest_cmd.post_ingest_checks

    def spy(store, reports, *a, **kw):
        calls.append(tuple(k for r in reports for k in r.changed_series))
        return real(store, reports, *a, **kw)

    monkeypatch.setattr(ingest_cmd, "post_ingest_checks", spy)
    feed = tmp_path / "feed"
    feed.mkdir()
    _csv(feed / "m.csv")
    old = feed / "m.csv"
    t = old.stat().st_mtime - 60
    os.utime(old, (t, t))                                       # settled: ready at the first look
    assert main(["ingest", "--db", str(db), "--watch", str(feed), "--once", "--settle", "0"]) == 0
    out = capsys.readouterr().out
    assert calls == [("lat_a", "lat_b")]
    assert "notice: drift on lat_a since its baseline period" in out          # the one-shot ingest's check
    assert "lat_b" not in out.split("notice:")[-1]
