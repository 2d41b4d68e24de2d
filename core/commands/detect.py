"""Score a metric CSV with the default anomaly detector; write timestamp,value,score,alert.

The series is scored causally on its own: the detector is fitted on its first points (15%, at most
750; those rows get an empty score and alert 0) and every later row is scored from itself and earlier
rows only. ``alert`` is 1 where ``score >= threshold`` (default: the fixed package threshold).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from core.analysis.detect import DEFAULT_DETECTOR, DEFAULT_THRESHOLD, DETECTORS, score_online
from core.commands._source import read_file
from core.errors import NotFound, ValidationError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="metric CSV (timestamp,value, or series,ts,value long format)")
    parser.add_argument("--out", default="-", help="output CSV (default: standard output)")
    parser.add_argument("--series", default=None, help="series key to score when the file holds several")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=sorted(DETECTORS))
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"alert when score >= this (default {DEFAULT_THRESHOLD})")


def run(args: argparse.Namespace) -> int:
    if not 0.0 < args.threshold < 1.0:
        raise ValidationError(f"must be in (0, 1), got {args.threshold}", path="--threshold")
    points = read_file(Path(args.file)).points      # as ingest reads it; its report and warnings on stderr
    keys = sorted(points["series"].astype(str).unique())
    key = args.series
    if key is None:
        if len(keys) != 1:
            raise ValidationError(f"{args.file} holds {len(keys)} series; choose one with --series "
                                  f"(e.g. {keys[:3]})", path="--series")
        key = keys[0]
    elif key not in keys:
        raise NotFound(f"series {key!r} not in {args.file}; it holds {keys[:5]}")
    df = points[points["series"].astype(str) == key].sort_values("ts", kind="stable")
    s = pd.Series(pd.to_numeric(df["value"], errors="coerce").to_numpy(dtype=np.float64),
                  index=pd.DatetimeIndex(df["ts"]))
    score = score_online(s, args.detector)
    with np.errstate(invalid="ignore"):
        alert = (score >= args.threshold).astype(np.int64)
    out = pd.DataFrame({"timestamp": s.index.strftime("%Y-%m-%dT%H:%M:%SZ"), "value": s.to_numpy(),
                        "score": score, "alert": alert})
    target = sys.stdout if args.out == "-" else args.out
    out.to_csv(target, index=False, float_format="%.6g")
    if args.out != "-":
        n_scored = int(np.isfinite(score).sum())
        print(f"{key}: {len(s)} rows, {n_scored} scored, {int(alert.sum())} alert rows "
              f"(threshold {args.threshold:g}) -> {args.out}", file=sys.stderr)
    return 0
