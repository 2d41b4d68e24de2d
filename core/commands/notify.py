"""Notifications: deliver pending notices to the configured channels, check SLO budgets, list the log.

``deliver`` attempts every delivery that is due once (retries are scheduled with back-off; run it from
cron or a loop); ``check-slos`` evaluates the SLOs of the policy in force and enqueues a notice per
firing burn-rate alert; ``check-drift`` compares each stored series since the last applied change
covering it (or its baseline period) and enqueues a ``drift`` notice when it shifted; ``log`` prints the delivery log. Channels: see :mod:`core.policy.notify`.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("deliver", help="send every notice that is due")
    sub.add_parser("check-slos", help="enqueue notices for SLO burn-rate alerts firing now")
    sub.add_parser("check-drift", help="enqueue drift notices for series whose distribution shifted")
    lg = sub.add_parser("log", help="print the delivery log, newest first")
    lg.add_argument("--limit", type=int, default=50)


def run(args: argparse.Namespace) -> int:
    from core.data.store import Store, audit
    from core.policy import notify
    from core.policy.drift_watch import check_drift
    from core.slo.watch import check_budget_alerts

    with Store(args.db) as store:
        audit.install(store)
        if args.action == "deliver":
            r = notify.deliver_due(store)
            print(f"sent {r.sent}, retrying {r.retrying}, failed {r.failed}")
        elif args.action == "check-slos":
            for a in check_budget_alerts(store):
                state = "enqueued" if a["notice_id"] is not None else "already notified within the window"
                print(f"{a['slo']} {a['windows']} {a['burn_rate']:.2f}x > {a['factor']:g}x: {state}")
        elif args.action == "check-drift":
            for d in check_drift(store):
                r = d.result
                state = ("" if r.verdict != "drift" else
                         ": enqueued" if d.notice_id is not None else ": already notified within the window")
                print(f"{d.key} since {d.change or 'baseline'} ({d.since:%Y-%m-%d %H:%M}): {r.verdict}{state}; "
                      f"{r.reason}")
        else:
            log = notify.delivery_log(store, args.limit)
            print("no deliveries yet" if log.empty else log.to_string(index=False))
    return 0
