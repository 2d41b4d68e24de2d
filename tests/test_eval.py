"""NAB evaluation adapter and the ``detect`` command (smoke tests on a few NAB files)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.__main__ import main as core_main
from core.analysis.detect import DEFAULT_THRESHOLD
from core.analysis.evaluate import detections, evaluate, main, read_nab_file, run_nab
from core.analysis.scoring import nab_probation

FILES = ["artificialNoAnomaly/art_daily_no_noise.csv", "artificialWithAnomaly/art_daily_jumpsup.csv",
         "realAdExchange/exchange-3_cpc_results.csv"]


def test_refractory_keeps_first_detection_of_each_episode():
    ts = pd.date_range("2026-01-01", periods=10, freq="1h", tz="UTC")
    score = np.array([0, 1, 1, 1, 0, 1, 0, np.nan, 1, 1], dtype=float)
    # refractory 3 h: keep 1 (t=1h); 2, 3 are within 3 h of it; 5 (4 h later) kept; 8 kept (3 h after 5),
    # 9 suppressed. NaN never fires.
    got = detections(ts, score, 0.5, refractory_s=3 * 3600)
    assert np.flatnonzero(got).tolist() == [1, 5, 8]
    assert np.flatnonzero(detections(ts, score, 0.5, refractory_s=0)).tolist() == [1, 2, 3, 5, 8, 9]


@pytest.fixture(scope="module")
def small_run():
    from tests.conftest import NAB_DIR

    if not (NAB_DIR / "windows.json").exists():
        pytest.skip(f"NAB reference data not found at {NAB_DIR}")
    return run_nab(NAB_DIR, files=FILES)


def test_nab_smoke_on_three_files(small_run):
    for ts, sc in small_run.scores.values():
        k = nab_probation(len(ts))
        assert np.isnan(sc[:k]).all(), "the probationary (training) rows are never scored"
        assert np.isfinite(sc[k:]).mean() > 0.95
    r = evaluate(small_run)
    pf = r["per_file"].set_index("name")
    assert pf.loc[FILES[0], "fp"] == 0                        # noise-free daily pattern: no alarm
    assert pf.loc[FILES[1], "tp"] == 1                        # the jump is caught
    assert pf.loc[FILES[2], "tp"] >= 2
    assert r["standard"] > 50
    assert set(r["per_category"]["profile"]) == {"standard", "reward_low_FP", "reward_low_FN"}


def test_eval_command_prints_profiles(nab_dir, capsys):
    assert main(["nab", str(nab_dir), "--files", FILES[1]]) == 0
    out = capsys.readouterr().out
    assert "standard" in out and "reward_low_FN" in out and "artificialWithAnomaly" in out


def test_detect_command_writes_scores_and_alerts(nab_dir, tmp_path):
    src = nab_dir / "data" / FILES[1]
    out = tmp_path / "out.csv"
    assert core_main(["detect", str(src), "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert list(df.columns) == ["timestamp", "value", "score", "alert", "alarm_id"]
    n = len(read_nab_file(src))
    assert len(df) == n
    k = nab_probation(n)
    assert df["score"].iloc[:k].isna().all() and (df["alert"].iloc[:k] == 0).all()
    assert set(df["alert"].unique()) <= {0, 1}
    # an alert opens an alarm on an over-threshold row; every over-threshold row is in an alarm
    assert (df.loc[df["alert"] == 1, "score"] >= DEFAULT_THRESHOLD).all()
    assert (df.loc[df["score"] >= DEFAULT_THRESHOLD, "alarm_id"] > 0).all()
    assert df["alert"].sum() == df["alarm_id"].max() >= 1
    # the alarm id runs from its alert row over the 6 h refractory span (5-min data: 72 rows)
    first = int(np.flatnonzero(df["alert"] == 1)[0])
    assert (df["alarm_id"].iloc[first:first + 72] == 1).all() and df["alarm_id"].iloc[first + 72] != 1


def test_detect_command_errors(tmp_path, capsys):
    p = tmp_path / "two.csv"
    pd.DataFrame({"series": ["a", "b"], "timestamp": ["2026-01-01T00:00:00Z"] * 2, "value": [1, 2]}).to_csv(p, index=False)
    assert core_main(["detect", str(p)]) == 2
    assert "choose one with --series" in capsys.readouterr().err


def test_leave_one_category_out_picks_threshold_without_the_held_out_category():
    from core.analysis.evaluate import NabRun, leave_one_category_out

    # three categories, one file each, 1000 rows of 5 min (probation 150 rows); one window per file at
    # rows 500-509. Category a and b fire in their window at score 0.9 and have a false positive at 0.8
    # (row 800); category c fires in its window only at 0.85 with no false positive.
    ts = pd.date_range("2026-01-01", periods=1000, freq="5min", tz="UTC")
    win = [[str(ts[500]), str(ts[509])]]

    def scores(in_win: float, fp: float) -> np.ndarray:
        s = np.zeros(1000)
        s[500], s[800] = in_win, fp
        return s

    run = NabRun({"a/f.csv": (ts, scores(0.9, 0.8)), "b/f.csv": (ts, scores(0.9, 0.8)),
                  "c/f.csv": (ts, scores(0.85, 0.0))},
                 {"a/f.csv": win, "b/f.csv": win, "c/f.csv": win}, 0.0)
    lo = leave_one_category_out(run, thresholds=(0.8, 0.85, 0.9), refractory_s=0).set_index("category")
    # without c, 0.85 or 0.9 both catch a and b with no FP; ties go to the first best (0.85), which
    # also catches c: held-out score 100. Without a, threshold 0.85 (b and c caught, no FP); a scores
    # 100 too. A threshold of 0.9 would have missed c (held-out 0).
    assert lo.loc["c", "threshold"] == 0.85 and lo.loc["c", "held_out"] == pytest.approx(100.0)
    assert lo.loc["a", "threshold"] == 0.85 and lo.loc["a", "held_out"] == pytest.approx(100.0)
    run.scores["c/f.csv"] = (ts, scores(0.95, 0.0))
    lo = leave_one_category_out(run, thresholds=(0.9, 0.95), refractory_s=0).set_index("category")
    # without a: 0.9 catches b and c, 0.95 misses b -> 0.9 is chosen and a is caught
    assert lo.loc["a", "threshold"] == 0.9 and lo.loc["a", "held_out"] == pytest.approx(100.0)
    # without c: 0.9 catches a and b -> chosen, and c (0.95 >= 0.9) is caught
    assert lo.loc["c", "threshold"] == 0.9


def _tiny_nab(tmp_path):
    """A NAB-shaped directory with two files (windows.json + data/category/name.csv)."""
    ts = pd.date_range("2026-01-01", periods=50, freq="5min", tz="UTC")
    for name in ("catA/one.csv", "catB/two.csv"):
        f = tmp_path / "data" / name
        f.parent.mkdir(parents=True)
        pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": np.arange(50.0)}).to_csv(f, index=False)
    (tmp_path / "windows.json").write_text('{"catA/one.csv": [], "catB/two.csv": []}')
    return tmp_path


def test_unknown_nab_file_is_not_found_naming_it_and_suggesting(tmp_path, capsys):
    from core.errors import NotFound

    d = _tiny_nab(tmp_path)
    with pytest.raises(NotFound) as ei:
        run_nab(d, files=["catA/one.csv", "catA/onee.csv"])
    msg = str(ei.value)
    assert "'catA/onee.csv'" in msg and "catA/one.csv" in msg and "2 available" in msg
    # exit 2 with the message on stderr, no traceback; checked before any file is scored
    assert main(["nab", str(d), "--files", "nope.csv"]) == 2
    cap = capsys.readouterr()
    assert cap.err.startswith("error: NAB file 'nope.csv' not found") and "Traceback" not in cap.err
    assert "catA/one.csv" in cap.err and cap.out == ""
    assert main(["nab", str(d), "--files"]) == 2           # --files with no name: nothing to score
    assert "no NAB files to score" in capsys.readouterr().err


def test_leave_one_category_out_needs_two_categories_with_windows():
    from core.analysis.evaluate import NabRun, leave_one_category_out
    from core.errors import InsufficientDataError

    ts = pd.date_range("2026-01-01", periods=1000, freq="5min", tz="UTC")
    win = [[str(ts[500]), str(ts[509])]]
    s = np.zeros(1000)
    s[500] = 0.9
    # one labelled category plus one without windows: held out "a", the threshold would be chosen on
    # "b" alone, which has no window to score (normalised score undefined) -> refuse, don't crash
    run = NabRun({"a/f.csv": (ts, s), "b/f.csv": (ts, s.copy())}, {"a/f.csv": win}, 0.0)
    with pytest.raises(InsufficientDataError, match="at least 2 categories with windows; got 1 \\(a\\)"):
        leave_one_category_out(run, thresholds=(0.8, 0.9), refractory_s=0)
    # a second labelled category makes it answerable: each is caught at the threshold chosen on the other
    run.windows["b/f.csv"] = win
    lo = leave_one_category_out(run, thresholds=(0.8, 0.9), refractory_s=0).set_index("category")
    assert list(lo.index) == ["a", "b"] and lo["held_out"].tolist() == pytest.approx([100.0, 100.0])


def test_loco_command_with_one_category_exits_2(nab_dir, capsys):
    assert main(["nab", str(nab_dir), "--files", FILES[1], "--loco"]) == 2
    err = capsys.readouterr().err
    assert "leave-one-category-out needs at least 2 categories with windows" in err and "Traceback" not in err


def test_evaluation_reads_real_files_like_an_upload(tmp_path, capsys):
    """Duplicate and out-of-order timestamps (NAB's own data has them) never stop the evaluation:
    the file is read as an upload stores it and what was dropped or sorted is reported."""
    ts = pd.date_range("2026-01-01", periods=1200, freq="5min", tz="UTC")
    rng = np.random.default_rng(3)
    v = 10 + rng.normal(0, 1, ts.size)
    v[900] = 60.0
    df = pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": v})
    messy = pd.concat([df.iloc[:500], df.iloc[[498, 499]].assign(value=[10.0, 10.0]), df.iloc[520:600],
                       df.iloc[500:520], df.iloc[600:]])          # two repeats, 20 rows out of order
    f = tmp_path / "data" / "cat" / "messy.csv"
    f.parent.mkdir(parents=True)
    messy.to_csv(f, index=False)
    (tmp_path / "windows.json").write_text(json.dumps({"cat/messy.csv": [[str(ts[890]), str(ts[910])]]}))
    run = run_nab(tmp_path)
    info = run.reading["cat/messy.csv"]
    assert info["rejected"] == 2 and info["unsorted"] and info["points"] == 1200
    r = evaluate(run)
    assert r["per_file"].set_index("name").loc["cat/messy.csv", "tp"] == 1
    assert main(["nab", str(tmp_path)]) == 0
    assert "2 repeated timestamp(s) dropped" in capsys.readouterr().out
    # the detect command reads it the same way and alerts on the same row
    out = tmp_path / "d.csv"
    assert core_main(["detect", str(f), "--out", str(out)]) == 0
    got = pd.read_csv(out)
    assert np.flatnonzero(got["alert"]).tolist() == np.flatnonzero(detections(*run.scores["cat/messy.csv"])).tolist()


def test_unreadable_file_is_reported_not_fatal(tmp_path, capsys):
    d = _tiny_nab(tmp_path)
    (d / "data" / "catB" / "two.csv").write_text("timestamp,value\nnot a time,1\n")
    run = run_nab(d)
    assert list(run.unreadable) == ["catB/two.csv"] and list(run.scores) == ["catA/one.csv"]
    assert "unreadable" in run.reading_report()


@pytest.mark.slow
def test_detect_alerts_equal_evaluation_detections_on_every_nab_file(nab_dir, tmp_path):
    """One pipeline: for every NAB file the ``alert`` column of ``python -m core detect`` is the
    evaluation's detections at the default rule."""
    run = run_nab(nab_dir)
    assert not run.unreadable
    for name, (ts, score) in run.scores.items():
        out = tmp_path / "out.csv"
        assert core_main(["detect", str(nab_dir / "data" / name), "--out", str(out)]) == 0
        df = pd.read_csv(out)
        assert (pd.DatetimeIndex(pd.to_datetime(df["timestamp"], utc=True)) == ts).all(), name
        np.testing.assert_allclose(df["score"].to_numpy(), score, rtol=1e-5, equal_nan=True, err_msg=name)
        assert (df["alert"].to_numpy() == 1).tolist() == detections(ts, score).tolist(), name


def test_nested_loco_chooses_design_and_rule_without_the_held_out_category():
    from core.analysis.evaluate import NabRun, candidate_table, loco_rules, nested_loco

    # design "good" fires at the window start of every file; design "bad" fires only outside windows
    # except in category c, where it is the only one that catches the window
    ts = pd.date_range("2026-01-01", periods=1000, freq="5min", tz="UTC")
    win = [[str(ts[500]), str(ts[509])]]

    def sc(row):
        s = np.zeros(1000)
        s[row] = 0.999
        return s

    wins = {f"{c}/f.csv": win for c in "abcd"}
    good = NabRun({f"{c}/f.csv": (ts, sc(800 if c == "c" else 500)) for c in "abcd"}, wins, 0.0)
    bad = NabRun({f"{c}/f.csv": (ts, sc(500 if c == "c" else 800)) for c in "abcd"}, wins, 0.0)
    table = candidate_table({"good": good, "bad": bad}, loco_rules((0.99,), (6.0,)))
    lo, pooled, dev = nested_loco(table, "standard")
    lo = lo.set_index("category")
    # held-out c: chosen on a, b and d -> "good", which misses c's window (held-out score below 0)
    assert lo.loc["c", "design"] == "good" and lo.loc["c", "held_out"] < 0
    assert lo.loc["a", "design"] == "good" and lo.loc["a", "held_out"] == pytest.approx(100.0)
    assert dev["design"] == "good"
    # pooled = normalised sum over held-out categories: three perfect files, one miss with one FP
    assert pooled == pytest.approx(100 * (lo["raw"].sum() - lo["null"].sum()) / (lo["perfect"].sum() - lo["null"].sum()))
