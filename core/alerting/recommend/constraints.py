"""Change constraints on a recommended level: bounds, maximum change per apply, oscillation guard, order.

A recommendation is cut by the constraints of the rule it would change; when a constraint cuts it,
the result says so and keeps the unconstrained value, so nobody mistakes a capped step for the
level the data asked for. The constraints live with the rule (:attr:`core.alerting.rules.Rule.limits`:
``min``, ``max``, ``max_change``, ``stability``, kept in the policy YAML); what a rule leaves unset comes
from the caller's defaults (20 % per apply, 7 days), and policies stored before rules had limits
give their bounds through ``meta["bounds"]``. :func:`last_changes` finds a rule's last applied change
of each level in the history of the versions in force, for the oscillation guard.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.alerting.rules import Rule, format_duration
from core.errors import ValidationError

__all__ = ["Constraints", "Constrained", "constrain", "constrain_pair", "LastChange", "last_changes",
           "DEFAULT_MAX_CHANGE", "DEFAULT_STABILITY_S"]

DEFAULT_MAX_CHANGE = 0.2
DEFAULT_STABILITY_S = 7 * 86400.0


@dataclass(frozen=True)
class Constraints:
    """Limits on how a level may change.

    Attributes
    ----------
    min, max : float, optional
        Bounds the level must stay within (the rule's ``bounds``).
    max_change : float, optional
        Largest relative change per apply (0.2 = 20 % of the level in force); None = no limit.
    stability_s : float
        Oscillation guard: within this many seconds of the last change, a change in the opposite
        direction is held back (default 7 days).
    """

    min: float | None = None
    max: float | None = None
    max_change: float | None = 0.2
    stability_s: float = 7 * 86400.0

    def __post_init__(self) -> None:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValidationError(f"bounds min {self.min:g} is above max {self.max:g}", path="bounds")
        if self.max_change is not None and not (math.isfinite(self.max_change) and self.max_change > 0):
            raise ValidationError(f"max_change must be a share > 0, got {self.max_change!r}", path="max_change")
        if not (math.isfinite(self.stability_s) and self.stability_s >= 0):
            raise ValidationError(f"stability period must be seconds >= 0, got {self.stability_s!r}",
                                  path="stability")

    @classmethod
    def from_bounds(cls, bounds: dict[str, float] | None, **kw: Any) -> Constraints:
        """From a policy ``bounds`` mapping ``{min, max}`` plus other fields."""
        b = bounds or {}
        return cls(min=b.get("min"), max=b.get("max"), **kw)

    @classmethod
    def from_rule(cls, rule: Rule | None, *, max_change: float | None = DEFAULT_MAX_CHANGE,
                  stability_s: float = DEFAULT_STABILITY_S, bounds: Mapping[str, float] | None = None) -> Constraints:
        """The rule's stored limits (:attr:`~core.alerting.rules.Rule.limits`); what it leaves unset comes
        from ``max_change`` / ``stability_s`` (the caller's defaults) and ``bounds`` (an older policy's
        ``{min, max}`` for the rule)."""
        lim = dict(rule.limits) if rule is not None else {}
        b = dict(bounds or {})
        return cls(min=lim.get("min", b.get("min")), max=lim.get("max", b.get("max")),
                   max_change=lim.get("max_change", max_change), stability_s=lim.get("stability_s", stability_s))

    def describe(self) -> str:
        """The limits in words (``"max change 20% per apply, stability 7d, bounds [80, 1000]"``)."""
        parts = ["no max change" if self.max_change is None else f"max change {self.max_change:.0%} per apply",
                 f"stability {format_duration(self.stability_s)}"]
        if self.min is not None or self.max is not None:
            parts.append(f"bounds [{'' if self.min is None else f'{self.min:g}'}, "
                         f"{'' if self.max is None else f'{self.max:g}'}]")
        return ", ".join(parts)


@dataclass(frozen=True)
class LastChange:
    """The level's last applied change: its previous value, new value and when (UTC)."""

    old: float
    new: float
    at: pd.Timestamp


@dataclass(frozen=True)
class Constrained:
    """A level after the constraints: ``value`` (what to apply), ``unconstrained`` (what the data
    asked for) and ``reasons`` (empty when nothing cut it)."""

    value: float | None
    unconstrained: float | None
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def cut(self) -> bool:
        return bool(self.reasons)


def constrain(level: float | None, current: float | None, c: Constraints, *, last: LastChange | None = None,
              now: Any = None, name: str = "level") -> Constrained:
    """Apply the oscillation guard, the maximum change and the bounds (in that order) to ``level``.

    Parameters
    ----------
    level : float or None
        The recommended level (None: nothing to constrain).
    current : float or None
        The level in force (None: a new rule; only the bounds apply).
    c : Constraints
    last : LastChange, optional
        The last applied change of this level.
    now : timestamp-like, optional
        When the change would be applied (default: now, UTC).
    name : str
        How the reasons name the level ("warning", "critical").
    """
    if level is None:
        return Constrained(None, None)
    v, reasons = float(level), []
    if current is not None and last is not None and v != current:
        t = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
        t = t.tz_localize("UTC") if t.tz is None else t
        at = last.at.tz_localize("UTC") if last.at.tz is None else last.at
        since = (t - at).total_seconds()
        if since < c.stability_s and (v - current) * (last.new - last.old) < 0:
            reasons.append(f"{name} changed from {last.old:.4g} to {last.new:.4g} {format_duration(max(0, round(since)))} "
                           f"ago; reversing it within the {format_duration(c.stability_s)} stability period is held back")
            v = float(current)
    if current is not None and c.max_change is not None and v != current:
        if current == 0:
            reasons.append(f"{name} in force is 0: the maximum change of {c.max_change:.0%} cannot be applied "
                           "relative to it")
        else:
            lim = abs(current) * c.max_change
            if abs(v - current) > lim:
                v = current + math.copysign(lim, v - current)
                reasons.append(f"{name} may move at most {c.max_change:.0%} per apply (from {current:.4g}): "
                               f"{float(level):.4g} cut to {v:.4g}")
    if c.min is not None and v < c.min:
        reasons.append(f"{name} {v:.4g} is below the rule's minimum {c.min:g}")
        v = c.min
    if c.max is not None and v > c.max:
        reasons.append(f"{name} {v:.4g} is above the rule's maximum {c.max:g}")
        v = c.max
    return Constrained(v, float(level), tuple(reasons))


def constrain_pair(warning: float | None, critical: float | None, comparator: str,
                   current: tuple[float | None, float | None], c: Constraints, *,
                   last: tuple[LastChange | None, LastChange | None] = (None, None),
                   now: Any = None) -> tuple[Constrained, Constrained]:
    """:func:`constrain` both levels, then keep warning on the near side of critical.

    When the constrained critical would not lie beyond the constrained warning (in the
    comparator's direction), critical is dropped (None) and the reason says so.
    """
    w = constrain(warning, current[0], c, last=last[0], now=now, name="warning")
    k = constrain(critical, current[1], c, last=last[1], now=now, name="critical")
    if w.value is not None and k.value is not None:
        up = comparator in (">", ">=")
        if (k.value <= w.value) if up else (k.value >= w.value):
            k = Constrained(None, k.unconstrained, k.reasons + (
                f"critical {k.value:.4g} would not lie beyond warning {w.value:.4g}; no critical level is set",))
    return w, k


def last_changes(history: Iterable[tuple[Any, Iterable[Mapping[str, Any]]]], name: str
                 ) -> tuple[LastChange | None, LastChange | None]:
    """The last applied change of rule ``name``'s warning and critical levels.

    ``history`` is the versions in force, oldest first, each ``(in force from, rule dicts)``. A
    level's change is a version whose value differs from the version before it (both set); a level
    added or removed is not a change the oscillation guard can reverse.
    """
    prev: dict[str, float | None] = {"warning": None, "critical": None}
    out: dict[str, LastChange | None] = {"warning": None, "critical": None}
    for at, rules in history:
        d = next((r for r in rules if r.get("name") == name), None)
        for lvl in out:
            new = None if d is None or d.get(lvl) is None else float(d[lvl])
            old = prev[lvl]
            if old is not None and new is not None and old != new:
                t = pd.Timestamp(at)
                out[lvl] = LastChange(old, new, t.tz_localize("UTC") if t.tz is None else t)
            prev[lvl] = new
    return out["warning"], out["critical"]
