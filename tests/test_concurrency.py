"""Many processes on one database file: the app (AppTest sessions in their own processes), CLI imports
and policy imports at the same time; a lock held too long; an import killed mid-write.

Every process here is a real one (subprocess), bounded in time and killed at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.store import Store, audit
from core.data.store.base import connect_with_retry, file_token
from core.errors import DatabaseLocked
from tests.apptest_util import ROOT, metric_values, open_page, studio_db, texts

PY = sys.executable


def _env(db: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "STUDIO_DB": str(db), "STUDIO_USER": "feed-bot", "PYTHONPATH": str(ROOT), **extra}
    env.pop("STUDIO_ROLES", None)
    return env


def _csv(path: Path, series: str, n: int = 500, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2026-02-01", periods=n, freq="1min", tz="UTC")
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "series": series,
                  "value": np.round(50 + rng.normal(0, 5, n), 3)}).to_csv(path, index=False)
    return path


def _start(args: list[str], db: Path, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([PY, *args], cwd=ROOT, env=_env(db, **extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finish(procs: list[subprocess.Popen], timeout: float = 90) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        try:
            o, e = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            o, e = p.communicate()
            pytest.fail(f"{p.args} did not finish in {timeout} s: {e[-2000:]}")
        out.append((p.returncode, o, e))
    return out


def _wait_for(path: Path, procs: list[subprocess.Popen], timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            pytest.fail(f"{dead[0].args} exited early: {dead[0].stderr.read()[-2000:]}")
        if time.monotonic() > end:
            pytest.fail(f"{path.name} did not appear in {timeout} s")
        time.sleep(0.05)


def _policy_variants(db: Path, tmp: Path) -> tuple[Path, Path, int]:
    from core.policy import versions as pol
    from core.policy.policy_yaml import policy_to_yaml

    s = Store(db)
    v = pol.active_version(s, "default")
    s.close()
    text = policy_to_yaml(v.rules(), {**v.meta, "policy": "default"})
    m = re.search(r"warning: ([0-9.]+)", text)
    out = []
    for i, factor in enumerate((1.01, 1.02)):
        p = tmp / f"policy{i}.yaml"
        p.write_text(text[:m.start(1)] + f"{float(m.group(1)) * factor:.3f}" + text[m.end(1):])
        out.append(p)
    return out[0], out[1], v.number


# ------------------------------------------------------------------------------- lock waiting
HOLD = ("import sys, time, duckdb\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "print('holding', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "con.close()\n")


def _holder(db: Path, seconds: float) -> subprocess.Popen:
    p = subprocess.Popen([PY, "-c", HOLD, str(db), str(seconds)], stdout=subprocess.PIPE, text=True,
                         start_new_session=True)
    assert p.stdout.readline().strip() == "holding"
    return p


def test_a_locked_file_is_waited_for_then_refused_naming_the_holder(tmp_path):
    db = tmp_path / "l.duckdb"
    Store(db).close()
    holder = _holder(db, 30)
    try:
        t = time.monotonic()
        with pytest.raises(DatabaseLocked) as info:
            Store(db, lock_timeout=0.6)
        waited = time.monotonic() - t
        assert 0.6 <= waited < 3
        msg = str(info.value)
        assert f"PID {holder.pid}" in msg and "python" in msg and "STUDIO_LOCK_TIMEOUT" in msg
        assert info.value.holder is not None and str(holder.pid) in info.value.holder
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


def test_a_short_hold_is_waited_out(tmp_path):
    db = tmp_path / "w.duckdb"
    s = Store(db)
    holder = _holder(db, 0.7)
    try:
        t = time.monotonic()
        assert s.list_uploads().empty            # waits for the holder, then reads
        assert 0.3 < time.monotonic() - t < 10
    finally:
        holder.wait(timeout=10)


def test_lock_timeout_setting(monkeypatch, tmp_path):
    from core.data.store.base import default_lock_timeout
    from core.errors import StudioError

    monkeypatch.delenv("STUDIO_LOCK_TIMEOUT", raising=False)
    assert default_lock_timeout() == 30.0
    monkeypatch.setenv("STUDIO_LOCK_TIMEOUT", "2.5")
    assert default_lock_timeout() == 2.5
    assert Store(tmp_path / "x.duckdb").lock_timeout == 2.5
    monkeypatch.setenv("STUDIO_LOCK_TIMEOUT", "soon")
    with pytest.raises(StudioError, match="STUDIO_LOCK_TIMEOUT"):
        default_lock_timeout()


def test_the_store_holds_no_file_between_calls(tmp_path):
    db = tmp_path / "free.duckdb"
    s = Store(db)
    s.list_series()
    s.release()
    con = connect_with_retry(str(db), timeout=0)   # would raise DatabaseLocked if anyone held it
    con.close()
    # an idle read connection is closed after linger_s without any further call
    s.list_series()
    time.sleep(s.linger_s + 0.3)
    code = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"
    assert subprocess.run([PY, "-c", code, str(db)], timeout=60).returncode == 0


@pytest.mark.slow
def test_change_token_moves_on_writes_not_reads(tmp_path):
    db = tmp_path / "t.duckdb"
    s = Store(db)
    s.release()
    t0 = file_token(str(db))
    s.list_series()
    s.get_points()
    s.release()
    assert file_token(str(db)) == t0
    r = subprocess.run([PY, "-m", "core", "ingest", str(_csv(tmp_path / "a.csv", "a"))], cwd=ROOT,
                       env=_env(db), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert file_token(str(db)) != t0


# ------------------------------------------------------------------------------- the app and the CLI
@pytest.mark.slow
def test_cli_ingest_while_the_app_runs_shows_after_next_rerun(tmp_path, demo_db_bytes):
    db = tmp_path / "studio.duckdb"
    db.write_bytes(demo_db_bytes)
    with studio_db(db):
        at = open_page("overview.py")
        assert not at.exception
        before = metric_values(at)
        r = subprocess.run([PY, "-m", "core", "ingest", str(_csv(tmp_path / "feed.csv", 'feed_ms{host="n1"}'))],
                           cwd=ROOT, env=_env(db), capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        at.run()
        assert not at.exception
        after = metric_values(at)
        assert "Newest upload" in texts(at) and "(feed.csv)" in texts(at)
    assert int(after["Series"].replace(",", "")) == int(before["Series"].replace(",", "")) + 1
    assert int(after["Uploads"]) == int(before["Uploads"]) + 1


@pytest.mark.slow
def test_app_sessions_two_ingests_and_two_policy_imports_at_once(tmp_path, demo_db_bytes):
    db = tmp_path / "studio.duckdb"
    db.write_bytes(demo_db_bytes)
    p0, p1, base = _policy_variants(db, tmp_path)
    s = Store(db)
    n_uploads, n_points, n_audit = len(s.list_uploads()), int(s.list_series()["points"].sum()), \
        len(audit.list_audit(s))
    s.close()
    stop = tmp_path / "stop"
    workers = [_start(["-m", "tests.proc_worker", "pages", str(db), str(tmp_path / f"ready{i}"), str(stop),
                       str(tmp_path / f"out{i}.json"), *pages], db)
               for i, pages in enumerate((["overview.py", "data.py"], ["policies.py", "overview.py"]))]
    try:
        for i in range(2):
            _wait_for(tmp_path / f"ready{i}", workers)
        files = [_csv(tmp_path / f"feed{i}.csv", f'feed_{i}{{host="n{i}"}}', 2000, seed=i) for i in range(2)]
        writers = [_start(["-m", "core", "ingest", str(f)], db) for f in files]
        writers += [_start(["-m", "core", "policy", "import", str(p), "--base", str(base), "--reason", "race"], db)
                    for p in (p0, p1)]
        results = _finish(writers)
        stop.write_text("stop")
        _finish(workers, timeout=120)
    finally:
        for p in workers:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    (rc_a, _, err_a), (rc_b, _, err_b) = results[:2]
    assert rc_a == 0 and rc_b == 0, (err_a, err_b)
    policy_rcs = sorted(r[0] for r in results[2:])
    assert policy_rcs == [0, 2], results[2:]
    loser = next(r for r in results[2:] if r[0] == 2)
    assert "changed while you were editing" in loser[2]

    s = Store(db)
    uploads = s.list_uploads()
    assert len(uploads) == n_uploads + 2
    assert sorted(uploads["name"].head(2)) == ["feed0.csv", "feed1.csv"]   # each exactly once
    assert int(s.list_series()["points"].sum()) == n_points + 4000
    from core.policy import versions as pol

    assert [v.number for v in pol.history(s, "default")][-1] == base + 1   # one winner
    ok, _, msg = audit.verify_audit(s)
    assert ok, msg
    # two uploads and the winning import, plus its notice when it waits for approval (same transaction)
    winner = pol.history(s, "default")[-1]
    waits = winner.status == "pending_approval"
    new = audit.list_audit(s).head(len(audit.list_audit(s)) - n_audit)
    # an ingest may also queue drift notices for shifted demo series (their own transactions, after it)
    drift = new["detail"].map(lambda d: d.get("kind") == "drift") & (new["action"] == "notify.enqueue")
    new = new[~drift]
    assert len(new) == 3 + waits
    assert (new["action"] == "notify.enqueue").sum() == waits
    s.close()
    for i in range(2):
        report = json.loads((tmp_path / f"out{i}.json").read_text())
        assert report["errors"] == [], report["errors"]
        assert int(report["metrics"]["Uploads"]) == n_uploads + 2     # each app process sees the new data


# ------------------------------------------------------------------------------- kill -9 mid-write
@pytest.mark.slow
def test_ingest_killed_mid_write_leaves_nothing(tmp_path, demo_db_bytes):
    db = tmp_path / "studio.duckdb"
    db.write_bytes(demo_db_bytes)
    s = Store(db)
    before = (len(s.list_uploads()), int(s.list_series()["points"].sum()), len(s.list_series()),
              len(audit.list_audit(s)))
    s.close()
    feed = _csv(tmp_path / "killme.csv", 'killme{host="x"}', 3000)
    ready = tmp_path / "in_tx"
    p = _start(["-m", "tests.proc_worker", "hang-ingest", str(feed), str(ready)], db)
    try:
        _wait_for(ready, [p])
        os.kill(p.pid, signal.SIGKILL)              # by its PID, inside the write transaction
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == -signal.SIGKILL
    s = Store(db)                                   # the file opens (the log is replayed)
    after = (len(s.list_uploads()), int(s.list_series()["points"].sum()), len(s.list_series()),
             len(audit.list_audit(s)))
    assert after == before
    assert audit.verify_audit(s)[0]
    s.close()
    r = subprocess.run([PY, "-m", "core", "ingest", str(feed)], cwd=ROOT, env=_env(db), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "already uploaded" not in r.stdout, r.stdout + r.stderr
    s = Store(db)
    assert len(s.list_uploads()) == before[0] + 1 and audit.verify_audit(s)[0]
    s.close()
