"""SLO definitions, error budgets and multi-window burn-rate rules (Google SRE workbook, ch. 5).

An :class:`SLO` names a series (a key or a label glob), an SLI and a target over a rolling window:

* ``sli="threshold"``: good/bad **minutes**. Each UTC minute with at least one finite point is one
  event; it is bad when any point in it breaches ``value <comparator> threshold``. A minute without
  data is no event (neither good nor bad): missing data stays missing.
* ``sli="ratio"``: an error ratio from two series, ``errors`` and ``total`` (counts per sample, e.g.
  requests per minute). Per minute both are summed; only minutes where both series reported count.

Arithmetic (all fractions, windows in seconds): the error budget is ``1 - target`` of the events in
the window; ``consumed = bad / ((1 - target) x total)``; ``remaining = 1 - consumed`` (negative when
overspent); the burn rate over a window ``w`` is ``(bad_w / total_w) / (1 - target)`` (1 = spending
the budget exactly over the SLO window). A burn-rate alert pair fires when the burn rate over the long
and the short window both exceed its factor; the factor is ``share of budget x SLO window / long
window``, so for 30 days the pairs are the workbook's 14.4x (1 h / 5 m, 2 %), 6x (6 h / 30 m, 5 %)
and 1x (3 d / 6 h, 10 %), taken from :data:`core.alerting.recommend.strategies.BURN_RATE_PAIRS`.

Low-traffic guard: below ``min_events`` events in a window no compliance verdict and no burn rate is
given for it (``insufficient`` with the reason; the burn-rate series is NaN there, so no alert fires).
Every rolling window ends at the point judged and includes it (causal).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.alerting.prometheus.mapping import PromMapping, prom_duration
from core.alerting.recommend.strategies import BURN_RATE_PAIRS
from core.alerting.replay import Replay, replay
from core.alerting.rules import COMPARATORS, Rule
from core.errors import InsufficientDataError, ValidationError

DAY_S = 86400.0
#: SLO windows offered (days)
WINDOWS_DAYS = (7, 28, 30)
#: default low-traffic guard: events a window must hold before a verdict or a burn-rate alert
DEFAULT_MIN_EVENTS = 100
SLI_KINDS = ("threshold", "ratio")

__all__ = ["SLO", "WINDOWS_DAYS", "DEFAULT_MIN_EVENTS", "BurnPair", "BudgetReport", "burn_pairs", "events",
           "budget_report", "burn_rate", "matching_keys", "combine_events", "burn_rules", "pair_signal", "replay_pair", "slos_from_meta",
           "slos_to_meta", "budget_alerts"]


@dataclass(frozen=True)
class SLO:
    """One service-level objective.

    Parameters
    ----------
    name : str
        Unique name (used in rule names and notices).
    series : str
        Threshold SLI: the series key or label glob judged. Ratio SLI: the ``errors`` series key.
    target : float
        Objective as a fraction in (0, 1), e.g. 0.999.
    window_days : int
        Rolling SLO window, one of :data:`WINDOWS_DAYS`.
    sli : {"threshold", "ratio"}
    comparator, threshold : str, float
        Threshold SLI only: a minute is bad when a point satisfies ``value <comparator> threshold``.
    total : str
        Ratio SLI only: the series key of all events (the denominator).
    min_events : int
        Low-traffic guard: events (minutes or requests) a window needs before a verdict or an alert.
    """

    name: str
    series: str
    target: float
    window_days: int = 30
    sli: str = "threshold"
    comparator: str = ">"
    threshold: float | None = None
    total: str | None = None
    min_events: int = DEFAULT_MIN_EVENTS

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError("an SLO needs a name", path="slo.name")
        if not isinstance(self.series, str) or not self.series.strip():
            raise ValidationError("an SLO needs a series key or glob", path="slo.series")
        t = self.target
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (0 < float(t) < 1):
            raise ValidationError(f"SLO target must be a fraction in (0, 1) such as 0.999, got {t!r}",
                                  path="slo.target")
        if self.window_days not in WINDOWS_DAYS:
            raise ValidationError(f"SLO window must be one of {list(WINDOWS_DAYS)} days, got {self.window_days!r}",
                                  path="slo.window_days")
        if self.sli not in SLI_KINDS:
            raise ValidationError(f"SLI must be one of {list(SLI_KINDS)}, got {self.sli!r}", path="slo.sli")
        if self.sli == "threshold":
            if self.comparator not in COMPARATORS:
                raise ValidationError(f"unknown comparator {self.comparator!r}", path="slo.comparator")
            if self.threshold is None or not math.isfinite(float(self.threshold)):
                raise ValidationError("a threshold SLI needs a finite threshold", path="slo.threshold")
        elif not self.total:
            raise ValidationError("a ratio SLI needs the total-events series", path="slo.total")
        if isinstance(self.min_events, bool) or not isinstance(self.min_events, int) or self.min_events < 1:
            raise ValidationError(f"min_events must be a whole number >= 1, got {self.min_events!r}",
                                  path="slo.min_events")

    @property
    def budget(self) -> float:
        """Allowed bad share of events, ``1 - target``."""
        return 1.0 - float(self.target)

    @property
    def window_s(self) -> float:
        return self.window_days * DAY_S

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SLO:
        known = set(cls.__dataclass_fields__)
        bad = set(d) - known
        if bad:
            raise ValidationError(f"unknown SLO field(s) {sorted(bad)}", path="slo")
        return cls(**d)


def slos_from_meta(meta: dict[str, Any] | None) -> list[SLO]:
    """The SLOs kept in a policy version's ``meta["slos"]`` (the SLOs are versioned with the policy)."""
    return [SLO.from_dict(dict(d)) for d in (meta or {}).get("slos", [])]


def slos_to_meta(meta: dict[str, Any] | None, slos: list[SLO]) -> dict[str, Any]:
    """A copy of ``meta`` holding ``slos`` (names must be unique)."""
    names = [s.name for s in slos]
    if len(set(names)) != len(names):
        raise ValidationError(f"SLO names must be unique, got {names}", path="slos")
    return {**dict(meta or {}), "slos": [s.to_dict() for s in slos]}


# ------------------------------------------------------------------------------------ events
def _minute_series(points: pd.Series) -> pd.Series:
    s = pd.Series(points).astype(float)
    s = s[np.isfinite(s.to_numpy())]
    if s.index.tz is None:
        s.index = s.index.tz_localize("UTC")
    return s


def events(slo: SLO, points: pd.Series, total: pd.Series | None = None) -> pd.DataFrame:
    """Per-minute events of the SLI: columns ``bad`` and ``total``, indexed by the UTC minute.

    ``points`` is the judged series (threshold SLI) or the errors series (ratio SLI, with ``total``).
    Minutes without data are absent (never counted as good). Vectorised; causal by construction.
    """
    s = _minute_series(points)
    if slo.sli == "threshold":
        v = s.to_numpy()
        thr = float(slo.threshold)  # type: ignore[arg-type]
        breach = {">": v > thr, ">=": v >= thr, "<": v < thr, "<=": v <= thr}[slo.comparator]
        minute = s.index.floor("min")
        bad = pd.Series(breach.astype(np.int64), index=minute).groupby(level=0).max()
        return pd.DataFrame({"bad": bad.astype(float), "total": 1.0})
    if total is None:
        raise ValidationError("a ratio SLI needs the total-events series", path="slo.total")
    e = s.groupby(s.index.floor("min")).sum()
    t = _minute_series(total)
    t = t.groupby(t.index.floor("min")).sum()
    df = pd.concat({"bad": e, "total": t}, axis=1, join="inner").astype(float)
    over = df["bad"] > df["total"]
    if over.any():
        raise ValidationError(f"{int(over.sum())} minute(s) count more errors than events (first "
                              f"{df.index[over.to_numpy()][0].isoformat()}); check the two series",
                              path="slo.series")
    if (df[["bad", "total"]] < 0).to_numpy().any():
        raise ValidationError("event counts must not be negative", path="slo.series")
    return df


def matching_keys(slo: SLO, keys: list[str]) -> list[str]:
    """Stored series keys the SLO judges (threshold SLI: the key or every key its glob selects; ratio
    SLI: the errors series)."""
    probe = Rule(name="slo", series=slo.series, warning=0.0)
    return [k for k in keys if probe.matches(k)]


def combine_events(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Events of several series (a label glob) as one SLI: bad and total summed per minute."""
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame({"bad": pd.Series(dtype=float), "total": pd.Series(dtype=float)})
    return pd.concat(parts).groupby(level=0).sum().sort_index()


# ------------------------------------------------------------------------------------ budget
@dataclass(frozen=True)
class BudgetReport:
    """Compliance and error budget over the SLO window ending at ``end`` (inclusive)."""

    slo: str
    start: pd.Timestamp
    end: pd.Timestamp
    events: float
    bad: float
    compliance: float | None      #: good share of events (fraction); None when insufficient
    allowed_bad: float            #: (1 - target) x events
    consumed: float | None        #: share of the budget spent (1 = all; > 1 overspent)
    remaining: float | None       #: 1 - consumed
    sufficient: bool
    reason: str = ""
    window_minutes_without_data: int = 0

    @property
    def met(self) -> bool | None:
        """Whether the objective holds over the window (budget not overspent); None when insufficient."""
        return None if self.consumed is None else self.consumed <= 1.0


def budget_report(slo: SLO, ev: pd.DataFrame, end: Any = None) -> BudgetReport:
    """Compliance, budget consumed and remaining over ``(end - window, end]``; ``end`` defaults to the
    last event. Below ``slo.min_events`` events the verdict is withheld (``sufficient=False``)."""
    if ev.empty:
        raise InsufficientDataError(f"SLO {slo.name!r}: no events (no data for its series)")
    end_ts = pd.Timestamp(end) if end is not None else ev.index[-1]
    if end_ts.tzinfo is None:
        end_ts = end_ts.tz_localize("UTC")
    start = end_ts - pd.Timedelta(seconds=slo.window_s)
    w = ev[(ev.index > start) & (ev.index <= end_ts)]
    n, bad = float(w["total"].sum()), float(w["bad"].sum())
    allowed = slo.budget * n
    no_data = int(slo.window_s // 60) - len(w) if slo.sli == "threshold" else 0
    if n < slo.min_events:
        return BudgetReport(slo.name, start, end_ts, n, bad, None, allowed, None, None, False,
                            f"{n:.0f} events in the {slo.window_days}-day window, fewer than the "
                            f"{slo.min_events} the low-traffic guard needs", no_data)
    consumed = bad / allowed
    return BudgetReport(slo.name, start, end_ts, n, bad, 1.0 - bad / n, allowed, consumed, 1.0 - consumed, True,
                        "", no_data)


def burn_rate(slo: SLO, ev: pd.DataFrame, window_s: float, min_events: int | None = None) -> pd.Series:
    """Burn rate over the trailing ``window_s`` at each event minute (window ``(t - w, t]``, causal):
    ``(bad / total) / (1 - target)``. NaN where the window holds fewer than ``min_events`` events
    (default the SLO's guard)."""
    guard = slo.min_events if min_events is None else min_events
    roll = ev[["bad", "total"]].rolling(pd.Timedelta(seconds=window_s)).sum()
    rate = (roll["bad"] / roll["total"]) / slo.budget
    return rate.where(roll["total"] >= guard)


# ------------------------------------------------------------------------------------ burn-rate rules
@dataclass(frozen=True)
class BurnPair:
    """One multi-window burn-rate alert of an SLO."""

    severity: str
    long_s: float
    short_s: float
    factor: float          #: burn rate both windows must exceed
    budget_share: float    #: share of the budget spent when it fires after ``long_s``

    @property
    def label(self) -> str:
        return f"{prom_duration(self.long_s)}/{prom_duration(self.short_s)}"


def burn_pairs(slo: SLO) -> list[BurnPair]:
    """The workbook's three pairs scaled to the SLO window (factor = share x window / long window)."""
    return [BurnPair(sev, long_s, short_s, round(share * slo.window_s / long_s, 6), share)
            for sev, long_s, short_s, _factor, share in BURN_RATE_PAIRS]


def pair_signal(slo: SLO, ev: pd.DataFrame, pair: BurnPair) -> pd.Series:
    """The value a burn-rate rule compares with its factor: ``min(burn over long, burn over short)``
    per event minute (above the factor exactly when both are). NaN where either window is below the
    low-traffic guard (no alert)."""
    lo = burn_rate(slo, ev, pair.long_s)
    sh = burn_rate(slo, ev, pair.short_s, min_events=1)
    return pd.concat([lo, sh], axis=1).min(axis=1, skipna=False).rename(slo.name)


def _expr(slo: SLO, window: str, mapping: PromMapping) -> str:
    if slo.sli == "ratio":
        e, t = mapping.selector(slo.series), mapping.selector(slo.total)  # type: ignore[arg-type]
        ratio = f"sum(rate({e}[{window}])) / sum(rate({t}[{window}]))"
    else:
        step = prom_duration(mapping.scrape_interval_s)
        ratio = (f"avg(avg_over_time(({mapping.selector(slo.series)} {slo.comparator} bool "
                 f"{float(slo.threshold):g})[{window}:{step}]))")  # type: ignore[arg-type]
    return f"(({ratio}) / {slo.budget:.6g})"


def burn_rules(slo: SLO, mapping: PromMapping | None = None) -> list[Rule]:
    """One policy rule per burn-rate pair. Its level is the burn factor and its ``promql`` the smaller
    of the two windows' burn rates (``(A < B) or B`` is ``min(A, B)`` label by label), so the exported
    alert ``... > factor`` fires exactly when both windows burn faster than the factor. Replay it on the
    SLI with :func:`replay_pair` (the stored series holds the SLI, not its burn rate)."""
    m = mapping or PromMapping()
    rules = []
    for p in burn_pairs(slo):
        a, b = _expr(slo, prom_duration(p.long_s), m), _expr(slo, prom_duration(p.short_s), m)
        level = {"critical" if p.severity == "critical" else "warning": p.factor}
        rules.append(Rule(
            name=f"SLOBurn_{_ident(slo.name)}_{prom_duration(p.long_s)}", series=slo.series, comparator=">",
            **level, for_s=0.0, missing="resolve", promql=f"({a} < {b}) or {b}",
            labels={"slo": slo.name}, interval_s=60.0,
            annotations={"summary": f"SLO {slo.name} ({slo.target:.4%} over {slo.window_days}d) burning its "
                                    f"error budget at over {p.factor:g}x over {p.label}",
                         "rationale": f"{p.budget_share:.0%} of the {slo.window_days}-day budget spent in "
                                      f"{prom_duration(p.long_s)}; SRE workbook multi-window burn-rate alert."}))
    return rules


def _ident(name: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in name.strip())
    return out or "slo"


def replay_pair(slo: SLO, ev: pd.DataFrame, pair: BurnPair) -> Replay:
    """Replay the pair's rule (as :func:`burn_rules` builds it) on the SLI's burn-rate signal."""
    rule = next(r for r, p in zip(burn_rules(slo), burn_pairs(slo), strict=True) if p == pair)
    return replay(rule, pair_signal(slo, ev, pair), resolution_s=60.0)


def budget_alerts(slo: SLO, ev: pd.DataFrame) -> list[dict[str, Any]]:
    """Burn-rate pairs firing at the last event minute, as notice payloads (empty when none fires or
    the low-traffic guard withholds a verdict)."""
    out = []
    if ev.empty:
        return out
    for p in burn_pairs(slo):
        sig = pair_signal(slo, ev, p)
        last = sig.iloc[-1]
        if np.isfinite(last) and last > p.factor:
            out.append({"slo": slo.name, "severity": p.severity, "windows": p.label, "factor": p.factor,
                        "burn_rate": float(last), "at": ev.index[-1].isoformat()})
    return out
