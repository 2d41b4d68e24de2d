"""Import labelled incident windows from a CSV (series,start,end[,note][,kind]) or NAB windows.json."""

from __future__ import annotations

import argparse

from core.incidents import import_incidents
from core.store import Store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="CSV with series,start,end[,note][,kind] or a NAB windows.json")
    parser.add_argument("--replace", action="store_true",
                        help="first delete the windows imported earlier from a file of the same name")
    parser.add_argument("--actor", default=None, help="who imports (for the audit trail)")


def run(args: argparse.Namespace) -> int:
    store = Store(args.db) if args.db else Store()
    try:
        df = import_incidents(store, args.file, actor=args.actor, replace=args.replace)
        known = set(store.series_keys())
    finally:
        store.close()
    named = df["series"].dropna()
    unknown = sorted(set(named) - known)
    print(f"stored {len(df)} incident window(s) from {args.file}: {len(named)} for "
          f"{named.nunique()} series, {int(df['series'].isna().sum())} global")
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        print(f"note: {len(unknown)} series named in the file are not in the database yet: {shown}")
    return 0
