"""Import labelled incident windows from a CSV (series,start,end[,note][,kind]) or NAB windows.json.

The acting user is ``$STUDIO_USER`` (or ``[local] user`` in the roles file) and needs the ``editor``
role (``config/roles.toml`` or ``$STUDIO_ROLES``); the import is recorded in the audit trail under
that user. The same windows are never stored twice (see :func:`core.data.incidents.import_incidents`).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="CSV with series,start,end[,note][,kind] or a NAB windows.json")
    parser.add_argument("--replace", action="store_true",
                        help="first delete the windows imported earlier from this file (same absolute path, "
                             "or --name) and any stored copy of the same windows")
    parser.add_argument("--name", default=None,
                        help="label to record for the file (default: its absolute path)")


def run(args: argparse.Namespace) -> int:
    from core.data.incidents import import_incidents
    from core.data.store import Store, audit
    from core.policy.identity import current_user, require

    user = current_user()
    require(user, "editor")
    with audit.install(Store(args.db) if args.db else Store()) as store:
        res = import_incidents(store, args.file, name=args.name, actor=user.id, replace=args.replace)
        known = set(store.series_keys())
    for w in res.warnings:
        print(f"note: {w}")
    if res.duplicate:
        print(res.message)
        return 0
    df = res.windows
    named = df["series"].dropna()
    unknown = sorted(set(named) - known)
    print(f"{res.message} {len(named)} for {named.nunique()} series, {int(df['series'].isna().sum())} global; "
          f"recorded as {user.id}")
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        print(f"note: {len(unknown)} series named in the file are not in the database yet: {shown}")
    return 0
