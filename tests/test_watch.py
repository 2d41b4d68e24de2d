"""The watched folder: which files are ready (unit), and ``ingest --watch`` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from core.data.store import Store, audit
from core.data.watch import FolderWatch
from core.errors import StudioError
from tests.apptest_util import ROOT
from tests.test_concurrency import _csv, _env


def _age(path, seconds_ago: float, now: float) -> None:
    os.utime(path, (now - seconds_ago, now - seconds_ago))


def test_ready_needs_a_settled_complete_file(tmp_path):
    now = time.time()
    old = tmp_path / "old.csv"
    old.write_text("a")
    _age(old, 60, now)
    fresh = tmp_path / "fresh.csv"
    fresh.write_text("b")
    _age(fresh, 0.5, now)
    for name in (".hidden.csv", "feed.csv.tmp", "x.part"):
        (tmp_path / name).write_text("c")
        _age(tmp_path / name, 60, now)
    (tmp_path / "sub").mkdir()
    w = FolderWatch(tmp_path, settle_s=2)
    assert w.ready(now) == [old]                      # first look: old enough files only
    w.done(old)
    assert w.ready(now + 1) == []                     # handled once; fresh not settled yet
    assert w.ready(now + 3) == [fresh]                # unchanged since the last look and old enough
    w.done(fresh)
    fresh.write_text("bb")                            # changed after import: offered again once settled
    _age(fresh, 0, now + 3)
    assert w.ready(now + 3.5) == []
    assert w.ready(now + 6) == [fresh]


def test_a_file_appearing_between_looks_waits_one_look(tmp_path):
    now = time.time()
    w = FolderWatch(tmp_path, settle_s=1)
    assert w.ready(now) == []
    f = tmp_path / "new.csv"
    f.write_text("x")
    _age(f, 30, now)                                  # an old file moved in: still needs a second look
    assert w.ready(now) == []
    assert w.ready(now + 0.1) == [f]


def test_watch_needs_a_directory(tmp_path):
    with pytest.raises(StudioError, match="not a directory"):
        FolderWatch(tmp_path / "missing")


@pytest.mark.slow
def test_ingest_watch_imports_each_new_file_once(tmp_path):
    db = tmp_path / "studio.duckdb"
    Store(db).close()
    feed = tmp_path / "feed"
    feed.mkdir()
    p = subprocess.Popen([sys.executable, "-m", "core", "ingest", "--watch", str(feed), "--interval", "0.2",
                          "--settle", "0.3"], cwd=ROOT, env=_env(db), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        a = _csv(tmp_path / "a.csv", 'a{host="1"}', 100)
        b = _csv(tmp_path / "b.csv", 'b{host="1"}', 100, seed=1)
        for src in (a, b):                               # written under a temporary name, then renamed
            (feed / f"{src.name}.tmp").write_bytes(src.read_bytes())
            (feed / f"{src.name}.tmp").rename(feed / src.name)
        (feed / "bad.csv").write_text("timestamp,series,value\n2026-01-01T00:00:00Z,x,not-a-number\n")
        (feed / "a-again.csv").write_bytes(a.read_bytes())     # same content under another name
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with Store(db) as s:
                n = len(s.list_uploads())
            if n >= 2:
                break
            time.sleep(0.3)
        time.sleep(1.5)                                  # more looks: nothing is imported twice
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    with Store(db) as s:
        up = s.list_uploads()
        assert sorted(up["name"]) == ["a.csv", "b.csv"]
        assert int(s.list_series()["points"].sum()) == 200
        assert audit.verify_audit(s)[0]
    assert out.count("imported ") == 2 and out.count("skipped a-again.csv: already uploaded") == 1, out
    assert err.count("FAILED bad.csv") == 1 and "row 2" in err, err
    assert "stopped" in out
