"""Run the real Prometheus engine on studio exports: ``promtool check rules`` and ``promtool test rules``.

:func:`check_rules` validates a rules file the way Prometheus loads it. :func:`alert_test_case` turns
one rule and one series into a ``promtool test rules`` unit test whose expected firing alerts, at every
evaluation, are the studio's replay (:func:`core.alerting.replay.replay`) of that rule over that
series; :func:`run_cases` runs many such tests in one ``promtool`` invocation (one test file per case,
each with its own rules file) and returns, per case, promtool's report of the first differences.

The test input is written the way Prometheus would have scraped the series: one sample per
evaluation interval, and a missing value (NaN) as a staleness marker (``stale``), which is what
Prometheus records when a target stops exposing a series or a scrape fails. Two differences are by
design and are not hidden by the harness:

* A gap in a CSV that is *not* a staleness marker (a row simply absent) is, for Prometheus, still the
  previous sample for up to the query lookback (5m); the replay treats it as missing at once. Cases
  are therefore written with ``stale`` markers, never with ``_`` (no sample), so that they compare
  the same thing; the export warns when samples are further apart than the lookback.
* Range windows (``last_over_time``/``absent_over_time`` for ``keep_last``/``nodata``): the replay
  follows Prometheus 3, whose ranges are open on the left ``(t - w, t]``. Prometheus 2.x ranges are
  closed ``[t - w, t]``, so a sample exactly ``w`` old still counts. Against a 2.x ``promtool`` the
  harness replays with the window widened by 1 ms (:data:`PROM2_RANGE_SLACK_S`), which on a grid of
  whole seconds is exactly the 2.x boundary.
* Before the first sample of the history, the replay counts a ``nodata`` gap from the first
  evaluation (the stored history is not the start of the series); Prometheus, with no sample at all,
  fires the ``NoData`` alert at once. Cases start with a sample.

The expected alert labels are the series' labels overwritten by the alert's labels; a ``<Name>NoData``
alert carries the selector's equality matchers (what ``absent_over_time`` returns) and its labels.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from core.alerting.prometheus.export import prometheus_export
from core.alerting.prometheus.mapping import PromMapping, prom_duration
from core.alerting.replay import replay
from core.alerting.rules import as_rule
from core.data.frame import parse_key
from core.errors import StudioError, ValidationError

#: Seconds added to the replay's range window against Prometheus 2.x (closed-left ranges); see module doc.
PROM2_RANGE_SLACK_S = 0.001
_NS = 1_000_000_000


# ---------------------------------------------------------------------------------------- the binary
def promtool_binary() -> str | None:
    """Path of ``promtool`` (Debian's ``prometheus`` package), or None when it is not installed."""
    return shutil.which("promtool")


def _need_binary() -> str:
    exe = promtool_binary()
    if exe is None:
        raise StudioError("promtool is not installed; install Debian's 'prometheus' package "
                          "(apt-get install prometheus)")
    return exe


@lru_cache(maxsize=1)
def promtool_version() -> tuple[int, int, int]:
    """``(major, minor, patch)`` of the installed ``promtool``."""
    out = subprocess.run([_need_binary(), "--version"], capture_output=True, text=True, check=False)
    m = re.search(r"version (\d+)\.(\d+)\.(\d+)", out.stdout + out.stderr)
    if not m:
        raise StudioError(f"cannot read the promtool version from {out.stdout[:200]!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


@dataclass(frozen=True)
class CheckResult:
    """Outcome of ``promtool check rules``: ``ok`` and promtool's own report."""

    ok: bool
    output: str


def check_rules(text: str, *, name: str = "rules.yml") -> CheckResult:
    """Validate a Prometheus rules file (YAML text) with ``promtool check rules``."""
    exe = _need_binary()
    with tempfile.TemporaryDirectory(prefix="studio-promtool-") as d:
        p = Path(d) / name
        p.write_text(text, encoding="utf-8")
        out = subprocess.run([exe, "check", "rules", str(p)], capture_output=True, text=True, check=False)
    return CheckResult(out.returncode == 0, (out.stdout + out.stderr).replace(d, "."))


# ---------------------------------------------------------------------------------------- test cases
@dataclass
class PromtoolCase:
    """One ``promtool test rules`` unit test: a rules file and a test file that loads it.

    Attributes
    ----------
    name : str
        Case name (file stem; unique within one :func:`run_cases` call).
    rules_doc : dict
        The studio's Prometheus export of the rule (``{"groups": [...]}``).
    test_doc : dict
        The unit test: input series and, at every evaluation, the alerts the replay has firing.
    expected : dict
        Alert name -> boolean firing state per evaluation (what the test expects), for messages.
    """

    name: str
    rules_doc: dict[str, Any]
    test_doc: dict[str, Any]
    expected: dict[str, np.ndarray] = field(default_factory=dict)


def _fmt_value(v: float) -> str:
    if math.isnan(v):
        return "stale"
    if math.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    return repr(float(v))


def series_values(values: np.ndarray) -> str:
    """Values in ``promtool`` notation, one per interval: a NaN (missing) is a staleness marker."""
    return " ".join(_fmt_value(float(v)) for v in values)


def _selector_equalities(selector: str) -> dict[str, str]:
    """Labels ``absent_over_time`` gives: the equality matchers of a plain selector (else none)."""
    import promql_parser

    try:
        node = promql_parser.parse(selector)
    except ValueError:
        return {}
    if not isinstance(node, promql_parser.VectorSelector):
        return {}
    out = {}
    for m in node.matchers.matchers:
        if str(m.op) in ("=", "MatchOp.Equal") and m.name != "__name__":
            out[m.name] = m.value
    return out


def alert_test_case(rule: Any, values: pd.Series, mapping: PromMapping | None = None, *, name: str = "case",
                    series: str | None = None, prom_major: int | None = None) -> PromtoolCase:
    """A ``promtool test rules`` case expecting, at every evaluation, what the studio's replay says.

    Parameters
    ----------
    rule : Rule or mapping
        The studio rule; exported with :func:`prometheus_export` and ``mapping``.
    values : Series
        One value per evaluation interval, indexed by UTC timestamps on a regular grid whose step is
        the rule's evaluation interval (its ``interval`` or the mapping's); NaN is a scrape gap,
        written as a staleness marker.
    series : str, optional
        The series key (PromQL notation ``name{label="value"}``); default ``values.name``.
    prom_major : int, optional
        Major version of the ``promtool`` the case will run on (default: the installed one); below 3
        the replay's range window is widened by :data:`PROM2_RANGE_SLACK_S` (closed-left ranges).

    Raises :class:`ValidationError` when the series is not on the evaluation grid.
    """
    r = as_rule(rule)
    m = mapping or PromMapping()
    key = series or (str(values.name) if values.name is not None else r.series)
    iv = float(r.interval_s) if r.interval_s else m.interval_s
    idx = values.index
    if not isinstance(idx, pd.DatetimeIndex) or len(idx) < 2:
        raise ValidationError("values must be indexed by at least 2 UTC timestamps", path="values.index")
    step = np.diff(idx.as_unit("ns").asi8)
    if (step != int(round(iv * _NS))).any():
        raise ValidationError(f"values must be one per evaluation interval ({prom_duration(iv)}) with no "
                              "missing rows (a gap is a NaN value)", path="values.index")
    if not np.isfinite(values.iloc[0]):
        raise ValidationError("the first value must be a sample: before it the replay and Prometheus "
                              "count a nodata gap differently (see the module docstring)", path="values")
    major = promtool_version()[0] if prom_major is None else prom_major
    for_eff = float(r.for_s) + (r.consecutive - 1) * iv
    window = max(m.lookback_s, for_eff)
    lookback_s = window + PROM2_RANGE_SLACK_S if major < 3 else m.lookback_s
    rep = replay(r, values.rename(key), series=key, resolution_s=iv, lookback_s=lookback_s)
    export = prometheus_export([r], m, policy="case")
    doc = export.doc
    n = rep.ts_ns.size
    nodata = np.zeros(n, dtype=bool)
    for _, ep in rep.episodes[rep.episodes["severity"] == "nodata"].iterrows():
        s = int(np.searchsorted(rep.ts_ns, ep["start"].value))
        e = n if ep["open"] else int(np.searchsorted(rep.ts_ns, ep["end"].value))
        nodata[s:e] = True
    _, series_labels = parse_key(key)
    equalities = _selector_equalities(r.promql or m.selector(r.series, r.matchers))
    by_alert: dict[str, list[tuple[np.ndarray, dict[str, str], dict[str, str]]]] = {}
    for grp in doc["groups"]:
        for pr in grp["rules"]:
            labels = dict(pr.get("labels") or {})
            ann = dict(pr.get("annotations") or {})
            if pr["alert"].endswith("NoData") and pr["expr"].startswith("absent_over_time("):
                mask, exp_labels = nodata, {**equalities, **labels}
            else:
                lvl = next(lv for lv in r.triggers() if r.label_for(lv) == labels.get("severity"))
                mask, exp_labels = rep.firing[lvl], {**series_labels, **labels}
            by_alert.setdefault(pr["alert"], []).append((mask, exp_labels, ann))
    tests = []
    expected = {}
    for alert, parts in by_alert.items():
        expected[alert] = np.logical_or.reduce([p[0] for p in parts])
        for k in range(n):
            exp = [{"exp_labels": lab, "exp_annotations": ann} for mask, lab, ann in parts if mask[k]]
            tests.append({"eval_time": prom_duration(k * iv), "alertname": alert, "exp_alerts": exp})
    test_doc = {
        "rule_files": [f"{name}.rules.yml"],
        "evaluation_interval": prom_duration(iv),
        "tests": [{"name": name, "interval": prom_duration(iv),
                   "input_series": [{"series": key, "values": series_values(values.to_numpy(float))}],
                   "alert_rule_test": tests}],
    }
    return PromtoolCase(name, doc, test_doc, expected)


class _NoAliases(yaml.SafeDumper):
    """Writes a repeated mapping out again instead of as a YAML anchor and alias (readable test files)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=1000)


def write_case(case: PromtoolCase, directory: str | Path) -> Path:
    """Write a case's rules and test files into ``directory``; returns the test file's path."""
    d = Path(directory)
    (d / f"{case.name}.rules.yml").write_text(_dump(case.rules_doc), encoding="utf-8")
    test = d / f"{case.name}.test.yml"
    test.write_text(_dump(case.test_doc), encoding="utf-8")
    return test


def _split_report(output: str) -> dict[str, str]:
    """promtool's output per test file (``Unit Testing:  <file>`` sections)."""
    out: dict[str, str] = {}
    for part in re.split(r"^Unit Testing:\s+", output, flags=re.M)[1:]:
        head, _, body = part.partition("\n")
        out[Path(head.strip()).name] = body
    return out


def run_cases(cases: Sequence[PromtoolCase], *, batch: int = 200, workers: int = 2,
              timeout_s: float = 600.0) -> dict[str, str | None]:
    """Run cases with ``promtool test rules``: at most ``batch`` test files per invocation, up to
    ``workers`` invocations at a time.

    Returns
    -------
    dict
        Case name -> None when Prometheus fired exactly the alerts the replay expected at every
        evaluation, else promtool's report of the differences (evaluation time, expected, got).
    """
    from concurrent.futures import ThreadPoolExecutor

    exe = _need_binary()
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise ValidationError("case names must be unique", path="cases.name")
    size = max(1, min(batch, -(-len(cases) // max(1, workers))))
    result: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory(prefix="studio-promtool-") as d:
        chunks = [list(cases[i:i + size]) for i in range(0, len(cases), size)]
        files = [[write_case(c, d) for c in chunk] for chunk in chunks]

        def run(paths: list[Path]) -> subprocess.CompletedProcess:
            return subprocess.run([exe, "test", "rules", *[f.name for f in paths]], cwd=d,
                                  capture_output=True, text=True, check=False, timeout=timeout_s)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            outs = list(pool.map(run, files))
        for chunk, paths, out in zip(chunks, files, outs, strict=True):
            report = _split_report(out.stdout + out.stderr)
            for c, f in zip(chunk, paths, strict=True):
                body = report.get(f.name)
                if body is None:
                    result[c.name] = f"promtool printed nothing for {f.name}:\n{out.stdout}{out.stderr}"
                elif "FAILED" in body or "error" in body.lower():
                    result[c.name] = body.strip()
                else:
                    result[c.name] = None
    return result


def describe_case(case: PromtoolCase) -> str:
    """The case's series, rules and expected firing timeline as text (for a failing test's message)."""
    inp = case.test_doc["tests"][0]["input_series"][0]
    lines = [f"case {case.name}", f"series {inp['series']}: {inp['values']}", "rules:", _dump(case.rules_doc)]
    for alert, mask in case.expected.items():
        lines.append(f"expected {alert} firing at: " + "".join("F" if x else "." for x in mask))
    return "\n".join(lines)


__all__ = ["PROM2_RANGE_SLACK_S", "CheckResult", "PromtoolCase", "alert_test_case", "check_rules",
           "describe_case", "promtool_binary", "promtool_version", "run_cases", "series_values", "write_case"]
