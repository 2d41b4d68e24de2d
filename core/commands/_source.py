"""The one way commands read metric data: a file through the ingest path, or a stored series.

A file is read with :func:`core.data.ingest.load_metrics`, exactly as ``python -m core ingest`` would
store it (same format detection, a repeated timestamp keeps its last value and is reported as
rejected, rows sorted, gaps kept), and what it found is printed to standard error: the read report
and every warning. So a file that ``ingest`` accepts never stops ``replay``, ``sweep`` or
``detect``. Without a file, ``--db DB --series KEY`` reads the stored series instead.

Not a command (the leading underscore keeps it out of ``python -m core --help``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from core.data.ingest import FORMATS, LoadedMetrics, load_metrics
from core.errors import NotFound, ValidationError


def add_source_arguments(parser: argparse.ArgumentParser, *, what: str) -> None:
    """``FILE`` (optional: without it the stored series named by ``--series`` in ``--db``),
    ``--series`` and ``--format``."""
    parser.add_argument("file", nargs="?", default=None,
                        help="metric export, read as `python -m core ingest` reads it; omit it to use the "
                             "series stored in --db")
    parser.add_argument("--series", help=f"series key to {what} (required when the file holds several, "
                                         "and without a file)")
    parser.add_argument("--format", default="auto", choices=("auto", *FORMATS),
                        help="layout of the file (default: detect it)")


def add_incident_arguments(parser: argparse.ArgumentParser) -> None:
    """``--incidents`` (a file, or ``stored``) and ``--early``."""
    parser.add_argument("--incidents", help="incident windows: a CSV series,start,end or NAB windows.json, or "
                                            "'stored' for this series' windows stored in --db")
    parser.add_argument("--early", default="0s", help="an alert this long before an incident still counts")


def load_incidents(args: argparse.Namespace, key: str) -> pd.DataFrame | None:
    """The incident windows ``--incidents`` names (None without it): read from the file, or, for
    ``stored`` (when no such file exists), the series' own and the global windows stored in ``--db``."""
    if not args.incidents:
        return None
    if args.incidents == "stored" and not Path(args.incidents).exists():
        from core.data.store import Store

        with (Store(args.db, read_only=True) if args.db else Store(read_only=True)) as store:
            return store.list_incidents(key)
    from core.data.incidents import read_incidents

    return read_incidents(args.incidents)


def read_file(path: Any, fmt: str = "auto", out: Any = None) -> LoadedMetrics:
    """:func:`core.data.ingest.load_metrics` plus its report and warnings on ``out`` (standard error)."""
    loaded = load_metrics(path, fmt)
    out = sys.stderr if out is None else out
    print(loaded.report(), file=out)
    for w in loaded.warnings:
        print(f"  note: {w}", file=out)
    return loaded


def pick_key(keys: list[str], wanted: str | None, where: str) -> str:
    """The series to work on: ``wanted`` (must be among ``keys``) or the only one."""
    if wanted is not None:
        if wanted not in keys:
            raise NotFound(f"series {wanted!r} not in {where}; it holds {keys[:10]}")
        return wanted
    if len(keys) == 1:
        return keys[0]
    raise ValidationError(f"{where} holds {len(keys)} series; choose one with --series "
                          f"(e.g. {keys[0]!r})" if keys else f"{where} holds no series", path="--series")


def load_series(args: argparse.Namespace) -> tuple[str, pd.DataFrame]:
    """``(key, points frame of that one series)`` from ``args.file`` or, without one, the store."""
    if args.file is not None:
        points = read_file(args.file, getattr(args, "format", "auto")).points
        keys = [str(k) for k in pd.unique(points["series"])]
        key = pick_key(keys, args.series, args.file)
        return key, points[points["series"] == key].reset_index(drop=True)
    from core.data.store import Store

    if args.series is None:
        raise ValidationError("give a metric file, or --series KEY to use a series stored in the database",
                              path="--series")
    with (Store(args.db, read_only=True) if args.db else Store(read_only=True)) as store:
        points = store.get_points(args.series)
        if len(points) == 0:
            keys = store.list_series()["key"].tolist()
            raise NotFound(f"series {args.series!r} is not stored in {store.path}"
                           + (f"; it holds {keys[:10]}" if keys else " (no series stored)"))
    return args.series, points
