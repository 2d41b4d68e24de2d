"""How studio series map to PromQL (:class:`PromMapping`), and durations as Prometheus writes them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from core.alerting.rules import format_duration, parse_duration
from core.data.frame import parse_key
from core.errors import ValidationError

PROM_DURATION = re.compile(r"^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?$")


# ---------------------------------------------------------------------------------------- durations
# Durations are read and written by core.rules (one parser for Rule.from_dict, YAML import and export).
def prom_duration(seconds: float) -> str:
    """Seconds as a Prometheus duration (``for:``, ``interval:``, range windows), via
    :func:`core.rules.format_duration`: 300 -> ``5m``, 604800 -> ``7d``, 61.5 -> ``1m1s500ms``.

    Prometheus accepts only whole numbers of each unit (``1.5s`` is an error), so the value is rounded
    to whole milliseconds (Prometheus' resolution) and a fraction of a second is written in ``ms``.
    """
    ms = int(round(float(seconds) * 1000))
    if ms < 0:
        raise ValidationError(f"cannot write {seconds!r} as a Prometheus duration; expected seconds >= 0",
                              path="duration")
    whole, rest = divmod(ms, 1000)
    text = format_duration(whole) if whole else ""
    if rest:
        text += f"{rest}ms"
    text = text or "0s"
    if not PROM_DURATION.match(text):  # format_duration changed its style: fail loudly, not in Prometheus
        raise ValidationError(f"{text!r} (from {seconds!r} s) is not a Prometheus duration", path="duration")
    return text



# ---------------------------------------------------------------------------------------- Prometheus
_RE_SPECIAL = set("\\.^$*+?()[]{}|")


def _glob_to_regex(glob: str) -> str:
    """RE2 regex (as Prometheus anchors it) for a shell glob: ``*`` any run, ``?`` one character."""
    out = []
    for ch in glob:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch in _RE_SPECIAL:
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def prom_quote(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# A plain PromQL vector selector: ``name``, ``name{matchers}`` or ``{matchers}`` (at least one matcher).
# Only such a selector may take a range (``sel[10m]``); anything else needs a subquery ``(expr)[10m:1m]``.
_PROM_NAME = r"[A-Za-z_:][A-Za-z0-9_:]*"
_PROM_STR = r'"(?:[^"\\]|\\.)*"'
_PROM_MATCHER = rf"\s*[A-Za-z_][A-Za-z0-9_]*\s*(?:=~|!~|!=|=)\s*{_PROM_STR}\s*"
_PROM_MATCHERS = rf"{_PROM_MATCHER}(?:,{_PROM_MATCHER})*,?\s*"
VECTOR_SELECTOR = re.compile(rf"\s*(?:{_PROM_NAME}\s*(?:\{{\s*(?:{_PROM_MATCHERS})?\}})?|\{{{_PROM_MATCHERS}\}})\s*")
_PROM_KEYWORDS = re.compile(r"\b(?:and|or|unless|bool)\b")


def is_vector_selector(text: str) -> bool:
    """Whether ``text`` is a plain PromQL vector selector (``m``, ``m{a="b"}``, ``{__name__=~"m.*"}``).

    A range (``[5m]``) may follow only such a selector; an expression needs a subquery.
    """
    return VECTOR_SELECTOR.fullmatch(str(text)) is not None


def _top_level(expr: str) -> str:
    """The characters of ``expr`` outside brackets and string literals (to spot top-level operators)."""
    out, depth, quote, esc = [], 0, "", False
    for ch in expr:  # a selector is a short string, not a hot path
        if quote:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def operand(expr: str) -> str:
    """``expr`` ready to sit left of a comparison: wrapped in parentheses unless it is a selector or a
    single call (``sum(...)``, ``sum by (le) (...)``) with no top-level operator."""
    expr = expr.strip()
    if is_vector_selector(expr):
        return expr
    top = _top_level(expr)
    if any(c in top for c in "+-*/%^<>=!") or _PROM_KEYWORDS.search(top):
        return f"({expr})"
    return expr


def range_selector(sel: str, window: str, step: str) -> str:
    """A range vector over ``window``: ``sel[window]`` for a plain selector, else the subquery
    ``(expr)[window:step]`` evaluated every ``step``."""
    sel = sel.strip()
    if is_vector_selector(sel):
        return f"{sel}[{window}]"
    return f"({sel})[{window}:{step}]"


@dataclass(frozen=True)
class PromMapping:
    """How studio series map to PromQL, and how often Prometheus evaluates the rules.

    Parameters
    ----------
    selectors : dict
        Series key (or the rule's ``series`` glob) -> PromQL selector or expression, e.g.
        ``{'latency_p95_ms{service="checkout"}': 'histogram_quantile(0.95, sum by (le) (rate(
        http_request_duration_seconds_bucket{service="checkout"}[5m]))) * 1000'}``. Unlisted keys are used
        as selectors as they are (a key is already ``name{label="value"}``); globs in label values become
        ``=~`` regex matchers and a glob in the name a ``__name__=~`` matcher. An expression (anything but
        a plain vector selector) is wrapped in parentheses where needed and, where a range is needed,
        turned into a subquery ``(expr)[window:interval]``.
    group : str, optional
        Rule group name; default ``threshold-studio-<policy>``. Rules with their own ``interval`` go to
        a group per interval, named ``<group>-<interval>``.
    scrape_interval_s : float
        Seconds between samples (default 60). It is also the evaluation interval unless
        ``evaluation_interval_s`` is given: the studio replays a rule without ``interval`` at the
        series' resolution, so evaluating at the scrape interval is what the replay assumed.
    evaluation_interval_s : float, optional
        Seconds between rule evaluations for rules without their own ``interval`` (written as the
        group's ``interval:``); default ``scrape_interval_s``.
    lookback : str
        Window for ``missing: keep_last`` (``last_over_time``) and ``nodata`` (``absent_over_time``)
        when the effective ``for`` is shorter (a duration > 0 such as ``10m``, or seconds; default
        ``10m``). The replay carries a
        ``keep_last`` value for as long, given the same lookback: pass :attr:`lookback_s` as
        ``core.replay.replay(..., lookback_s=)`` / ``sweep`` and this mapping to
        ``core.policy.preview(..., mapping=)``.
    extra_labels : dict
        Labels added to every alert (e.g. ``{"source": "threshold-studio"}``).
    """

    selectors: Mapping[str, str] = field(default_factory=dict)
    group: str | None = None
    scrape_interval_s: float = 60.0
    lookback: str = "10m"
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    evaluation_interval_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("scrape_interval_s", "evaluation_interval_s"):
            v = getattr(self, name)
            if v is None and name == "evaluation_interval_s":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValidationError(f"{v!r} is not an interval; expected seconds > 0", path=name)
        if parse_duration(self.lookback, path="lookback") <= 0:
            raise ValidationError(f"{self.lookback!r} is not a lookback window; expected a duration > 0 "
                                  "like 10m", path="lookback")

    @property
    def lookback_s(self) -> float:
        """:attr:`lookback` in seconds (what ``core.replay.replay(..., lookback_s=)`` takes)."""
        return parse_duration(self.lookback, path="lookback")

    @property
    def interval_s(self) -> float:
        """Evaluation interval (seconds) of rules that do not set their own."""
        return float(self.evaluation_interval_s if self.evaluation_interval_s is not None
                     else self.scrape_interval_s)

    def selector(self, series: str, matchers: Mapping[str, str] | None = None) -> str:
        """PromQL selector for a rule's ``series`` (key or glob) and extra label ``matchers``."""
        if series in self.selectors:
            return self.selectors[series]
        name, labels = parse_key(series)
        if not labels and "{" in series and not series.endswith("{}"):
            raise ValidationError(f"{series!r} is not a series key like name{{label=\"value\"}}; add it to the "
                                  "Prometheus mapping", path="series")
        labels = {**labels, **dict(matchers or {})}
        globby = any(c in name for c in "*?")
        parts = []
        if globby:
            parts.append(f"__name__=~{prom_quote(_glob_to_regex(name))}")
        for k, v in labels.items():
            if v == "*":  # any value: the label must be present (an empty label is an absent one)
                parts.append(f'{k}=~".+"')
            elif any(c in v for c in "*?"):
                parts.append(f"{k}=~{prom_quote(_glob_to_regex(v))}")
            else:
                parts.append(f"{k}={prom_quote(v)}")
        if globby:
            return "{" + ",".join(parts) + "}"
        return name + ("{" + ",".join(parts) + "}" if parts else "")
