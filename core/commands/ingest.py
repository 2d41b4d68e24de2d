"""Ingest metric exports (CSV or JSON) into the database, one upload per file; or watch a folder.

Each file is all or nothing: a bad file writes nothing and the others are still ingested. Prints one
summary line per file; exits 2 if any file failed, naming them.

``--watch DIR`` imports each new file that appears in DIR (see :mod:`core.data.watch` for when a file
counts as complete), once, with the same checks, logging one line per file, until stopped (Ctrl-C or
SIGTERM); with ``--once`` it imports what is ready now and exits (for cron).

The uploader is ``$STUDIO_USER`` (or ``[local] user`` in the roles file) and needs the ``editor``
role (``config/roles.toml`` or ``$STUDIO_ROLES``); a viewer gets exit 2 and nothing is written.
While another process holds the database the command waits (``$STUDIO_LOCK_TIMEOUT``, default 30 s).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from core.data.ingest import FORMATS
from core.errors import DatabaseLocked, IngestError, PermissionDenied, StudioError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILE", help="metric export(s): CSV or JSON")
    parser.add_argument("--format", default="auto", choices=("auto", *FORMATS),
                        help="layout of the files (default: detect each file)")
    parser.add_argument("--watch", metavar="DIR", default=None,
                        help="import new files appearing in DIR, each once, until stopped")
    parser.add_argument("--once", action="store_true", help="with --watch: import what is ready now, then exit")
    parser.add_argument("--interval", type=float, default=5.0, help="with --watch: seconds between looks (default 5)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="with --watch: seconds a file must stay unchanged before it is read (default 2)")


def _log(line: str, *, err: bool = False) -> None:
    """One timestamped line of the watcher's log."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} {line}", file=sys.stderr if err else sys.stdout, flush=True)


def run(args: argparse.Namespace) -> int:
    from core.data.store import Store
    from core.policy.identity import current_user, require

    if bool(args.files) == bool(args.watch):
        raise StudioError("give the files to ingest, or --watch DIR (not both)")
    user = current_user()
    try:
        require(user, "editor")
    except PermissionDenied as exc:   # before the database is opened: nothing is written
        what = f"watch {args.watch}" if args.watch else f"ingest {len(args.files)} file(s)"
        raise PermissionDenied(f"cannot {what}: {exc}") from None
    if args.watch:
        return _watch(args, user.id)
    failed: list[str] = []
    reports = []
    with Store(args.db) as store:
        for f in args.files:
            try:
                report = store.ingest(f, fmt=args.format, actor=user.id)
            except IngestError as exc:
                failed.append(f)
                print(f"FAILED {exc}", file=sys.stderr)
                continue
            print(report.summary())
            reports.append(report)
            for w in report.warnings:
                print(f"  note: {w}")
        post_ingest_checks(store, reports)
    if failed:
        ok = len(args.files) - len(failed)
        print(f"error: {len(failed)} of {len(args.files)} file(s) not ingested (nothing written from them): "
              f"{', '.join(failed)}; {ok} ingested", file=sys.stderr)
        return 2
    return 0


def _print(text: str, *, err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout)


def post_ingest_checks(store: object, reports: Sequence[object], say: Callable[..., None] = _print) -> None:
    """The checks new data triggers, after a one-shot ingest (once, for all its files) and after each
    file of ``--watch``: SLO budget alerts of the policy in force, then drift of the series the uploads
    added or changed points to (``IngestReport.changed_series``; none when nothing changed), then the
    rollback triggers of the change in force (when points changed). Never
    fails the ingest: a problem is said as a note. ``say(text, err=False)`` prints one line."""
    if not reports:
        return
    _check_slos(store, say)
    changed = sorted({k for r in reports for k in getattr(r, "changed_series", ())})
    if changed:
        _check_drift(store, changed, say)
        _check_triggers(store, say)


def _check_slos(store: object, say: Callable[..., None] = _print) -> None:
    """After new data: enqueue notices for SLO burn-rate alerts of the policy in force."""
    from core.slo.watch import check_budget_alerts

    try:
        for a in check_budget_alerts(store):  # type: ignore[arg-type]
            if a["notice_id"] is not None:
                say(f"  notice: SLO {a['slo']} burning at {a['burn_rate']:.1f}x over {a['windows']}")
    except StudioError as exc:
        say(f"  note: SLO budgets not checked: {exc}", err=True)


def _check_drift(store: object, keys: Sequence[str], say: Callable[..., None] = _print) -> None:
    """After new data: enqueue drift notices for those of ``keys`` that shifted since their last
    covering change."""
    from core.policy.drift_watch import check_drift

    try:
        for d in check_drift(store, keys=keys):  # type: ignore[arg-type]
            if d.notice_id is not None:
                say(f"  notice: drift on {d.key} since {d.change or 'its baseline period'}: {d.result.reason}")
    except StudioError as exc:
        say(f"  note: drift not checked: {exc}", err=True)


def _check_triggers(store: object, say: Callable[..., None] = _print) -> None:
    """After new data: check the rollback triggers of the change in force and act on a firing (never
    fails the ingest; a problem is printed as a note)."""
    from core.slo.watch import check_rollback_triggers

    try:
        for f in check_rollback_triggers(store):  # type: ignore[arg-type]
            verb = "rolled back" if f.mode == "rollback" else "proposed a rollback"
            say(f"  trigger: {f.trigger} on v{f.version} {verb} (v{f.result_version}): {f.summary()}")
    except StudioError as exc:
        say(f"  note: rollback triggers not checked: {exc}", err=True)


def _watch(args: argparse.Namespace, actor: str) -> int:
    from core.data.store import Store
    from core.data.watch import FolderWatch

    watch = FolderWatch(Path(args.watch), settle_s=args.settle)
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    store = Store(args.db)
    if not args.once:
        _log(f"watching {watch.folder} every {args.interval:g} s for {store.path} (as {actor}); Ctrl-C to stop")
    failures = 0
    try:
        while not stop:
            for path in watch.ready():
                try:
                    report = store.ingest(path, fmt=args.format, actor=actor)
                except IngestError as exc:
                    failures += 1
                    _log(f"FAILED {exc}", err=True)
                except DatabaseLocked as exc:   # try this file again at the next look
                    _log(f"WAITING {path.name}: {exc}", err=True)
                    continue
                else:
                    _log(("skipped " if report.is_noop else "imported ") + report.summary())
                    for w in report.warnings:
                        _log(f"  note: {w}")
                    post_ingest_checks(store, [report], _log)
                watch.done(path)
            if args.once:
                break
            end = time.monotonic() + args.interval
            while not stop and time.monotonic() < end:
                time.sleep(min(0.2, args.interval))
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    if not args.once:
        _log("stopped")
    return 2 if args.once and failures else 0
