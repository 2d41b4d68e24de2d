"""Evaluate the default detector on the labelled NAB subset: ``python -m core.eval nab [DIR]``.

Each file is read the way an upload stores it (:func:`core.data.ingest.load_metrics`: sorted, one
row per timestamp, the last repeat kept; repeats, unsorted rows and gaps are counted in the report, a
file an upload would refuse is listed and skipped) and scored causally on its own by the same code
as ``python -m core detect``: the detector is fitted on the file's first rows (15%, at most 750, which
NAB's probation ignores anyway) and scores every later row using only that row and earlier rows; the
scores then go through the alarm rule (:class:`core.analysis.detect.AlarmRule`: threshold, then a
refractory span in which repeats belong to the open alarm). A detection is an alarm start, the
``alert`` column of ``detect``, so the figures describe what users get.

The threshold is chosen once on this subset with ``--sweep`` (the table it prints is the evidence)
and then fixed in :data:`core.analysis.detect.DEFAULT_THRESHOLD`; it is not re-tuned per file. ``--loco``
gives the nested leave-one-category-out estimate: the design and alarm rule are chosen on the other
labelled categories and the held-out one is scored with that choice, for each category in turn.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.analysis.detect import (
    DEFAULT_DETECTOR,
    DEFAULT_REFRACTORY_S,
    DEFAULT_THRESHOLD,
    ENSEMBLE_DESIGNS,
    AlarmRule,
    alarm_starts,
    alarms_from_scores,
    detector_names,
    score_online,
)
from core.analysis.scoring import NAB_PROFILES, nab_score, normalised
from core.data.ingest import load_metrics
from core.errors import InsufficientDataError, NotFound, StudioError, ValidationError

DEFAULT_NAB_DIR = Path(os.environ.get("STUDIO_NAB", Path(__file__).resolve().parents[3] / "shared" / "nab"))


@dataclass
class NabRun:
    """Scores of every file: ``scores[name] = (timestamps, score array)``, the windows, and what
    reading each file through the ingest path found (``reading[name]``: rows, points, rejected
    repeats, warnings, error); files that could not be read at all are in ``unreadable``."""

    scores: dict[str, tuple[pd.DatetimeIndex, np.ndarray]]
    windows: dict[str, list]
    seconds: float
    reading: dict[str, dict] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)

    def reading_report(self) -> str:
        """One line: files read, repeated timestamps dropped, unsorted files, gaps, unreadable files."""
        r = self.reading.values()
        rej = sum(x["rejected"] for x in r)
        unsorted = sum(x["unsorted"] for x in r)
        gaps = sum(x["gaps"] for x in r)
        text = (f"read {len(self.reading)} file(s) as an upload stores them: {rej} repeated timestamp(s) "
                f"dropped (last value kept), {unsorted} file(s) with out-of-order rows sorted, {gaps} gap(s) "
                "left as gaps")
        if self.unreadable:
            text += f"; {len(self.unreadable)} unreadable file(s) not scored: " + "; ".join(
                f"{k}: {v}" for k, v in self.unreadable.items())
        return text


def read_file(path: Path, name: str | None = None) -> tuple[pd.Series, dict]:
    """One metric file as a float Series on a sorted, duplicate-free UTC DatetimeIndex, read through
    :func:`core.data.ingest.load_metrics` (the upload path), plus what reading found.

    Raises
    ------
    IngestError
        The file is malformed (as an upload would be refused).
    ValidationError
        The file holds more than one series.
    """
    loaded = load_metrics(path, "auto", name or path.name)
    pts = loaded.points
    keys = pts["series"].astype(str).unique()
    if len(keys) != 1:
        raise ValidationError(f"{path}: expected one series, found {len(keys)}", path=str(path))
    ts = pd.DatetimeIndex(pts["ts"])
    s = pd.Series(pd.to_numeric(pts["value"], errors="coerce").to_numpy(dtype=np.float64), index=ts)
    raw_ts = _raw_order_unsorted(path)
    steps = np.diff(ts.as_unit("ns").asi8) / 1e9
    step = np.median(steps) if steps.size else np.nan
    info = {"rows": loaded.rows, "points": len(s), "rejected": loaded.rejected, "unsorted": raw_ts,
            "gaps": int((steps > 1.5 * step).sum()) if steps.size else 0, "warnings": list(loaded.warnings)}
    return s, info


def _raw_order_unsorted(path: Path) -> bool:
    """Whether the file's rows were out of time order before sorting (reported, never fatal)."""
    try:
        raw = pd.read_csv(path, usecols=[0]).iloc[:, 0]
        t = pd.DatetimeIndex(pd.to_datetime(raw, utc=True, errors="coerce").dropna()).as_unit("ns").asi8
        return bool((np.diff(t) < 0).any())
    except (ValueError, OSError, pd.errors.ParserError):
        return False


def read_nab_file(path: Path) -> pd.Series:
    """One NAB csv (``timestamp,value``) as a float Series on a UTC DatetimeIndex, read the way an
    upload stores it (sorted, one row per timestamp, last repeat kept)."""
    return read_file(path)[0]


def score_file(series: pd.Series, detector: str = DEFAULT_DETECTOR) -> np.ndarray:
    """Causal scores of one file (:func:`core.analysis.detect.score_online`, the ``detect`` path):
    fitted on its first rows (which get NaN; NAB's probation has the same size), scored after."""
    return score_online(series, detector)


def detections(ts: pd.DatetimeIndex, score: np.ndarray, threshold: float | AlarmRule = DEFAULT_THRESHOLD,
               refractory_s: float = DEFAULT_REFRACTORY_S) -> np.ndarray:
    """Alarm starts (the ``alert`` column of ``detect``) of one file's scores: the rows that open an
    alarm under the rule (a threshold and refractory span, or an :class:`AlarmRule`). Causal."""
    rule = threshold if isinstance(threshold, AlarmRule) else AlarmRule(float(threshold), float(refractory_s))
    return alarm_starts(alarms_from_scores(ts, score, rule))


def _check_files(data_dir: Path, names: list[str]) -> None:
    """Raise :class:`NotFound` for the first name that is not a csv under ``data_dir``, before any
    scoring starts, naming it and suggesting close (or else the first few) available names."""
    missing = [n for n in names if not (data_dir / n).is_file()]
    if not missing:
        return
    available = sorted(p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*.csv"))
    bad = missing[0]
    hint = difflib.get_close_matches(bad, available, n=3, cutoff=0.5) or available[:3]
    more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
    avail = (f"; expected a path category/name.csv relative to it, e.g. {', '.join(hint)} "
             f"({len(available)} available)") if available else "; it holds no csv files"
    raise NotFound(f"NAB file {bad!r} not found in {data_dir}{more}{avail}")


def run_nab(nab_dir: Path, detector: str = DEFAULT_DETECTOR, files: list[str] | None = None) -> NabRun:
    """Score every (or the named) NAB file causally.

    Raises
    ------
    NotFound
        ``windows.json`` is missing, or a named file is not under ``nab_dir/data`` (checked for all
        names before any file is scored).
    InsufficientDataError
        There is no file to score (``files=[]`` or an empty ``windows.json``).
    """
    wfile = nab_dir / "windows.json"
    if not wfile.exists():
        raise NotFound(f"no NAB windows.json in {nab_dir}; expected the labelled subset there")
    windows = json.loads(wfile.read_text())
    names = sorted(windows) if files is None else list(files)
    if not names:
        raise InsufficientDataError(f"no NAB files to score in {nab_dir}; name at least one with --files "
                                    "(category/name.csv) or omit --files to score all of them")
    _check_files(nab_dir / "data", names)
    t0 = time.perf_counter()
    scores, reading, unreadable = {}, {}, {}
    for name in names:
        try:
            s, info = read_file(nab_dir / "data" / name, name)
        except StudioError as exc:          # a file an upload would refuse: reported, never fatal
            unreadable[name] = str(exc)
            continue
        reading[name] = info
        scores[name] = (s.index, score_file(s, detector))
    return NabRun(scores, windows, time.perf_counter() - t0, reading, unreadable)


def evaluate(run: NabRun, threshold: float | AlarmRule = DEFAULT_THRESHOLD,
             refractory_s: float = DEFAULT_REFRACTORY_S) -> dict[str, object]:
    """Normalised score per profile, overall and per category, for one alarm rule (or threshold)."""
    files = {n: (ts, detections(ts, sc, threshold, refractory_s)) for n, (ts, sc) in run.scores.items()}
    out: dict[str, object] = {}
    per_cat = []
    for prof in NAB_PROFILES:
        r = nab_score(files, run.windows, prof)
        out[prof] = r.normalised
        pf = r.per_file.assign(category=r.per_file["name"].str.split("/").str[0])
        g = pf.groupby("category")[["raw", "null", "perfect", "tp", "fp", "fn", "windows"]].sum()
        g["score"] = [normalised(a, b, c) for a, b, c in zip(g["raw"], g["null"], g["perfect"], strict=True)]
        g["profile"] = prof
        per_cat.append(g.reset_index())
        if prof == "standard":
            out["per_file"] = r.per_file
    out["per_category"] = pd.concat(per_cat, ignore_index=True)
    return out


SWEEP_THRESHOLDS = (0.99, 0.995, 0.998, 0.999, 0.9995, 0.9998, 0.9999, 0.99995, 0.99999)


def leave_one_category_out(run: NabRun, thresholds: tuple[float, ...] = SWEEP_THRESHOLDS,
                           refractory_s: float = DEFAULT_REFRACTORY_S,
                           profile: str = "standard") -> pd.DataFrame:
    """Held-out check of the threshold choice: for each category, pick the threshold that scores best
    (``profile``, normalised) on the *other* categories, then score the held-out category with it.

    Returns one row per category with labelled windows: ``category, threshold`` (chosen without
    it), ``held_out`` (its normalised score at that threshold), ``in_sample`` (its score at the
    threshold chosen on all categories) and ``raw, null, perfect`` (held-out, profile units). The
    pooled held-out figure is ``normalised(sum raw, sum null, sum perfect)`` over the rows.

    Raises
    ------
    InsufficientDataError
        Fewer than 2 categories have labelled windows: the threshold could not be chosen without
        the held-out category, so there is no honest out-of-sample figure.
    """
    per_thr = {}
    for thr in thresholds:
        pf = evaluate(run, thr, refractory_s)["per_category"]
        per_thr[thr] = pf[pf["profile"] == profile].set_index("category")
    cats = [c for c in per_thr[thresholds[0]].index if per_thr[thresholds[0]].loc[c, "windows"] > 0]
    if len(cats) < 2:
        raise InsufficientDataError(
            "leave-one-category-out needs at least 2 categories with windows; got "
            f"{len(cats)} ({', '.join(cats) or 'none'}) among {len(per_thr[thresholds[0]])} scored "
            "categories; score more categories (drop --files or name files from other categories)")

    def total(thr: float, keep: list[str]) -> float:
        g = per_thr[thr].loc[keep]
        return normalised(g["raw"].sum(), g["null"].sum(), g["perfect"].sum())

    all_cats = list(per_thr[thresholds[0]].index)
    best_all = max(thresholds, key=lambda t: total(t, all_cats))
    rows = []
    for c in cats:
        others = [o for o in all_cats if o != c]
        thr = max(thresholds, key=lambda t: total(t, others))
        g = per_thr[thr].loc[c]
        rows.append({"category": c, "threshold": thr, "held_out": g["score"],
                     "in_sample": per_thr[best_all].loc[c, "score"],
                     "raw": g["raw"], "null": g["null"], "perfect": g["perfect"]})
    return pd.DataFrame(rows)


#: Designs and alarm rules the nested leave-one-category-out estimate chooses among (``--loco``).
#: The default ensemble and the same with a shorter discord subsequence (2 h, 30 min, 1 h), each with
#: four Simes weightings (EWMA member 1 or 0.5 x discord member 1 or 2): twelve designs. Not
#: ``ensemble_burst``: with it in the pool the per-fold design choice flips between categories and
#: the pooled nested standard score drops (63.4 against 66.1 with an unsmoothed 1 h ``mp_discord``
#: member; README, "How the statistics are kept honest").
LOCO_DESIGNS = ENSEMBLE_DESIGNS
LOCO_REFRACTORY_H = (6.0, 12.0, 24.0)


def loco_rules(thresholds: tuple[float, ...] = SWEEP_THRESHOLDS,
               refractory_h: tuple[float, ...] = LOCO_REFRACTORY_H) -> dict[tuple[float, float], AlarmRule]:
    """The alarm-rule grid: every threshold with every refractory span (hours), keyed (threshold, hours)."""
    return {(t, h): AlarmRule(t, h * 3600.0) for t in thresholds for h in refractory_h}


def candidate_table(runs: dict[str, NabRun], rules: dict[tuple[float, float], AlarmRule]) -> pd.DataFrame:
    """NAB outcome of every (design, rule) per file and profile: columns ``design, threshold,
    refractory_h, name, category, profile, raw, null, perfect, tp, fp, fn, windows``. Scores are
    computed once per design (``runs``) and every rule is applied to them (the ``detect`` path)."""
    rows = []
    for design, run in runs.items():
        for (thr, hours), rule in rules.items():
            files = {n: (ts, detections(ts, sc, rule)) for n, (ts, sc) in run.scores.items()}
            for prof in NAB_PROFILES:
                pf = nab_score(files, run.windows, prof).per_file
                rows.append(pf.assign(design=design, threshold=thr, refractory_h=hours, profile=prof))
    out = pd.concat(rows, ignore_index=True)
    out["category"] = out["name"].str.split("/").str[0]
    return out


def nested_loco(table: pd.DataFrame, profile: str = "standard") -> tuple[pd.DataFrame, float | None, dict]:
    """Nested leave-one-category-out: for each category, choose the design and alarm rule that score
    best (``profile``, normalised) on the *other* categories, then score it with that choice.

    Returns the per-category table (``category, design, threshold, refractory_h, held_out, tp, fp,
    windows, raw, null, perfect``), the pooled held-out normalised score (every category's raw, null
    and perfect summed, so a category without windows still pays for its false alarms) and the
    whole-dev-set choice (``design, threshold, refractory_h, score``: chosen and scored on all
    categories, in-sample).

    Raises
    ------
    InsufficientDataError
        Fewer than 2 categories have labelled windows.
    """
    t = table[table["profile"] == profile]
    keys = ["design", "threshold", "refractory_h"]
    cols = ["raw", "null", "perfect", "tp", "fp", "windows"]
    per_cat = t.groupby([*keys, "category"])[cols].sum()
    cats = sorted(t["category"].unique())
    with_windows = [c for c in cats if t[t["category"] == c]["windows"].sum() > 0]
    if len(with_windows) < 2:
        raise InsufficientDataError(
            f"nested leave-one-category-out needs at least 2 categories with windows; got {len(with_windows)}")

    def best(keep: list[str]) -> tuple[tuple, float]:
        g = per_cat[per_cat.index.get_level_values("category").isin(keep)].groupby(level=[0, 1, 2]).sum()
        score = 100.0 * (g["raw"] - g["null"]) / (g["perfect"] - g["null"])
        k = score.idxmax()                    # first best in (design, threshold, refractory) order
        return k, float(score.loc[k])

    rows = []
    for c in cats:
        k, _ = best([o for o in cats if o != c])
        g = per_cat.loc[(*k, c)]
        rows.append({"category": c, "design": k[0], "threshold": k[1], "refractory_h": k[2],
                     "held_out": normalised(g["raw"], g["null"], g["perfect"]),
                     **{x: g[x] for x in cols}})
    lo = pd.DataFrame(rows)
    pooled = normalised(lo["raw"].sum(), lo["null"].sum(), lo["perfect"].sum())
    k, sc = best(cats)
    return lo, pooled, {"design": k[0], "threshold": k[1], "refractory_h": k[2], "score": sc}


def run_designs(nab_dir: Path, designs: tuple[str, ...] = LOCO_DESIGNS,
                files: list[str] | None = None) -> dict[str, NabRun]:
    """Score every design once on the NAB files (reused across the whole rule grid)."""
    return {d: run_nab(nab_dir, d, files) for d in designs}


def print_nested(runs: dict[str, NabRun], rules: dict[tuple[float, float], AlarmRule] | None = None) -> None:
    """Print the nested leave-one-category-out estimate per profile and category, and the whole dev set."""
    table = candidate_table(runs, loco_rules() if rules is None else rules)
    print(f"nested leave-one-category-out: design ({', '.join(runs)}) and alarm rule (threshold x "
          "refractory) chosen on the other categories, the held-out category scored with that choice")
    pooled_all, whole = {}, {}
    for prof in NAB_PROFILES:
        lo, pooled, dev = nested_loco(table, prof)
        pooled_all[prof], whole[prof] = pooled, dev
        print(f"[{prof}]")
        print(lo[["category", "design", "threshold", "refractory_h", "held_out", "tp", "fp", "windows"]]
              .to_string(index=False, float_format=lambda v: f"{v:8.6g}"))
    print("pooled nested estimate:  " + "  ".join(f"{p} {_fmt(v)}" for p, v in pooled_all.items()))
    print("whole dev set (chosen on all categories, in-sample):")
    for p, d in whole.items():
        print(f"  {p}: {d['design']} threshold {d['threshold']:g} refractory {d['refractory_h']:g} h -> "
              f"{_fmt(d['score'])}")



def _fmt(x: float | None) -> str:
    return "   n/a" if x is None or not np.isfinite(x) else f"{x:6.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.eval", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("nab", help="score the default detector on the NAB subset")
    p.add_argument("dir", nargs="?", default=str(DEFAULT_NAB_DIR), help="NAB directory (windows.json, data/)")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, choices=detector_names())
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    p.add_argument("--refractory-s", type=float, default=DEFAULT_REFRACTORY_S,
                   help="suppress detections this many seconds after one (NAB adapter)")
    p.add_argument("--files", nargs="*", default=None, help="only these files (category/name.csv)")
    p.add_argument("--sweep", action="store_true", help="print scores for a range of thresholds")
    p.add_argument("--per-file", action="store_true", help="print the standard-profile per-file table")
    p.add_argument("--loco", action="store_true",
                   help="nested leave-one-category-out: choose design and alarm rule on the other "
                        "categories, score each one (per profile), and the whole dev set")
    args = ap.parse_args(argv)
    try:
        run = run_nab(Path(args.dir), args.detector, args.files)
        print(f"scored {len(run.scores)} files causally in {run.seconds:.1f} s "
              f"(detector {args.detector}, refractory {args.refractory_s:g} s)")
        print(run.reading_report())
        if args.sweep:
            print("threshold  standard  low_FP  low_FN")
            for thr in SWEEP_THRESHOLDS:
                r = evaluate(run, thr, args.refractory_s)
                print(f"{thr:<9g}  {_fmt(r['standard'])}  {_fmt(r['reward_low_FP'])}  {_fmt(r['reward_low_FN'])}")
        r = evaluate(run, args.threshold, args.refractory_s)
        print(f"threshold {args.threshold:g}: normalised NAB score  standard {_fmt(r['standard'])}  "
              f"reward_low_FP {_fmt(r['reward_low_FP'])}  reward_low_FN {_fmt(r['reward_low_FN'])}")
        cat = r["per_category"]
        wide = cat.pivot(index="category", columns="profile", values="score")[list(NAB_PROFILES)]
        counts = cat[cat["profile"] == "standard"].set_index("category")[["windows", "tp", "fp"]]
        table = wide.join(counts)
        print("per category (normalised; n/a = no labelled window; fp = detections outside windows):")
        print(table.to_string(float_format=lambda v: f"{v:6.1f}"))
        if args.loco:
            others = tuple(d for d in LOCO_DESIGNS if d != args.detector)
            runs = {args.detector: run, **run_designs(Path(args.dir), others, args.files)}
            print_nested(runs)
            lo = leave_one_category_out(run, refractory_s=args.refractory_s)
            pooled = normalised(lo["raw"].sum(), lo["null"].sum(), lo["perfect"].sum())
            print(f"threshold-only leave-one-category-out ({args.detector}, standard, refractory "
                  f"{args.refractory_s:g} s):")
            print(lo[["category", "threshold", "held_out", "in_sample"]].to_string(
                index=False, float_format=lambda v: f"{v:8.6g}"))
            print(f"pooled held-out normalised score: {_fmt(pooled)}")
        if args.per_file:
            print(r["per_file"].to_string(float_format=lambda v: f"{v:7.2f}"))
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
