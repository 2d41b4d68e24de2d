"""Every detector by registry name (the members and the ensemble) and :func:`make_detector`."""

from __future__ import annotations

from typing import Any

from core.analysis.detect.base import Detector
from core.analysis.detect.ensemble import DEFAULT_MEMBERS, DEFAULT_WEIGHTS, EnsembleDetector
from core.analysis.detect.registry import MEMBERS, make_member
from core.errors import ValidationError

DETECTORS: dict[str, type[Detector]] = {**MEMBERS, EnsembleDetector.name: EnsembleDetector}

#: Named configurations (registry name -> class and constructor parameters), chosen like any detector.
#: ``ensemble_burst``: the ensemble without the EWMA member, with the surprise-level test (5 points
#: against the previous 2016, a week of 5-minute data) for bursty series; see the README for the
#: nested leave-one-category-out evidence.
#: ``ensemble_discord30m`` / ``ensemble_discord1h``: the default ensemble with a 30-minute / 1-hour
#: discord subsequence instead of 2 hours. Each of the three (and ``ensemble``) with other Simes
#: weights: ``_plain`` (every member 1), ``_ewma1`` (EWMA 1, discord 2), ``_discord1`` (EWMA 0.5,
#: discord 1); ``core.eval nab --loco`` chooses among the twelve per fold.
WEIGHTINGS: dict[str, dict[str, float]] = {
    "": dict(DEFAULT_WEIGHTS),
    "_ewma1": {**DEFAULT_WEIGHTS, "ewma_residual": 1.0},
    "_discord1": {**DEFAULT_WEIGHTS, "mp_discord": 1.0},
    "_plain": {},
}
_DISCORD = {"": None, "_discord30m": 1800.0, "_discord1h": 3600.0}


def _ensemble_preset(window_s: float | None, weights: dict[str, float]) -> dict[str, Any]:
    members = DEFAULT_MEMBERS if window_s is None else (
        *(m for m in DEFAULT_MEMBERS if m != "mp_discord"), ("mp_discord", {"window_s": window_s}))
    return {"members": members, "weights": weights}


PRESETS: dict[str, tuple[type[Detector], dict[str, Any]]] = {
    "ensemble_burst": (EnsembleDetector, {"members": ("seasonal_z", "cusum", "drift_z", "dist_change"),
                                          "smooth_points": 5, "smooth_baseline": 2016, "weights": {}}),
    **{f"ensemble{d}{w}": (EnsembleDetector, _ensemble_preset(sec, weights))
       for d, sec in _DISCORD.items() for w, weights in WEIGHTINGS.items() if d or w},
}
#: The designs ``core.eval nab --loco`` chooses among, the default first (ties go to the first).
ENSEMBLE_DESIGNS = tuple(f"ensemble{d}{w}" for d in _DISCORD for w in WEIGHTINGS)
DEFAULT_DETECTOR = "ensemble"


def detector_names() -> list[str]:
    """Every name :func:`make_detector` accepts, sorted."""
    return sorted([*DETECTORS, *PRESETS])


def user_detector_names() -> list[str]:
    """The detectors offered to users (Trends page): every member, the ensemble, ``ensemble_burst`` and
    the discord-length variants with the default weights; the other weightings exist for
    ``core.eval nab --loco`` to choose among and stay reachable by name (CLI ``--detector``)."""
    return sorted([*DETECTORS, "ensemble_burst", *(f"ensemble{d}" for d in _DISCORD if d)])


def make_detector(name: str = DEFAULT_DETECTOR, **params: Any) -> Detector:
    """A new detector from the registry by name, with keyword parameters for its constructor."""
    if name in PRESETS:
        cls, preset = PRESETS[name]
        return cls(**{**preset, "name": name, **params})
    if name == EnsembleDetector.name:
        return EnsembleDetector(**params)
    if name not in MEMBERS:
        raise ValidationError(f"unknown detector {name!r}; expected one of {detector_names()}", path="detector")
    return make_member(name, **params)
