"""Every detector by registry name (the members and the ensemble) and :func:`make_detector`."""

from __future__ import annotations

from typing import Any

from core.analysis.detect.base import Detector
from core.analysis.detect.ensemble import EnsembleDetector
from core.analysis.detect.registry import MEMBERS
from core.errors import ValidationError

DETECTORS: dict[str, type[Detector]] = {**MEMBERS, EnsembleDetector.name: EnsembleDetector}
DEFAULT_DETECTOR = "ensemble"


def make_detector(name: str = DEFAULT_DETECTOR, **params: Any) -> Detector:
    """A new detector from the registry by name, with keyword parameters for its constructor."""
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise ValidationError(f"unknown detector {name!r}; expected one of {sorted(DETECTORS)}",
                              path="detector") from None
    return cls(**params)
