"""Settings of the automatic rollback triggers (:mod:`core.policy.triggers`), kept with a policy version in
``meta["rollback_triggers"]``. A leaf module so the policy YAML parser can check them on import."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import ValidationError

TRIGGERS = ("alert_storm", "missed_incident", "slo_burn")
MODES = ("rollback", "propose")


@dataclass(frozen=True)
class TriggerConfig:
    """Rollback trigger settings of one change (see the module doc for each field's meaning)."""

    mode: str = "rollback"
    enabled: tuple[str, ...] = TRIGGERS
    storm_factor: float = 2.0
    storm_min_hours: float = 6.0
    storm_min_episodes: int = 3
    slo_severities: tuple[str, ...] = ("critical",)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def trigger_config(meta: Mapping[str, Any] | None) -> TriggerConfig:
    """The :class:`TriggerConfig` kept in a version's meta (defaults for what it leaves out).
    :class:`ValidationError` names the field on a bad value."""
    raw = (meta or {}).get("rollback_triggers") or {}
    p = "rollback_triggers"
    if not isinstance(raw, Mapping):
        raise ValidationError(f"{p} must be a mapping", path=p)
    unknown = set(raw) - set(TriggerConfig.__dataclass_fields__)
    if unknown:
        raise ValidationError(f"{p}: unknown field(s) {sorted(unknown)}; expected some of "
                              f"{sorted(TriggerConfig.__dataclass_fields__)}", path=p)
    d = TriggerConfig()
    mode = raw.get("mode", d.mode)
    if mode not in MODES:
        raise ValidationError(f"{p}.mode must be one of {list(MODES)}, got {mode!r}", path=f"{p}.mode")
    enabled = raw.get("enabled", list(d.enabled))
    if not isinstance(enabled, (list, tuple)) or any(e not in TRIGGERS for e in enabled):
        raise ValidationError(f"{p}.enabled must list some of {list(TRIGGERS)}, got {enabled!r}", path=f"{p}.enabled")

    def num(k: str, minimum: float) -> float:
        v = raw.get(k, getattr(d, k))
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < minimum:
            raise ValidationError(f"{p}.{k} must be a number >= {minimum:g}, got {v!r}", path=f"{p}.{k}")
        return float(v)

    sev = raw.get("slo_severities", list(d.slo_severities))
    if not isinstance(sev, (list, tuple)) or any(s not in ("critical", "warning") for s in sev):
        raise ValidationError(f"{p}.slo_severities must list 'critical' and/or 'warning', got {sev!r}",
                              path=f"{p}.slo_severities")
    return TriggerConfig(mode, tuple(enabled), num("storm_factor", 1.0), num("storm_min_hours", 0.0),
                         int(num("storm_min_episodes", 1)), tuple(sev))
