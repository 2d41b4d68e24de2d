"""Score a metric file with an anomaly detector and turn the scores into alarms; write a CSV.

The file is read the way an upload stores it (:func:`core.data.ingest.load_metrics`: sorted, one
row per timestamp, the last repeat kept; what was dropped is reported on stderr). The series is
scored causally on its own: the detector is fitted on its first points (15%, at most 750; those
rows get an empty score) and every later row is scored from itself and earlier rows only. Scores
then go through the alarm rule (:class:`core.analysis.detect.AlarmRule`: a threshold or a target
false-alarm rate per week, and a refractory span that merges repeats into one alarm). This is the
same code path as ``python -m core.eval nab``, so its figures describe this output.

Output columns:

``timestamp``  the row's time, UTC (ISO 8601).
``value``      the value as read (empty = missing).
``score``      anomaly score in [0, 1]: ``1 - p`` for the calibrated tail probability ``p`` of the
               row against the training history; empty for training rows and missing values.
``alert``      1 on the row that opens an alarm (page someone here), else 0.
``alarm_id``   the alarm (1, 2, ...) the row belongs to, on every row from its opening row until
               the refractory span after it ends; 0 outside alarms.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from core.analysis.detect import (
    DEFAULT_DETECTOR,
    DEFAULT_REFRACTORY_S,
    DEFAULT_THRESHOLD,
    AlarmRule,
    detector_names,
    run_detection,
)
from core.commands._source import read_file
from core.errors import NotFound, ValidationError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__              # --help documents the output columns
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("file", help="metric file (any format ingest reads)")
    parser.add_argument("--out", default="-", help="output CSV (default: standard output)")
    parser.add_argument("--format", default="auto", help="input format (default: detected)")
    parser.add_argument("--series", default=None, help="series key to score when the file holds several")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=detector_names())
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"a row is over threshold when score >= this (default {DEFAULT_THRESHOLD})")
    parser.add_argument("--false-alarms-per-week", type=float, default=None,
                        help="instead of --threshold: target false alarms per week (threshold set from "
                             "the series' sampling step)")
    parser.add_argument("--refractory-s", type=float, default=DEFAULT_REFRACTORY_S,
                        help=f"seconds an alarm stays open; repeats inside it are merged (default "
                             f"{DEFAULT_REFRACTORY_S:g})")


def run(args: argparse.Namespace) -> int:
    rule = AlarmRule(args.threshold, args.refractory_s, args.false_alarms_per_week)
    points = read_file(Path(args.file), args.format).points   # as ingest reads it; report and warnings on stderr
    keys = sorted(points["series"].astype(str).unique())
    key = args.series
    if key is None:
        if len(keys) != 1:
            raise ValidationError(f"{args.file} holds {len(keys)} series; choose one with --series "
                                  f"(e.g. {keys[:3]})", path="--series")
        key = keys[0]
    elif key not in keys:
        raise NotFound(f"series {key!r} not in {args.file}; it holds {keys[:5]}")
    df = points[points["series"].astype(str) == key]
    s = pd.Series(pd.to_numeric(df["value"], errors="coerce").to_numpy(dtype=np.float64),
                  index=pd.DatetimeIndex(df["ts"]))
    res = run_detection(s, args.detector, rule)
    out = res.frame()
    target = sys.stdout if args.out == "-" else args.out
    out.to_csv(target, index=False, float_format="%.6g")
    if args.out != "-":
        n_scored = int(np.isfinite(res.score).sum())
        print(f"{key}: {len(s)} rows, {n_scored} scored, {int(res.alert.sum())} alarm(s) "
              f"(threshold {res.threshold:g}; {rule.describe()}) -> {args.out}", file=sys.stderr)
    return 0
