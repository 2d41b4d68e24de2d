"""Alert rules: what to compare, against which thresholds, and how long before it pages.

A :class:`Rule` describes one threshold alert the way Prometheus alerting rules and Grafana alerts
describe them: a series selector, a comparator, a warning and/or critical threshold, a pending
period (``for``), ``keep_firing_for``, an optional recovery threshold (hysteresis), a
consecutive-breach count and a missing-data behaviour. :mod:`core.alerting.replay` replays a rule over
history. Everything here is pure Python (no store, no streamlit).

Durations are seconds (``float``) inside the code and strings like ``"5m"`` or ``"1h30m"`` in files;
see :func:`parse_duration` and :func:`format_duration`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.data.frame import make_key, parse_key
from core.errors import ValidationError

__all__ = [
    "COMPARATORS", "MISSING_MODES", "SEVERITIES", "KNOWN_UNITS", "Rule",
    "parse_duration", "format_duration", "check_overlaps", "glob_to_regex",
]

COMPARATORS = (">", ">=", "<", "<=")
MISSING_MODES = ("nodata", "keep_last", "resolve")
SEVERITIES = ("warning", "critical")          # lowest first
ANNOTATION_KEYS = ("summary", "description", "rationale", "runbook_url")

# unit -> (lowest, highest) allowed threshold value, or None when unbounded
KNOWN_UNITS: dict[str, tuple[float, float] | None] = {
    "percent": (0.0, 100.0), "%": (0.0, 100.0), "ratio": (0.0, 1.0),
    "s": (0.0, math.inf), "ms": (0.0, math.inf), "us": (0.0, math.inf), "ns": (0.0, math.inf),
    "bytes": (0.0, math.inf), "count": (0.0, math.inf), "req/s": (0.0, math.inf),
    "ops/s": (0.0, math.inf), "bytes/s": (0.0, math.inf), "errors/s": (0.0, math.inf),
    "celsius": None, "none": None,
}
_UNIT_RE = re.compile(r"^[A-Za-z%µ][A-Za-z0-9%µ/_.\-]{0,31}$")

# ----------------------------------------------------------------------------------- durations
_DUR_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DUR_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DUR_FULL = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")


def parse_duration(value: str | float | int | None, *, path: str = "duration") -> float:
    """Parse a duration into seconds.

    Accepts ``"30s"``, ``"5m"``, ``"1h30m"``, ``"2d"``, ``"1w"``, ``"250ms"`` (units may be combined,
    largest first is customary but not required), a bare number (seconds) or a numeric string.

    Returns
    -------
    float
        Seconds, finite and >= 0.

    Raises
    ------
    ValidationError
        With ``path`` when the text is not a duration or is negative.
    """
    if value is None:
        raise ValidationError("a duration is required, e.g. '5m' or '1h30m'", path=path)
    if isinstance(value, bool):
        raise ValidationError(f"expected a duration like '5m', got {value!r}", path=path)
    if isinstance(value, (int, float)):
        secs = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        try:
            secs = float(text)
        except ValueError:
            if not _DUR_FULL.match(text):
                raise ValidationError(
                    f"cannot read duration {value!r}; expected e.g. '30s', '5m', '1h30m' "
                    "(units ms, s, m, h, d, w) or a number of seconds", path=path) from None
            secs = sum(float(n) * _DUR_UNITS[u] for n, u in _DUR_PART.findall(text))
    if not math.isfinite(secs) or secs < 0:
        raise ValidationError(f"duration must be a finite number of seconds >= 0, got {value!r}", path=path)
    return secs


def format_duration(seconds: float) -> str:
    """Format seconds as a compact duration: ``5400 -> "1h30m"``, ``0 -> "0s"``, ``0.25 -> "250ms"``.

    Whole weeks are not used (``"7d"``, not ``"1w"``); fractional seconds below one second become
    milliseconds, other fractions are kept on the seconds part (``"1m1.5s"``). Round-trips through
    :func:`parse_duration`.
    """
    s = float(seconds)
    if not math.isfinite(s) or s < 0:
        raise ValidationError(f"cannot format duration {seconds!r}; expected seconds >= 0", path="duration")
    if s == 0:
        return "0s"
    if s < 1:
        ms = s * 1000
        return f"{ms:g}ms" if ms == int(ms) else f"{s:g}s"
    whole = int(s)
    frac = s - whole
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        n, whole = divmod(whole, size)
        if n:
            parts.append(f"{n}{unit}")
    if whole or frac:
        sec = whole + frac
        parts.append(f"{sec:g}s" if frac else f"{whole}s")
    return "".join(parts)


# ----------------------------------------------------------------------------------- selectors
@functools.lru_cache(maxsize=4096)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a series-key glob: ``*`` any run of characters, ``?`` one character (memoised: a page
    matches every rule against hundreds of keys on each run).

    Inside a quoted label value (``{service="*"}``) a wildcard never crosses a double quote, so
    ``latency{service="*"}`` matches ``latency{service="api"}`` but not a key with more labels.
    Every other character is literal.
    """
    out, in_quotes, i = [], False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and in_quotes and i + 1 < len(pattern):
            out.append(re.escape(pattern[i:i + 2]))
            i += 2
            continue
        if c == '"':
            in_quotes = not in_quotes
            out.append('"')
        elif c == "*":
            out.append('[^"]*' if in_quotes else ".*")
        elif c == "?":
            out.append('[^"]' if in_quotes else ".")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.DOTALL)


@functools.lru_cache(maxsize=65536)
def _canonical_key(key: str) -> str:
    name, labels = parse_key(key)
    return make_key(name, labels) if labels else str(key).strip()


# ----------------------------------------------------------------------------------- the rule
def _num(value: Any, path: str, *, optional: bool = True) -> float | None:
    if value is None:
        if optional:
            return None
        raise ValidationError("a number is required", path=path)
    if isinstance(value, bool):
        raise ValidationError(f"expected a number, got {value!r}", path=path)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"expected a number, got {value!r}", path=path) from None
    if not math.isfinite(x):
        raise ValidationError(f"must be a finite number, got {value!r}", path=path)
    return x


def _str_map(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"expected a mapping of name -> text, got {type(value).__name__}", path=path)
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k.strip():
            raise ValidationError(f"keys must be non-empty text, got {k!r}", path=path)
        if v is None or isinstance(v, (dict, list, tuple, set)):
            raise ValidationError(f"value must be text, got {v!r}", path=f"{path}.{k}")
        out[k] = str(v)
    return out


LIMIT_KEYS = ("min", "max", "max_change", "stability")


def _limits(value: Any, path: str) -> dict[str, float]:
    """A rule's change limits, checked: ``{min, max, max_change, stability_s}`` (keys that are set).
    ``stability`` may be a duration (``7d``) or seconds; ``max_change`` a share > 0."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"limits must be a mapping of {list(LIMIT_KEYS)}, got {value!r}", path=path)
    out: dict[str, float] = {}
    for k, v in value.items():
        key = "stability" if k == "stability_s" else str(k)
        if key not in LIMIT_KEYS:
            raise ValidationError(f"unknown limit {k!r}; expected some of {list(LIMIT_KEYS)}", path=f"{path}.{k}")
        if v is None:
            continue
        if key == "stability":
            s = parse_duration(v, path=f"{path}.stability")
            if s < 0:
                raise ValidationError("the stability period must be >= 0", path=f"{path}.stability")
            out["stability_s"] = s
            continue
        x = _num(v, f"{path}.{key}")
        assert x is not None
        if key == "max_change" and not x > 0:
            raise ValidationError(f"max_change is a share of the level in force (0.2 = 20 %) and must be > 0, "
                                  f"got {x:g}", path=f"{path}.max_change")
        out[key] = x
    if "min" in out and "max" in out and out["min"] >= out["max"]:
        raise ValidationError(f"min {out['min']:g} must be below max {out['max']:g}", path=path)
    return {k: out[k] for k in ("min", "max", "max_change", "stability_s") if k in out}


@dataclass
class Rule:
    """One threshold alert rule.

    Parameters
    ----------
    name : str
        Rule name (shown in alerts and reports).
    series : str
        Series key (``cpu_pct{host="a"}``) or a glob over keys (``latency_p95_ms{service="*"}``,
        ``latency_p95_ms*``); see :func:`glob_to_regex`. A key without wildcards matches only itself.
    comparator : {">", ">=", "<", "<="}
        The alert condition is ``value <comparator> threshold``.
    warning, critical : float, optional
        Thresholds in the series' unit; at least one. Warning must come before critical in the
        comparator's direction (for ``>``: warning < critical; for ``<``: warning > critical).
    for_s : float
        Pending period in seconds: the condition must hold this long before the alert fires
        (Prometheus ``for``). Strings such as ``"5m"`` are accepted and converted.
    keep_firing_for_s : float
        Seconds a firing alert keeps firing after its condition stops holding (Prometheus
        ``keep_firing_for``).
    recovery : float, optional
        Hysteresis: once firing, the alert resolves only when the value crosses ``recovery``
        (for ``>``/``>=``: drops strictly below it; for ``<``/``<=``: rises strictly above it).
        Must lie on the resolving side of every trigger (for ``>``: below the warning, or below
        the critical when there is no warning). It applies to both severities.
    consecutive : int
        Fire only after this many consecutive breaching evaluations (>= 1); combined with
        ``for_s``, pending starts at the N-th consecutive breach.
    missing : {"nodata", "keep_last", "resolve"}
        Missing data. In every mode a missing evaluation counts as "condition false" (as in
        Prometheus: pending stops, a firing alert resolves unless ``keep_firing_for`` holds it).
        ``"nodata"`` also reports a gap as a no-data episode once it has lasted the export's
        lookback (when the exported ``NoData`` alert fires; see :mod:`core.alerting.replay`); ``"keep_last"`` carries
        the last value forward for evaluation, for at most the export's lookback (see
        :mod:`core.alerting.replay`); ``"resolve"`` does nothing more.
    matchers : dict, optional
        Extra label matchers (label -> exact value or glob); all must match.
    labels : dict, optional
        Labels attached to the alert (team, service...).
    severity_labels : dict, optional
        Label value sent for each level, e.g. ``{"warning": "ticket", "critical": "page"}``.
    annotations : dict, optional
        ``summary``, ``description``, ``rationale`` (why this threshold), ``runbook_url``...
    unit : str, optional
        Unit of the series and thresholds (``ms``, ``percent``...); known units bound thresholds
        (percent in [0, 100], ratio in [0, 1], durations/bytes/rates >= 0).
    interval_s : float, optional
        Evaluation interval in seconds; None = the series' resolution (median step).
    promql : str, optional
        The rule's Prometheus mapping: the PromQL expression the exported alert compares with its
        levels (e.g. ``sum(rate(errors_total[5m])) / sum(rate(requests_total[5m]))``, as imported from
        a rule file). The replay runs on the stored ``series``; None = derive the selector from
        ``series`` (see :class:`core.alerting.prometheus.PromMapping`). A severity label value of
        ``""`` in ``severity_labels`` means the alert carries no severity label.
    """

    name: str
    series: str
    comparator: str = ">"
    warning: float | None = None
    critical: float | None = None
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    recovery: float | None = None
    consecutive: int = 1
    missing: str = "nodata"
    matchers: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    severity_labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    unit: str | None = None
    interval_s: float | None = None
    promql: str | None = None
    limits: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self, path: str = "rule") -> Rule:
        """Normalise fields in place and check them; raise :class:`ValidationError` naming the field."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError("a rule needs a non-empty name", path=f"{path}.name")
        self.name = self.name.strip()
        if not isinstance(self.series, str) or not self.series.strip():
            raise ValidationError("a rule needs a series key or glob, e.g. 'cpu_pct{host=\"*\"}'",
                                  path=f"{path}.series")
        self.series = self.series.strip()
        if self.comparator not in COMPARATORS:
            raise ValidationError(f"unknown comparator {self.comparator!r}; expected one of {list(COMPARATORS)}",
                                  path=f"{path}.comparator")
        self.warning = _num(self.warning, f"{path}.warning")
        self.critical = _num(self.critical, f"{path}.critical")
        self.recovery = _num(self.recovery, f"{path}.recovery")
        if self.warning is None and self.critical is None:
            raise ValidationError("a rule needs a warning or a critical threshold (or both)",
                                  path=f"{path}.critical")
        up = self.comparator in (">", ">=")
        if self.warning is not None and self.critical is not None:
            ok = self.warning < self.critical if up else self.warning > self.critical
            if not ok:
                want = "below" if up else "above"
                raise ValidationError(
                    f"warning {self.warning:g} must be {want} critical {self.critical:g} for comparator "
                    f"{self.comparator!r} (warning fires first)", path=f"{path}.warning")
        if self.recovery is not None:
            trig = self.triggers()
            edge = min(trig.values()) if up else max(trig.values())
            ok = self.recovery < edge if up else self.recovery > edge
            if not ok:
                side = "below" if up else "above"
                which = "warning" if self.warning is not None else "critical"
                raise ValidationError(
                    f"recovery {self.recovery:g} must be strictly {side} the {which} threshold {edge:g} "
                    f"for comparator {self.comparator!r} (it is where a firing alert resolves)",
                    path=f"{path}.recovery")
        self.for_s = parse_duration(self.for_s, path=f"{path}.for")
        self.keep_firing_for_s = parse_duration(self.keep_firing_for_s, path=f"{path}.keep_firing_for")
        if self.interval_s is not None:
            self.interval_s = parse_duration(self.interval_s, path=f"{path}.interval")
            if self.interval_s <= 0:
                raise ValidationError("evaluation interval must be > 0 seconds (or omitted to use the "
                                      "series resolution)", path=f"{path}.interval")
        if isinstance(self.consecutive, bool) or not isinstance(self.consecutive, (int, float)) \
                or self.consecutive != int(self.consecutive) or self.consecutive < 1:
            raise ValidationError(f"consecutive must be a whole number >= 1, got {self.consecutive!r}",
                                  path=f"{path}.consecutive")
        self.consecutive = int(self.consecutive)
        if self.missing not in MISSING_MODES:
            raise ValidationError(f"unknown missing-data mode {self.missing!r}; expected one of "
                                  f"{list(MISSING_MODES)}", path=f"{path}.missing")
        self.matchers = _str_map(self.matchers, f"{path}.matchers")
        self.labels = _str_map(self.labels, f"{path}.labels")
        self.severity_labels = _str_map(self.severity_labels, f"{path}.severity_labels")
        for k in self.severity_labels:
            if k not in SEVERITIES:
                raise ValidationError(f"unknown severity {k!r}; expected {list(SEVERITIES)}",
                                      path=f"{path}.severity_labels.{k}")
        self.annotations = _str_map(self.annotations, f"{path}.annotations")
        if self.promql is not None:
            if not isinstance(self.promql, str) or not self.promql.strip():
                raise ValidationError("promql must be a non-empty PromQL expression (or omitted)",
                                      path=f"{path}.promql")
            self.promql = self.promql.strip()
        self.limits = _limits(self.limits, f"{path}.limits")
        for fname, v in self.triggers().items():
            lo, hi = self.limits.get("min"), self.limits.get("max")
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ValidationError(f"{v:g} is outside this rule's bounds [{'' if lo is None else f'{lo:g}'}, "
                                      f"{'' if hi is None else f'{hi:g}'}] (limits min/max)", path=f"{path}.{fname}")
        if self.unit is not None:
            unit = str(self.unit).strip()
            if not _UNIT_RE.match(unit):
                raise ValidationError(f"unit {self.unit!r} is not a unit name; expected e.g. "
                                      f"{sorted(KNOWN_UNITS)[:6]}", path=f"{path}.unit")
            self.unit = unit
            bounds = KNOWN_UNITS.get(unit.lower())
            if bounds is not None:
                lo, hi = bounds
                for fname in ("warning", "critical", "recovery"):
                    v = getattr(self, fname)
                    if v is not None and not lo <= v <= hi:
                        raise ValidationError(f"{fname} {v:g} is outside [{lo:g}, {hi:g}] for unit {unit!r}",
                                              path=f"{path}.{fname}")
        return self

    # ------------------------------------------------------------------ helpers
    def triggers(self) -> dict[str, float]:
        """Configured thresholds by severity, lowest severity first: ``{"warning": 80, "critical": 95}``."""
        out = {}
        if self.warning is not None:
            out["warning"] = float(self.warning)
        if self.critical is not None:
            out["critical"] = float(self.critical)
        return out

    def label_for(self, severity: str) -> str:
        """The ``severity`` label value sent for a level (default: the level name)."""
        return self.severity_labels.get(severity, severity)

    def matches(self, key: str) -> bool:
        """Whether a series key is selected by ``series`` and all ``matchers``."""
        pat = self.series
        if "*" in pat or "?" in pat:
            ok = glob_to_regex(pat).match(str(key)) is not None
        else:
            ok = _canonical_key(key) == _canonical_key(pat)
        if not ok:
            return False
        if self.matchers:
            _, labels = parse_key(key)
            for lab, want in self.matchers.items():
                if lab not in labels or glob_to_regex(want).match(labels[lab]) is None:
                    return False
        return True

    def matching(self, keys: Iterable[str]) -> list[str]:
        """The keys this rule selects, in the given order."""
        return [k for k in keys if self.matches(k)]

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain dict for YAML/JSON: durations as strings (``"5m"``), empty/None fields left out."""
        d: dict[str, Any] = {"name": self.name, "series": self.series, "comparator": self.comparator}
        for k in ("warning", "critical"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        d["for"] = format_duration(self.for_s)
        if self.keep_firing_for_s:
            d["keep_firing_for"] = format_duration(self.keep_firing_for_s)
        if self.recovery is not None:
            d["recovery"] = self.recovery
        if self.consecutive != 1:
            d["consecutive"] = self.consecutive
        d["missing"] = self.missing
        for k in ("matchers", "labels", "severity_labels", "annotations"):
            if getattr(self, k):
                d[k] = dict(getattr(self, k))
        if self.unit is not None:
            d["unit"] = self.unit
        if self.interval_s is not None:
            d["interval"] = format_duration(self.interval_s)
        if self.promql is not None:
            d["promql"] = self.promql
        if self.limits:
            d["limits"] = {k: (format_duration(v) if k == "stability_s" else v) for k, v in self.limits.items()}
            if "stability_s" in d["limits"]:
                d["limits"]["stability"] = d["limits"].pop("stability_s")
        return d

    _FIELDS = {
        "name": "name", "series": "series", "comparator": "comparator", "warning": "warning",
        "critical": "critical", "for": "for_s", "for_s": "for_s", "keep_firing_for": "keep_firing_for_s",
        "keep_firing_for_s": "keep_firing_for_s", "recovery": "recovery", "consecutive": "consecutive",
        "missing": "missing", "matchers": "matchers", "labels": "labels",
        "severity_labels": "severity_labels", "annotations": "annotations", "unit": "unit",
        "interval": "interval_s", "interval_s": "interval_s", "promql": "promql", "limits": "limits",
    }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], path: str = "rules[0]") -> Rule:
        """Build a rule from :meth:`to_dict` output (or hand-written YAML).

        Durations may be strings (``"5m"``) or seconds. Unknown or duplicated fields and invalid
        values raise :class:`ValidationError` whose ``path`` names the field, e.g. ``rules[0].for``.
        """
        if not isinstance(d, Mapping):
            raise ValidationError(f"a rule must be a mapping, got {type(d).__name__}", path=path)
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            attr = cls._FIELDS.get(key)
            if attr is None:
                raise ValidationError(f"unknown field {key!r}; expected one of "
                                      f"{sorted(k for k in cls._FIELDS if not k.endswith('_s'))}",
                                      path=f"{path}.{key}")
            if attr in kwargs:
                raise ValidationError(f"field given twice (as {key!r} and another spelling)", path=f"{path}.{key}")
            kwargs[attr] = value
        for req in ("name", "series"):
            if req not in kwargs:
                raise ValidationError(f"missing required field {req!r}", path=f"{path}.{req}")
        obj = cls.__new__(cls)
        defaults = {f: getattr(cls, f, None) for f in ("comparator", "warning", "critical", "for_s",
                                                       "keep_firing_for_s", "recovery", "consecutive",
                                                       "missing", "unit", "interval_s", "promql")}
        for f, v in defaults.items():
            setattr(obj, f, v)
        for f in ("matchers", "labels", "severity_labels", "annotations", "limits"):
            setattr(obj, f, {})
        for f, v in kwargs.items():
            setattr(obj, f, v)
        obj.validate(path)
        return obj


# ----------------------------------------------------------------------------------- overlaps
# ---------------------------------------------------------------------------------------- rule lists
def rule_to_dict(rule: Any) -> dict[str, Any]:
    """A rule as a plain dict: ``Rule.to_dict()`` for :class:`Rule`, a copy for a mapping."""
    if hasattr(rule, "to_dict"):
        return dict(rule.to_dict())
    if isinstance(rule, Mapping):
        return dict(rule)
    raise ValidationError(f"a rule must be a Rule or a mapping, not {type(rule).__name__}",
                          path="rules")


def normalise_rules(rules: Iterable[Any]) -> list[dict[str, Any]]:
    """Validate rules and return their dicts sorted by name.

    Each rule goes through ``Rule.from_dict(d, path="rules[i]")`` so
    an invalid field raises :class:`ValidationError` naming it. Names must be present and unique.
    """
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, r in enumerate(rules):
        d = rule_to_dict(r)
        d = dict(Rule.from_dict(d, path=f"rules[{i}]").to_dict())
        name = d.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("every rule needs a non-empty name", path=f"rules[{i}].name")
        if name in seen:
            raise ValidationError(f"rule name {name!r} is used twice (rules[{seen[name]}] and rules[{i}]); "
                                  "names must be unique within a policy", path=f"rules[{i}].name")
        seen[name] = i
        out.append(d)
    return sorted(out, key=lambda d: d["name"])


def as_rule(rule: Any) -> Rule:
    """``rule`` as a :class:`Rule` (a mapping goes through :meth:`Rule.from_dict`)."""
    if isinstance(rule, Rule):
        return rule
    return Rule.from_dict(rule_to_dict(rule), path="rules")


def _region(rule: Rule) -> tuple[float, float, bool, bool]:
    """Values for which some level of the rule breaches: ``(lo, hi, lo_inclusive, hi_inclusive)``."""
    trig = rule.triggers().values()
    if rule.comparator in (">", ">="):
        return min(trig), math.inf, rule.comparator == ">=", False
    return -math.inf, max(trig), False, rule.comparator == "<="


def _overlap(a: tuple[float, float, bool, bool], b: tuple[float, float, bool, bool]) -> str | None:
    lo, lo_inc = (a[0], a[2]) if a[0] > b[0] else (b[0], b[2]) if b[0] > a[0] else (a[0], a[2] and b[2])
    hi, hi_inc = (a[1], a[3]) if a[1] < b[1] else (b[1], b[3]) if b[1] < a[1] else (a[1], a[3] and b[3])
    if lo < hi or (lo == hi and lo_inc and hi_inc and math.isfinite(lo)):
        if math.isinf(hi):
            return f"value {'>=' if lo_inc else '>'} {lo:g}"
        if math.isinf(lo):
            return f"value {'<=' if hi_inc else '<'} {hi:g}"
        return f"{lo:g} {'<=' if lo_inc else '<'} value {'<=' if hi_inc else '<'} {hi:g}"
    return None


def check_overlaps(rules: Iterable[Rule], series_keys: Iterable[str]) -> list[str]:
    """Find pairs of rules that select the same series and can fire at the same value.

    Two rules in the same direction (both ``>``-like) always overlap above the higher trigger: the
    series pages twice for one problem. Opposite directions overlap when their breaching ranges
    intersect (``> 50`` and ``< 80`` both fire for any value in between), which is usually a typo.

    Returns
    -------
    list of str
        One message per overlapping pair, naming both rules, how many series they share (with an
        example) and the value range where both fire. Empty when nothing overlaps.
    """
    rules = list(rules)
    keys = list(series_keys)
    sel = [set(r.matching(keys)) for r in rules]
    out = []
    for i in range(len(rules)):
        for j in range(i + 1, len(rules)):
            shared = sel[i] & sel[j]
            if not shared:
                continue
            where = _overlap(_region(rules[i]), _region(rules[j]))
            if where is None:
                continue
            ex = sorted(shared)[0]
            kind = ("duplicate alerts" if (rules[i].comparator[0] == rules[j].comparator[0])
                    else "contradictory directions")
            out.append(f"rules {rules[i].name!r} and {rules[j].name!r} overlap on {len(shared)} series "
                       f"(e.g. {ex}): both fire when {where} ({kind})")
    return out
