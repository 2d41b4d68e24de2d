"""Import the alert rules a team already runs: Prometheus rule files and Grafana alert rule exports.

:func:`import_rule_files` reads every file given (YAML or JSON text), detects or takes its format, and
combines them into one :class:`ImportResult` (tunable rules, carried rules, notes). Nothing is stored
here; :func:`core.policy.versions.import_rules` makes the result a policy version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from core.alerting.grafana import grafana_candidates, is_grafana
from core.alerting.prometheus.importer import Candidate, ImportResult, build_rules, prometheus_candidates
from core.errors import ValidationError

FORMATS = ("auto", "prometheus", "grafana")


def read_document(text: str, file: str) -> Any:
    """YAML (or JSON) text as a document; ValidationError names the file, line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        raise ValidationError(f"not valid YAML or JSON: {getattr(exc, 'problem', None) or exc}",
                              path=f"{file}: {where}") from exc


def detect_format(doc: Any) -> str:
    """``grafana`` or ``prometheus`` from a parsed document's shape."""
    return "grafana" if is_grafana(doc) else "prometheus"


def import_rule_files(files: Iterable[tuple[str, str]], fmt: str = "auto") -> ImportResult:
    """Read ``[(file name, text), ...]`` as one set of rules (see :mod:`core.alerting.prometheus.importer`).

    Parameters
    ----------
    files : iterable of (str, str)
        File name (for messages) and its text.
    fmt : {"auto", "prometheus", "grafana"}
        Format of every file; ``auto`` detects each from its shape.

    Raises
    ------
    ValidationError
        Unknown format, unreadable or malformed input (naming file, group, rule and field), or no file.
    """
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}; expected one of {list(FORMATS)}", path="format")
    cands: list[Candidate] = []
    notes: list[str] = []
    files = list(files)
    if not files:
        raise ValidationError("no rule file given", path="files")
    for name, text in files:
        doc = read_document(text, name)
        kind = detect_format(doc) if fmt == "auto" else fmt
        if kind == "grafana":
            c, n = grafana_candidates(doc, name)
            cands += c
            notes += n
        else:
            cands += prometheus_candidates(doc, name)
    res = build_rules(cands)
    res.notes[:0] = notes
    return res


def unmatched_notes(rules: Sequence[Any], series_keys: Iterable[str]) -> list[str]:
    """A note per rule that selects none of the stored series (it is kept and replays once such data
    arrives)."""
    keys = list(series_keys)
    return [f"{r.name}: matches no stored series yet (series {r.series!r}); kept, and replayed once that "
            "data is loaded" for r in rules if not r.matching(keys)]


__all__ = ["FORMATS", "ImportResult", "detect_format", "import_rule_files", "read_document", "unmatched_notes"]
