"""Replace the database's contents with a backup made by ``python -m core backup``.

The backup is checked first (readable, not newer than this studio, its audit chain verifies and ends
where its manifest says); then every table is replaced in one transaction and the restore is
appended to the restored audit trail. Everything stored since the backup is lost, so ``--yes`` is
required; without it the command only says what would be replaced. Needs the ``editor`` role
(``$STUDIO_USER``, roles file). Other processes wait while it runs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backup", metavar="DIR", help="backup directory (from `python -m core backup DIR`)")
    parser.add_argument("--yes", action="store_true", help="really replace the database's contents")
    parser.add_argument("--reason", default=None, help="why (recorded in the audit trail)")


def run(args: argparse.Namespace) -> int:
    from core.data.store import Store
    from core.data.store.backup import check_backup, restore
    from core.policy.identity import current_user, require

    user = current_user()
    require(user, "editor")
    with Store(args.db) as store:
        if not args.yes:
            with tempfile.TemporaryDirectory(dir=Path(store.path).resolve().parent) as tmp:
                info, _ = check_backup(args.backup, Path(tmp))
            series = store.list_series()
            print(f"backup OK: {info.summary()}")
            print(f"restoring it would replace {len(series)} series and {int(series['points'].sum()):,} points "
                  f"in {store.path}, and everything else stored since; run again with --yes to restore")
            return 1
        report = restore(store, args.backup, actor=user.id, reason=args.reason)
    print(report.summary())
    return 0
