"""Separate-process helpers for tests/test_concurrency.py (run as ``python -m tests.proc_worker ...``).

``pages DB READY STOP OUT PAGE...``: render the pages with AppTest, over and over, until the STOP file
appears (READY is written after the first round); then render the Overview once more and write a
JSON report (exceptions seen, the Overview's metrics) to OUT.

``hang-ingest FILE READY``: run ``python -m core ingest FILE`` but stop inside its write transaction,
after every point, the upload row and its audit entry are written and before the commit; write
READY and sleep, so the test can kill the process by its PID mid-write.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def pages(db: str, ready: str, stop: str, out: str, names: list[str]) -> int:
    import os

    os.environ["STUDIO_DB"] = db
    from tests.apptest_util import metric_values, open_page

    errors: list[str] = []
    rounds = 0
    deadline = time.monotonic() + 120
    while True:
        for name in names:
            at = open_page(name)
            errors += [f"{name}: {e.value}" for e in at.exception]
            errors += [f"{name}: {e.value}" for e in at.error if "in use by" in str(e.value)]
        rounds += 1
        if rounds == 1:
            Path(ready).write_text("ready")
        if Path(stop).exists() or time.monotonic() > deadline:
            break
    at = open_page("overview.py")
    errors += [f"final overview: {e.value}" for e in at.exception]
    Path(out).write_text(json.dumps({"errors": errors, "rounds": rounds, "metrics": metric_values(at)}))
    return 0


def hang_ingest(file: str, ready: str) -> int:
    from core.__main__ import main
    from core.data.store.base import Store

    original = Store._finish_upload

    def finish_then_hang(self, *args, **kwargs):
        report = original(self, *args, **kwargs)
        Path(ready).write_text("in transaction")
        time.sleep(120)   # killed here
        return report

    Store._finish_upload = finish_then_hang
    return main(["ingest", file])


if __name__ == "__main__":
    verb, rest = sys.argv[1], sys.argv[2:]
    if verb == "pages":
        sys.exit(pages(rest[0], rest[1], rest[2], rest[3], rest[4:]))
    if verb == "hang-ingest":
        sys.exit(hang_ingest(rest[0], rest[1]))
    sys.exit(f"unknown verb {verb!r}")
