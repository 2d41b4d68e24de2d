"""Command line of the experiment checks: ``python -m core.experiment {aa,power,run} ...``.

Examples::

    python -m core.experiment aa --runs 1000 --peek daily --json     # A/A: sequential vs naive peeking
    python -m core.experiment power --runs 500 --effect 0.8 --json   # achieved vs planned power
    python -m core.experiment run --threshold-b 190 --days 40 --json # one simulated A/B test to a verdict

Without ``--series`` the checks run on a built-in synthetic seasonal series (28 days at one minute,
:func:`core.experiment.simulate.synthetic_history`); with ``--series KEY`` on that stored series
(database ``--db``, default ``$STUDIO_DB``) and its labelled incidents. Rule A alerts when the value
exceeds ``--threshold`` (default: the 99.5th percentile of the history's raw points) for ``--for``.
Exit status 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np
import pandas as pd

from core.alerting.rules import Rule, parse_duration
from core.errors import StudioError, ValidationError
from core.experiment.analyse import DEFAULT_DELAY_MARGIN_S, decide
from core.experiment.checks import PEEKS, aa_check, outcome_pool, power_check
from core.experiment.plan import STOPPING_RULES, plan_experiment, power_curve
from core.experiment.simulate import OUTCOMES, simulate, synthetic_history
from core.experiment.workflow import baseline, lower_is_better


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=None, help="database file (default $STUDIO_DB or data/studio.duckdb)")
    p.add_argument("--series", help="stored series key to bootstrap (default: a built-in synthetic series)")
    p.add_argument("--threshold", type=float, help="rule A: alert when value > this (default: p99.5 of history)")
    p.add_argument("--for", dest="for_", default="2m", help="rule A's pending period (default 2m)")
    p.add_argument("--metric", default="false_episodes", choices=[c for c in OUTCOMES if c != "incidents"],
                   help="primary per-day outcome (default false_episodes)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--split", type=float, default=0.5, help="share of days in arm B, 0.1-0.9 (default 0.5)")
    p.add_argument("--rate", type=float, default=0.5, help="injected incidents per day (default 0.5)")
    p.add_argument("--pool-days", type=int, default=120, help="simulated days in the outcome pool (default 120)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.experiment",
                                     description="simulated A/B tests of alert rules: checks and runs")
    sub = parser.add_subparsers(dest="command", required=True)
    aa = sub.add_parser("aa", help="A/A check: false-positive rate of the sequential test vs naive peeking")
    _common(aa)
    aa.add_argument("--runs", type=int, default=1000, help="simulated experiments (default 1000)")
    aa.add_argument("--peek", default="daily", choices=list(PEEKS), help="how often the tests look")
    aa.add_argument("--days", type=int, default=30, help="experiment length in days (default 30)")
    aa.add_argument("--effect", type=float, default=0.8,
                    help="MDE as Cohen's d: sets the mixture scale of the sequential test (default 0.8)")
    pw = sub.add_parser("power", help="achieved power of the planned test against the planned power")
    _common(pw)
    pw.add_argument("--runs", type=int, default=500, help="simulated experiments (default 500)")
    pw.add_argument("--effect", type=float, required=True, help="effect (and MDE) as Cohen's d, > 0")
    pw.add_argument("--power", type=float, default=0.8, help="target power (default 0.8)")
    pw.add_argument("--peek", default="daily", choices=list(PEEKS), help="how often the sequential test looks")
    run = sub.add_parser("run", help="plan and simulate one A/B test of rule B against rule A to a verdict")
    _common(run)
    run.add_argument("--threshold-b", type=float, required=True, help="rule B: alert when value > this")
    run.add_argument("--mde", type=float, default=-0.3,
                     help="minimum detectable effect as a relative change of the metric (default -0.3)")
    run.add_argument("--power", type=float, default=0.8, help="target power (default 0.8)")
    run.add_argument("--stopping", default="msprt", choices=STOPPING_RULES, help="stopping rule (default msprt)")
    run.add_argument("--days", type=int, help="days to simulate (default: the plan's duration, at most 60)")
    run.add_argument("--delay-margin", default=f"{DEFAULT_DELAY_MARGIN_S:g}s",
                     help="detection delay guardrail margin (default 60s)")
    return parser


def _history(args: argparse.Namespace) -> tuple[pd.Series, pd.DataFrame | None]:
    if not args.series:
        return synthetic_history(28, seed=args.seed), None
    from core.data.store import Store

    with Store(args.db, read_only=True) as st:
        pts = st.get_points(args.series)
        inc = st.list_incidents(args.series)
    if pts.empty:
        raise ValidationError(f"series {args.series!r} has no stored points", path="--series")
    return pd.Series(pts["value"].to_numpy(float), index=pd.DatetimeIndex(pts["ts"]), name=args.series), inc


def _rule(name: str, history: pd.Series, threshold: float | None, for_: str) -> Rule:
    thr = float(np.nanquantile(history.to_numpy(float), 0.995)) if threshold is None else threshold
    return Rule(name=name, series=str(history.name or "series"), comparator=">", warning=thr,
                for_s=parse_duration(for_, path="--for"))


def cmd_aa(args: argparse.Namespace) -> dict[str, Any]:
    hist, inc = _history(args)
    rule = _rule("A", hist, args.threshold, args.for_)
    pool = outcome_pool(hist, rule, days=args.pool_days, rate=args.rate, incidents=inc, seed=args.seed)
    y, mean, sd = baseline(pool, args.metric)
    plan = plan_experiment(mean, sd, mde_d=args.effect, alpha=args.alpha, split=args.split, stopping="msprt",
                           metric=args.metric, lower_is_better=lower_is_better(args.metric))
    res = aa_check(y, plan, runs=args.runs, units=args.days, peek=args.peek, seed=args.seed + 1)
    res.update(metric=args.metric, rule_a=rule.to_dict(), pool_days=args.pool_days, tau=plan.tau)
    return res


def cmd_power(args: argparse.Namespace) -> dict[str, Any]:
    hist, inc = _history(args)
    rule = _rule("A", hist, args.threshold, args.for_)
    pool = outcome_pool(hist, rule, days=args.pool_days, rate=args.rate, incidents=inc, seed=args.seed)
    y, mean, sd = baseline(pool, args.metric)
    out: dict[str, Any] = {"metric": args.metric, "effect_d": args.effect, "alpha": args.alpha,
                           "runs": args.runs}
    for stopping in STOPPING_RULES:
        plan = plan_experiment(mean, sd, mde_d=args.effect, alpha=args.alpha, power=args.power, split=args.split,
                               stopping=stopping, metric=args.metric,
                               lower_is_better=lower_is_better(args.metric))
        r = power_check(y, plan, runs=args.runs, peek=args.peek, seed=args.seed + 2)
        r.update(in_range=plan.in_range, note=plan.note)
        out[{"msprt": "sequential", "obf": "group_sequential", "fixed": "fixed_horizon"}[stopping]] = r
    return out


def cmd_run(args: argparse.Namespace) -> dict[str, Any]:
    hist, inc = _history(args)
    ra = _rule("A", hist, args.threshold, args.for_)
    rb = Rule(name="B", series=ra.series, comparator=">", warning=args.threshold_b, for_s=ra.for_s)
    pool = outcome_pool(hist, ra, days=args.pool_days, rate=args.rate, incidents=inc, seed=args.seed)
    _, mean, sd = baseline(pool, args.metric)
    plan = plan_experiment(mean, sd, mde_rel=args.mde, alpha=args.alpha, power=args.power, split=args.split,
                           stopping=args.stopping, metric=args.metric,
                           lower_is_better=lower_is_better(args.metric))
    days = args.days or min(plan.days, 60)
    sim = simulate(hist, ra, rb, days=days, split=args.split, rate=args.rate, incidents=inc, seed=args.seed + 3)
    dec = decide(plan, sim.outcomes, delay_margin_s=parse_duration(args.delay_margin, path="--delay-margin"))
    d = dec.to_dict()
    d.pop("path")
    return {"plan": plan.to_dict(), "days": days, "decision": d,
            "power_curve": power_curve(plan).iloc[::7].to_dict(orient="list")}


def _text(cmd: str, res: dict[str, Any]) -> str:
    if cmd == "aa":
        lines = [f"A/A check, {res['sequential']['runs']} runs of {res['units']} days, {res['peek']} looks, "
                 f"alpha {res['sequential']['alpha']}:"]
        for k in ("sequential", "group_sequential", "naive_peeking", "fixed_horizon"):
            r = res[k]
            lines.append(f"  {k:<16} false-positive rate {r['false_positive_rate']:.3f} "
                         f"(95% {r['interval'][0]:.3f}-{r['interval'][1]:.3f})")
        return "\n".join(lines)
    if cmd == "power":
        lines = [f"power at effect d={res['effect_d']}, {res['runs']} runs:"]
        for k in ("sequential", "group_sequential", "fixed_horizon"):
            r = res[k]
            lines.append(f"  {k:<16} {r['units']} units: planned {r['planned']:.2f}, achieved {r['achieved']:.3f} "
                         f"(95% {r['interval'][0]:.3f}-{r['interval'][1]:.3f}) {r['note']}")
        return "\n".join(lines)
    d = res["decision"]
    return (f"plan: {res['plan']['units']} units ({res['plan']['days']} days), stopping {res['plan']['stopping']}"
            f"{' - ' + res['plan']['note'] if res['plan']['note'] else ''}\n"
            f"simulated {res['days']} days: {d['action'].upper()} - {d['reason']}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "runs", 1) < 1:
            raise ValidationError("--runs must be >= 1", path="--runs")
        res = {"aa": cmd_aa, "power": cmd_power, "run": cmd_run}[args.command](args)
    except StudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(_finite(res), default=_json_default) if args.json else _text(args.command, res))
    return 0


def _finite(v: Any) -> Any:
    """NaN and infinities as null (strict JSON), recursively."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, (float, np.floating)) and not np.isfinite(v):
        return None
    return v


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


if __name__ == "__main__":
    sys.exit(main())
