"""Ingest metric exports (CSV or JSON) into the database, one upload per file.

Each file is all or nothing: a bad file writes nothing and the others are still ingested. Prints one
summary line per file; exits 2 if any file failed, naming them.

The uploader is ``$STUDIO_USER`` (or ``[local] user`` in the roles file) and needs the ``editor``
role (``config/roles.toml`` or ``$STUDIO_ROLES``); a viewer gets exit 2 and nothing is written.
"""

from __future__ import annotations

import argparse
import sys

from core.data.ingest import FORMATS
from core.errors import IngestError, PermissionDenied


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="metric export(s): CSV or JSON")
    parser.add_argument("--format", default="auto", choices=("auto", *FORMATS),
                        help="layout of the files (default: detect each file)")


def run(args: argparse.Namespace) -> int:
    from core.data.store import Store
    from core.policy.identity import current_user, require

    user = current_user()
    try:
        require(user, "editor")
    except PermissionDenied as exc:   # before the database is opened: nothing is written
        raise PermissionDenied(f"cannot ingest {len(args.files)} file(s): {exc}") from None
    failed: list[str] = []
    with Store(args.db) as store:
        for f in args.files:
            try:
                report = store.ingest(f, fmt=args.format, actor=user.id)
            except IngestError as exc:
                failed.append(f)
                print(f"FAILED {exc}", file=sys.stderr)
                continue
            print(report.summary())
            for w in report.warnings:
                print(f"  note: {w}")
    if failed:
        ok = len(args.files) - len(failed)
        print(f"error: {len(failed)} of {len(args.files)} file(s) not ingested (nothing written from them): "
              f"{', '.join(failed)}; {ok} ingested", file=sys.stderr)
        return 2
    return 0
