"""Threshold policies: export, import, history, diff, approve/reject and rollback.

Examples::

    python -m core policy export --format prometheus --out alerts.rules.yml
    python -m core policy import data/demo_policy.yaml --reason "team review 2026-11"
    python -m core policy import-rules alerts.rules.yml grafana-export.yaml --merge
    python -m core policy history
    python -m core policy rollback 3 --reason "v4 pages too often"
    python -m core policy check-triggers --dry-run
    python -m core policy report --csv effectiveness.csv --html effectiveness.html

The acting user is ``$STUDIO_USER`` (or ``[local] user`` in the roles file); roles come from
``config/roles.toml`` or ``$STUDIO_ROLES``. That name is taken on trust, so every write also records
the OS account, and ``approve`` is refused from the OS account that wrote the version.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.errors import StudioError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default="default", help="policy name (default: default)")
    sub = parser.add_subparsers(dest="action", required=True)
    ex = sub.add_parser("export", help="write the active (or a given) version as YAML or Prometheus rules",
                        epilog="The Prometheus export prints to stderr each way Prometheus will behave "
                               "differently from the studio's replay (also '# WARNING:' comments in the file).")
    ex.add_argument("--format", choices=("yaml", "prometheus"), default="yaml")
    ex.add_argument("--out", default=None, help="output file (default: stdout)")
    ex.add_argument("--version", type=int, default=None, help="version number (default: the active one)")
    ex.add_argument("--tests", default=None, metavar="TESTS.yml",
                    help="with --format prometheus and --out: also write promtool unit tests of the rules, built "
                         "from the stored history (run them with: promtool test rules TESTS.yml)")
    ex.add_argument("--mapping", default=None,
                    help="YAML/JSON file of series key -> PromQL selector for the Prometheus export")
    im = sub.add_parser("import", help="apply a policy YAML file as a new version")
    im.add_argument("file")
    im.add_argument("--reason", default=None, help="why (default: 'import <file>')")
    im.add_argument("--base", type=int, default=None,
                    help="version the file was based on (default: the latest; a newer one is a conflict)")
    ir = sub.add_parser("import-rules", help="import deployed Prometheus rule files / Grafana alert exports as a "
                        "new version (the rules in force)",
                        epilog="All files together become one new version. Thresholds become tunable rules; "
                               "everything else is kept unchanged (listed as not tunable) and exported again.")
    ir.add_argument("files", nargs="+", metavar="FILE")
    ir.add_argument("--format", choices=("auto", "prometheus", "grafana"), default="auto")
    ir.add_argument("--merge", action="store_true",
                    help="replace only rules of the same name (default: the files replace all rules)")
    ir.add_argument("--reason", default=None, help="why (default: 'import-rules <files>')")
    ir.add_argument("--base", type=int, default=None,
                    help="version the import is based on (default: the latest; a newer one is a conflict)")
    ir.add_argument("--dry-run", action="store_true", help="print the diff and notes, write nothing")
    sub.add_parser("history", help="list every version with status and reason")
    df = sub.add_parser("diff", help="rule-level diff between two versions")
    df.add_argument("a", type=int)
    df.add_argument("b", type=int)
    for name, text in (("approve", "approve a pending version (second person, approver role)"),
                       ("reject", "reject a pending version")):
        p = sub.add_parser(name, help=text)
        p.add_argument("version", type=int)
        p.add_argument("--reason", required=True)
    rb = sub.add_parser("rollback", help="create a new version with the rules of version N")
    rb.add_argument("version", type=int)
    rb.add_argument("--reason", default="rollback from the command line")
    rb.add_argument("--base", type=int, default=None, help="expected latest version (default: the latest)")
    sub.add_parser("verify-audit", help="check the audit trail's hash chain")
    ct = sub.add_parser("check-triggers", help="check the rollback triggers of the change in force (for cron)",
                        epilog="A firing trigger rolls back (or proposes a rollback, per the version's "
                               "rollback_triggers settings), audits the evidence and queues a 'rollback' notice.")
    ct.add_argument("--dry-run", action="store_true", help="print what would fire, write nothing")
    ct.add_argument("--now", default=None, help="judge at this UTC time (default: the clock)")
    rp = sub.add_parser("report", help="predicted vs actual per change, and the before/after effectiveness report")
    rp.add_argument("--csv", default=None, metavar="FILE", help="write the effectiveness report as CSV")
    rp.add_argument("--html", default=None, metavar="FILE", help="write it as a printable HTML page")
    rp.add_argument("--now", default=None, help="judge at this UTC time (default: the clock)")


def _store(args: argparse.Namespace):
    from core.data.store import Store, audit

    return audit.install(Store(args.db))


def _import_rules(store, args: argparse.Namespace, user, name: str) -> int:
    from core.alerting.rule_import import import_rule_files
    from core.policy import versions as pol

    files = []
    for f in args.files:
        try:
            files.append((Path(f).name, Path(f).read_text(encoding="utf-8")))
        except OSError as exc:
            raise StudioError(f"cannot read {f}: {exc.strerror}") from exc
    result = import_rule_files(files, args.format)
    plan = pol.plan_rule_import(store, result, policy=name, merge=args.merge)
    pv = pol.preview(store, name, plan.rules)
    print(f"{len(result.rules)} tunable rules, {len(result.carried)} kept unchanged (not tunable)")
    d = pv.diff.to_dict()
    for k in ("added", "removed", "changed"):
        if d.get(k):
            print(f"  {k}: {', '.join(d[k])}")
    for n in plan.notes:
        print(f"  note: {n}")
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    v = pol.import_rules(store, plan, user=user, base_version=args.base,
                         reason=args.reason or f"import-rules {' '.join(p for p, _ in files)}")
    print(f"{v.label} created by {v.author}: {v.status}")
    for r in v.significance:
        print(f"  needs approval: {r}")
    return 0


def _write_tests(store, args: argparse.Namespace, v, mapping) -> None:
    """Write the promtool unit tests of the exported rules (``--tests``), naming the rules file relatively."""
    import os

    from core.policy.rule_tests import summary, version_rule_tests

    out, tests = Path(args.out), Path(args.tests)
    rt = version_rule_tests(store, v, mapping, rules_file=os.path.relpath(out.resolve(), tests.resolve().parent))
    tests.write_text(rt.text, encoding="utf-8")
    print(f"wrote promtool tests of {v.policy} v{v.number} to {tests}: {summary(rt)}", file=sys.stderr)


def _fmt_ts(t) -> str:
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M UTC")


def run(args: argparse.Namespace) -> int:
    from core.policy import versions as pol
    from core.policy.identity import current_user

    with _store(args) as store:
        name = args.policy
        if args.action == "export":
            from core.alerting import prometheus
            from core.policy.policy_yaml import policy_to_yaml

            if args.version is not None:
                v = pol.get_version(store, name, args.version)
            else:
                v = pol.active_version(store, name)
                if v is None:
                    raise StudioError(f"policy {name!r} has no version in force; nothing to export")
            if args.tests and (args.format != "prometheus" or not args.out):
                raise StudioError("--tests needs --format prometheus and --out RULES.yml (the tests name the "
                                  "rules file by its path relative to the test file)")
            if args.format == "yaml":
                text = policy_to_yaml(v.rules(), {**v.meta, "policy": name})
            else:
                mapping = prometheus.PromMapping()
                if args.mapping:
                    import yaml

                    sel = yaml.safe_load(Path(args.mapping).read_text(encoding="utf-8")) or {}
                    if not isinstance(sel, dict):
                        raise StudioError(f"{args.mapping}: expected a mapping of series key -> PromQL selector")
                    mapping = prometheus.PromMapping(selectors={str(k): str(s) for k, s in sel.items()})
                prom = prometheus.prometheus_export(v.rules(), mapping, policy=name, version=v.number,
                                                    carried=v.meta.get("carried_rules") or ())
                text = prom.to_yaml()
                # also in the file as comments; on stderr so a reader of the terminal cannot miss them
                for w in prom.warnings:
                    print(f"warning: Prometheus will differ from the replay: {w}", file=sys.stderr)
            from core.data.store.audit import stamp_head

            text = stamp_head(store, text)
            if args.out:
                Path(args.out).write_text(text, encoding="utf-8")
                print(f"wrote {args.format} of {name} v{v.number} to {args.out}", file=sys.stderr)
                if args.tests:
                    _write_tests(store, args, v, mapping)
            else:
                sys.stdout.write(text)
            return 0
        user = current_user()
        if args.action == "import":
            path = Path(args.file)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise StudioError(f"cannot read {path}: {exc.strerror}") from exc
            v = pol.import_yaml(store, text, user=user, reason=args.reason or f"import {path.name}",
                                base_version=args.base, policy=name if args.policy != "default" else None,
                                file=str(path))
            print(f"{v.label} created by {v.author}: {v.status}")
            for r in v.significance:
                print(f"  needs approval: {r}")
            return 0
        if args.action == "import-rules":
            return _import_rules(store, args, user, name)
        if args.action == "history":
            versions = pol.history(store, name)
            if not versions:
                print(f"policy {name!r} has no versions")
                return 0
            active = pol.active_version(store, name)
            for v in versions:
                mark = "*" if active and v.number == active.number else " "
                extra = f" decided by {v.decided_by}" if v.decided_by else ""
                eff = f" effective {_fmt_ts(v.effective_at)}" if v.effective_at else ""
                print(f"{mark} v{v.number:<3} {_fmt_ts(v.created_at)}  {v.author:<22} {v.status:<16}"
                      f"{len(v.rule_dicts):>3} rules  {v.content_hash[:10]}  {v.reason}{eff}{extra}")
            print("(* = in force now)")
            return 0
        if args.action == "diff":
            d = pol.diff(pol.get_version(store, name, args.a), pol.get_version(store, name, args.b))
            print(json.dumps(d.to_dict(), indent=2, default=str))
            return 0
        if args.action in ("approve", "reject"):
            fn = pol.approve if args.action == "approve" else pol.reject
            v = fn(store, args.version, user, args.reason, policy=name)
            print(f"{v.label}: {v.status} by {v.decided_by}")
            return 0
        if args.action == "rollback":
            base = pol.latest_number(store, name) if args.base is None else args.base
            v = pol.rollback(store, name, args.version, user, args.reason, base)
            print(f"{v.label} created: {v.reason}")
            return 0
        if args.action == "check-triggers":
            from core.slo.watch import check_rollback_triggers

            found = check_rollback_triggers(store, name, args.now, dry_run=args.dry_run)
            for f in found:
                what = ("would fire (dry run: nothing written)" if args.dry_run else
                        f"fired: v{f.result_version} " + ("restores the previous rules" if f.mode == "rollback"
                                                          else "proposes the rollback, waiting for approval"))
                print(f"v{f.version} {f.trigger} {what}: {f.summary()}")
            if not found:
                print("no trigger fired")
            return 0
        if args.action == "report":
            from core.policy import outcomes as oc

            o = oc.change_outcomes(store, name, args.now)
            acc = oc.prediction_accuracy(o)
            si, mape = acc["share_inside"], acc["mape_pct"]
            print(f"prediction accuracy: {'-' if si is None else f'{100 * si:.0f}%'} of actuals inside the predicted "
                  f"interval (n = {acc['n']}); MAPE {'-' if mape is None else f'{mape:.0f}%'} (n = {acc['n_mape']})")
            for r in o.itertuples(index=False):
                act = "-" if r.actual is None or r.actual != r.actual else f"{r.actual:.3g}"
                pred = "-" if r.predicted is None or r.predicted != r.predicted else f"{r.predicted:.3g}"
                print(f"  v{r.version} {r.rule} {r.series} {r.measure}: predicted {pred}, actual {act}: {r.verdict}")
            rep = oc.effectiveness_report(store, name, args.now)
            if args.csv:
                Path(args.csv).write_bytes(oc.report_csv(rep))
                print(f"wrote {len(rep)} row(s) to {args.csv}", file=sys.stderr)
            if args.html:
                Path(args.html).write_text(oc.report_html(rep, acc), encoding="utf-8")
                print(f"wrote the HTML report to {args.html}", file=sys.stderr)
            return 0
        if args.action == "verify-audit":
            from core.data.store.audit import check_integrity

            r = check_integrity(store)
            print(r.message)
            if r.anchor_path:
                when = f"last anchored entry {r.anchor_seq} at {r.anchor_time}" if r.anchor_seq else "no anchor yet"
                print(f"anchor: {r.anchor_path} ({when})")
            ok = r.ok
            return 0 if ok else 1
    return 2
