"""Rule unit tests from replayed history: a ``promtool test rules`` file that pins a tuned policy.

:func:`build_rule_tests` takes the rules as exported (:func:`core.alerting.prometheus.prometheus_export`)
and the stored history of each rule's series, replays every rule over that history and writes
``promtool test rules`` cases (:func:`core.alerting.promtool.alert_test_case`) over short windows of the
stored values around the moments that matter:

* the start and the end of every replayed episode (with the pending period of ``for``, the hold of
  ``keep_firing_for`` and the recovery level's hysteresis inside the window);
* the first moment at which a *mutant* of the rule would have behaved differently over the same
  history: each level moved 10% up and 10% down, and the effective ``for`` doubled. These are the
  quiet moments near the level (where a lower level would fire) and the edges of episodes (where a
  higher level or a longer ``for`` would fire later or not at all).

In each window, the assertions are the evaluations just before and at each change of the replayed
state, and the first evaluation at which each mutant differs. The expected alerts are the studio's
replay of the window (proven equal to Prometheus by the differential test of
:mod:`core.alerting.promtool`), so the file passes against the exported rules as they are, and a rule
file whose level moved 10% either way or whose ``for`` doubled fails it wherever the stored history
can tell the difference (:attr:`RuleTests.mutants`).

Each window's input is what each evaluation sees (one value per evaluation interval, the newest
sample within the lookback; a missing one as a staleness marker), with runs of equal values written
in promtool's ``a+0xN`` form. Rules without stored data, rules the studio does not tune (carried
through), rules whose expression is not a plain selector of the stored series, and the ``NoData``
companions get no invented tests: the file says in a comment which rules are untested and why.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.alerting.prometheus.export import _alert_name, _num, prometheus_export
from core.alerting.prometheus.mapping import PromMapping, prom_duration
from core.alerting.promtool import PROM2_RANGE_SLACK_S, _dump, _fmt_value, alert_test_case
from core.alerting.replay import evaluation_grid, replay
from core.alerting.rules import as_rule
from core.errors import InsufficientDataError, ValidationError

#: Evaluations of context kept before a moment that matters, beyond ``for`` and ``keep_firing_for``.
MARGIN_EVALS = 3
#: Longest window (evaluations) kept around a whole episode; a longer episode gets a window per edge.
MAX_WINDOW_EVALS = 40
#: Episodes per rule given a window of their own (spread over the history); the moments where a mutant
#: would differ always get one.
EPISODES_PER_RULE = 3
#: At most this many windows per mutant (the first moments it differs at).
WINDOWS_PER_MUTANT = 2


@dataclass(frozen=True)
class Mutant:
    """A changed rule the tests must catch: ``kind`` is ``level+10%``, ``level-10%`` or ``for x2``."""

    rule: str
    alert: str
    kind: str
    severity: str | None
    telling: bool          # the stored history can tell it apart from the rule (its replay differs)
    pinned: bool           # an assertion of the file expects what the rule does where the mutant differs


@dataclass
class RuleTests:
    """A ``promtool test rules`` document for an exported policy, with what it pins.

    Attributes
    ----------
    text : str
        The test file (YAML with a header comment); ``rule_files`` names the rules file by the
        relative name given to :func:`build_rule_tests`.
    untested : dict
        Rule or alert name -> why it has no tests.
    fired : dict
        Alert name -> (has a firing assertion, has a quiet assertion), for alerts that fired on the history.
    mutants : list of Mutant
    """

    text: str
    untested: dict[str, str] = field(default_factory=dict)
    fired: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    mutants: list[Mutant] = field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        return len(self.text.encode("utf-8"))


# ------------------------------------------------------------------------------ input notation
def compress_values(values: np.ndarray) -> str:
    """Values in promtool notation, runs of equal values as ``a+0xN`` (exact), NaN as ``stale``."""
    out: list[str] = []
    i, n = 0, values.size
    while i < n:
        v = float(values[i])
        if math.isnan(v):
            out.append("stale")
            i += 1
            continue
        j = i + 1
        while j < n and float(values[j]) == v:
            j += 1
        run = j - i
        tok = _fmt_value(v)
        out.append(f"{tok}+0x{run - 1}" if run > 2 else " ".join([tok] * run))
        i = j
    return " ".join(out)


def _plain_series(selector: str) -> str | None:
    """The series a plain selector (metric name and ``=`` matchers only) selects, else None."""
    import promql_parser

    try:
        node = promql_parser.parse(selector)
    except ValueError:
        return None
    if not isinstance(node, promql_parser.VectorSelector) or not node.name:
        return None
    labels = []
    for m in node.matchers.matchers:
        if str(m.op) not in ("=", "MatchOp.Equal"):
            return None
        if m.name != "__name__":
            labels.append((m.name, m.value))
    if not labels:
        return node.name
    return node.name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels)) + "}"


# ------------------------------------------------------------------------------ mutants
def _mutated(r: Any, **changes: Any) -> Any:
    """A copy of rule ``r`` with ``changes``, not validated (a mutant may break warning < critical)."""
    out = copy.copy(r)
    for k, v in changes.items():
        object.__setattr__(out, k, v)
    return out


def _mutants(r: Any, iv: float) -> list[tuple[str, str | None, Any]]:
    out: list[tuple[str, str | None, Any]] = []
    for lvl, thr in r.triggers().items():
        for kind, f in (("level+10%", 1.1), ("level-10%", 0.9)):
            new = thr * f if thr != 0 else (0.1 if f > 1 else -0.1)
            out.append((kind, lvl, _mutated(r, **{lvl: new})))
    for_eff = float(r.for_s) + (r.consecutive - 1) * iv
    if for_eff > 0:
        out.append(("for x2", None, _mutated(r, for_s=float(r.for_s) + for_eff)))
    return out


def _state(rep: Any, levels: Sequence[str]) -> np.ndarray:
    """Firing state per evaluation as a small int (bit per level), for comparing replays."""
    st = np.zeros(rep.ts_ns.size, dtype=np.int64)
    for b, lvl in enumerate(levels):
        st |= rep.firing[lvl].astype(np.int64) << b
    return st


# ------------------------------------------------------------------------------ builder
def _window_state(rule: Any, vals: pd.Series, key: str, iv: float, lookback_s: float, major: int) -> np.ndarray:
    for_eff = float(rule.for_s) + (rule.consecutive - 1) * iv
    lb = max(lookback_s, for_eff) + PROM2_RANGE_SLACK_S if major < 3 else lookback_s
    rep = replay(rule, vals.rename(key), series=key, resolution_s=iv, lookback_s=lb)
    return _state(rep, list(rule.triggers()))


def build_rule_tests(rules: Iterable[Any], points: Mapping[str, pd.Series], mapping: PromMapping | None = None,
                     *, rules_file: str = "alerts.rules.yml", policy: str = "default", version: int | None = None,
                     carried: Iterable[Mapping[str, Any]] = (), audit_head: str | None = None,
                     prom_major: int = 2) -> RuleTests:
    """A ``promtool test rules`` file pinning the exported rules to their replay on stored history.

    Parameters
    ----------
    rules : iterable of Rule or mapping
        The tunable rules, exported as :func:`prometheus_export` writes them with ``mapping``.
    points : mapping
        Series key -> stored values (indexed by UTC timestamps, NaN = missing); a rule whose series
        is not here gets no tests (said in the file).
    rules_file : str
        Name of the rules file relative to the test file (``rule_files:``).
    carried : iterable
        Rules carried through untuned (listed as untested).
    audit_head : str, optional
        Head of the audit trail the export was taken at (written in the header when given).
    prom_major : int
        Major version of the ``promtool`` the tests target; below 3, range windows are replayed with
        Prometheus 2's closed left boundary (:data:`PROM2_RANGE_SLACK_S`). Tests built for 2.x pass
        on 2.x; the boundary only matters for ``nodata``/``keep_last`` windows.

    Returns
    -------
    RuleTests
    """
    m = mapping or PromMapping()
    objs = sorted((as_rule(x) for x in rules), key=lambda x: x.name)
    export = prometheus_export(objs, m, policy=policy, version=version, carried=carried)
    ann: dict[tuple[str, str], dict[str, Any]] = {}
    for grp in export.doc["groups"]:
        for pr in grp["rules"]:
            if "alert" in pr:
                ann[(pr["alert"], str((pr.get("labels") or {}).get("severity", "")))] = dict(
                    pr.get("annotations") or {})
    untested: dict[str, str] = {}
    for c in carried:
        rule = dict(c.get("rule") or {})
        nm = rule.get("alert") or rule.get("record") or rule.get("title") or "a carried rule"
        untested[str(nm)] = "carried through unchanged (not tunable); the studio has no replay of it"
    tests: list[dict[str, Any]] = []
    fired: dict[str, tuple[bool, bool]] = {}
    mutants: list[Mutant] = []
    spans: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for r in objs:
        iv = float(r.interval_s) if r.interval_s else m.interval_s
        alert = _alert_name(r.name)
        if r.promql:
            untested[r.name] = "its expression is an imported PromQL expression, not a stored series"
            continue
        mapped = m.selector(r.series, r.matchers) != PromMapping().selector(r.series, r.matchers)  # edited
        cands = [r.series] if r.series in points else sorted(k for k in points if r.matches(k))
        cands = [k for k in cands if points[k].dropna().size >= 2]
        if not cands:
            untested[r.name] = f"no stored history of {r.series}"
            continue
        if mapped and _plain_series(m.selector(r.series, r.matchers)) is None:
            untested[r.name] = "its mapped expression is not a plain selector of one series"
            continue
        rr = _mutated(r, interval_s=iv)
        best = None
        for k in cands:  # a glob: the matching series with the most replayed episodes
            try:
                rep = replay(rr, points[k].rename(k), series=k, lookback_s=m.lookback_s)
            except (InsufficientDataError, ValidationError) as exc:
                untested[r.name] = f"its history cannot be replayed: {exc}"
                continue
            score = len(_episodes(_state(rep, list(r.triggers()))))
            if best is None or score > best[0]:
                best = (score, k, rep)
        if best is None:
            continue
        untested.pop(r.name, None)
        _, skey, full = best
        stored = points[skey]
        key = _plain_series(m.selector(r.series, r.matchers)) if mapped else skey
        if r.missing == "nodata":
            untested[f"{alert}NoData"] = "no-data alerts get no tests (a window of stored data is not a gap)"
        ts = pd.to_datetime(full.ts_ns, utc=True)
        src = stored.sort_index()
        tg, x, _ = evaluation_grid(src.index.as_unit("ns").asi8, src.to_numpy(float), iv)
        if tg.size != full.ts_ns.size:
            raise AssertionError("evaluation grid differs from the replay's")
        levels = list(r.triggers())
        base = _state(full, levels)
        run_need = max(1, int(round((float(r.for_s) + (r.consecutive - 1) * iv) / iv)) + 1)
        keep = int(round(float(r.keep_firing_for_s) / iv))
        pre = run_need + MARGIN_EVALS
        post = keep + MARGIN_EVALS + 1
        n = ts.size
        # moments that matter on the full history: episode edges, then first differences of mutants
        wins: list[tuple[int, int, str]] = []
        eps = _episodes(base)
        chosen = sorted({int(i) for i in np.linspace(0, len(eps) - 1, min(len(eps), EPISODES_PER_RULE))}) if eps else []
        for s, e in (eps[i] for i in chosen):
            what = f"episode {ts[s]:%Y-%m-%d %H:%M}-{ts[min(e, n - 1)]:%H:%M} UTC"
            if e - s + pre + post <= MAX_WINDOW_EVALS:
                wins.append((s - pre - keep, e + post, what))
            else:
                wins.append((s - pre - keep, s + post, what + " (start)"))
                wins.append((e - pre - keep - run_need, e + post, what + " (end)"))
        muts = _mutants(r, iv)
        mut_full = []
        for kind, lvl, mr in muts:
            mrep = replay(_mutated(mr, interval_s=iv), stored.rename(skey), series=skey,
                          lookback_s=m.lookback_s)
            diff = np.flatnonzero(_state(mrep, levels) != base)
            mut_full.append(diff)
            firsts = _run_starts(diff)[:WINDOWS_PER_MUTANT]
            for d in firsts:
                wins.append((d - pre - keep - run_need, d + post, f"where {kind} of {lvl or 'for'} would differ, "
                                                                 f"{ts[d]:%Y-%m-%d %H:%M} UTC"))
        merged = _merge(wins, n, x)
        if not merged:
            untested[r.name] = "no episode or telling moment in the stored history"
            continue
        spans.append((ts[0], ts[-1]))
        # all windows in one input series, apart by enough staleness markers that nothing carries over
        # (pending, keep_firing_for, ALERTS, a keep_last value): one promtool test group per rule. A stale
        # evaluation is "condition false" (pending restarts, ALERTS ends); NoData alerts are not asserted
        for_eff = float(r.for_s) + (r.consecutive - 1) * iv
        carry_s = max(m.lookback_s, for_eff) if r.missing == "keep_last" else 0.0
        sep = int(math.ceil((carry_s + float(r.keep_firing_for_s)) / iv)) + 2
        parts, segs, pos = [], [], 0
        for a, b, what in merged:
            if parts:
                parts.append(np.full(sep, np.nan))
                pos += sep
            parts.append(x[a:b])
            segs.append((pos, pos + b - a, f"{what} (stored {ts[a]:%Y-%m-%d %H:%M}-{ts[b - 1]:%H:%M} UTC)"))
            pos += b - a
        allx = np.concatenate(parts)
        vals = pd.Series(allx, index=pd.date_range(ts[merged[0][0]], periods=allx.size,
                                                   freq=pd.Timedelta(seconds=iv)))
        case = alert_test_case(r, vals, m, name="w", series=key, prom_major=prom_major)
        st = _window_state(r, vals, key, iv, m.lookback_s, prom_major)
        pick = set((np.flatnonzero(np.diff(st) != 0) + 1).tolist())
        pick |= {k - 1 for k in pick}
        pinned = [False] * len(muts)
        for i, (_kind, _lvl, mr) in enumerate(muts):
            d = np.flatnonzero(_window_state(mr, vals, key, iv, m.lookback_s, prom_major) != st)
            for lo, hi, _ in segs:
                dd = d[(d >= lo) & (d < hi)]
                if dd.size:
                    pick.add(int(dd[0]))
                    pinned[i] = True
        times = {prom_duration(k * iv) for k in pick if 0 <= k < st.size}
        entries = []
        for t in case.test_doc["tests"][0]["alert_rule_test"]:
            if t["alertname"] != alert or t["eval_time"] not in times:
                continue
            for e in t["exp_alerts"]:
                e["exp_annotations"] = ann[(alert, str(e["exp_labels"].get("severity", "")))]
            entries.append(t)
        entries.sort(key=lambda t: _secs(t["eval_time"]))
        if not entries:
            untested[r.name] = "no evaluation in the stored history tells its levels or for apart"
            continue
        if eps:
            fired[alert] = (any(t["exp_alerts"] for t in entries), any(not t["exp_alerts"] for t in entries))
        for i, (kind, lvl, _) in enumerate(muts):
            mutants.append(Mutant(r.name, alert, kind, lvl, bool(mut_full[i].size), pinned[i]))
        notes = [f"{alert} ({r.name}) on stored {skey}"
                 + (f" (of {len(cands)} matching series, the one with the most episodes)" if len(cands) > 1 else "")
                 + f": {len(segs)} windows, each an episode or a moment a mutant would differ at:"]
        notes += [f"  {prom_duration(lo * iv)}-{prom_duration((hi - 1) * iv)}: {what}" for lo, hi, what in segs]
        tests.append((notes, {"name": f"{alert}: replayed history of {key}", "interval": prom_duration(iv),
                              "input_series": [{"series": key, "values": compress_values(allx)}],
                              "alert_rule_test": entries}))
    head = _header(policy, version, audit_head, spans, untested, rules_file)
    body = _dump({"rule_files": [rules_file], "evaluation_interval": prom_duration(m.interval_s)})
    if not tests:
        body += "tests: []\n"
    else:
        body += "tests:\n" + "".join("".join(f"# {ln}\n" for ln in notes) + _dump([t]) for notes, t in tests)
    return RuleTests(head + body, untested, fired, mutants)


def _secs(d: str) -> float:
    from core.alerting.rules import parse_duration

    return parse_duration(d, path="eval_time")


def _episodes(state: np.ndarray) -> list[tuple[int, int]]:
    on = np.concatenate([[0], (state != 0).astype(np.int8), [0]])
    d = np.diff(on)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def _run_starts(idx: np.ndarray) -> list[int]:
    if idx.size == 0:
        return []
    keep = np.concatenate([[True], np.diff(idx) > 1])
    return idx[keep].tolist()


def _merge(wins: list[tuple[int, int, str]], n: int, x: np.ndarray) -> list[tuple[int, int, str]]:
    """Clip windows to the history, start each on a sample (walking back), merge overlapping ones."""
    out: list[list[Any]] = []
    for a, b, what in sorted(((max(0, a), min(n, b), w) for a, b, w in wins)):
        while a > 0 and not np.isfinite(x[a]):
            a -= 1
        while a < b and not np.isfinite(x[a]):
            a += 1
        if b - a < 2:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
            if what not in out[-1][2]:
                out[-1][2] += "; " + what
        else:
            out.append([a, b, what])
    return [(a, b, w) for a, b, w in out]


def _header(policy: str, version: int | None, audit_head: str | None,
            spans: list[tuple[pd.Timestamp, pd.Timestamp]], untested: Mapping[str, str], rules_file: str) -> str:
    lines = [f"promtool unit tests for threshold studio policy {policy!r}"
             + (f" v{version}" if version is not None else "") + f" ({rules_file}).",
             "They pin the tuning: expected alerts are the studio's replay of the stored history around each",
             "episode's start and end and where a level moved 10% either way or a doubled `for` would behave",
             "differently. Run in CI with: promtool test rules <this file>"]
    if audit_head:
        lines.append(f"Audit head: {audit_head}")
    if spans:
        lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
        lines.append(f"Data span: {lo:%Y-%m-%d %H:%M} to {hi:%Y-%m-%d %H:%M} UTC")
    else:
        lines.append("Data span: none (no rule has stored history to test against)")
    for k, why in sorted(untested.items()):
        lines.append(f"Untested: {k}: {why}")
    return "".join(f"# {ln}\n" for ln in lines)


def mutant_rule_files(rules_text: str, tests: RuleTests, rules: Iterable[Any], mapping: PromMapping | None = None,
                      *, only_alert: bool = False) -> list[tuple[Mutant, str, str]]:
    """Rule files with one mutation each, from the exported ``rules_text``, with the test file to run.

    A level mutant changes the level's number in that alert's expression (the first comparison; a
    recovery level is left alone); a ``for x2`` mutant doubles ``for`` on every severity of the alert.
    With ``only_alert``, each rules file keeps only the mutated alert and the test file only its test
    group (the groups of other alerts assert nothing about it): the same verdict, far fewer
    evaluations for promtool. Returns ``(mutant, rules text, test text)``; the test file's
    ``rule_files`` names ``rules.yml``.
    """
    import yaml

    m = mapping or PromMapping()
    by_name = {as_rule(x).name: as_rule(x) for x in rules}
    tdoc = yaml.safe_load(tests.text)
    out = []
    for mu in tests.mutants:
        r = by_name[mu.rule]
        doc = yaml.safe_load(rules_text)
        for g in doc["groups"]:
            if only_alert:
                g["rules"] = [pr for pr in g["rules"] if pr.get("alert") == mu.alert]
            for pr in g["rules"]:
                if pr.get("alert") != mu.alert:
                    continue
                sev = str((pr.get("labels") or {}).get("severity", ""))
                if mu.severity is not None and sev == r.label_for(mu.severity):
                    thr = r.triggers()[mu.severity]
                    f = 1.1 if mu.kind == "level+10%" else 0.9
                    new = thr * f if thr != 0 else (0.1 if f > 1 else -0.1)
                    pr["expr"] = pr["expr"].replace(f"{r.comparator} {_num(thr)}", f"{r.comparator} {_num(new)}", 1)
                elif mu.severity is None:
                    iv = float(r.interval_s) if r.interval_s else m.interval_s
                    pr["for"] = prom_duration(2 * (float(r.for_s) + (r.consecutive - 1) * iv))
        doc["groups"] = [g for g in doc["groups"] if g["rules"]]
        t = dict(tdoc, rule_files=["rules.yml"])
        if only_alert:
            t["tests"] = [g for g in tdoc["tests"] or []
                          if any(e["alertname"] == mu.alert for e in g["alert_rule_test"])]
        out.append((mu, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000), _dump(t)))
    return out


def run_promtool_tests(files: Sequence[tuple[str, str]], *, workers: int = 2,
                       timeout_s: float = 300.0) -> list[tuple[bool, str]]:
    """Run ``promtool test rules`` on each ``(rules text, test text)`` pair (test file naming
    ``rules.yml``), ``workers`` at a time; returns ``(passed, promtool's output)`` per pair."""
    import subprocess
    import tempfile
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from core.alerting.promtool import _need_binary

    exe = _need_binary()

    def one(pair: tuple[str, str]) -> tuple[bool, str]:
        with tempfile.TemporaryDirectory(prefix="studio-ruletests-") as d:
            (Path(d) / "rules.yml").write_text(pair[0], encoding="utf-8")
            (Path(d) / "rules.test.yml").write_text(pair[1], encoding="utf-8")
            o = subprocess.run([exe, "test", "rules", "rules.test.yml"], cwd=d, capture_output=True, text=True,
                               check=False, timeout=timeout_s)
        return o.returncode == 0, o.stdout + o.stderr

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, files))


__all__ = ["MARGIN_EVALS", "MAX_WINDOW_EVALS", "Mutant", "RuleTests", "build_rule_tests", "compress_values",
           "mutant_rule_files", "run_promtool_tests"]
