"""Back up the database to a new directory: a consistent snapshot (Parquet per table) and a manifest.

Taken in one transaction while this process holds the file (other processes wait a moment), so it
is consistent even while the app and cron feeds run. Restore it with ``python -m core restore DIR``.
Reading only: any user may take a backup.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="DIR", help="new directory for the backup (must not exist, or be empty)")


def run(args: argparse.Namespace) -> int:
    from core.data.store import Store
    from core.data.store.backup import backup

    with Store(args.db) as store:
        info = backup(store, args.out)
    print(f"wrote {info.summary()}")
    return 0
