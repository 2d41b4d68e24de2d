"""The member detectors by name, for :class:`~core.analysis.detect.ensemble.EnsembleDetector` and the
package registry (:data:`core.analysis.detect.DETECTORS` adds the ensemble itself)."""

from __future__ import annotations

from typing import Any

from core.analysis.detect.base import Detector
from core.analysis.detect.cusum import CusumDetector
from core.analysis.detect.discord import MatrixProfileDiscord
from core.analysis.detect.drift import DriftZScore
from core.analysis.detect.entropy import DistributionChange
from core.analysis.detect.forecast import EwmaResidual
from core.analysis.detect.iforest import IsolationForestDetector
from core.analysis.detect.seasonal import SeasonalZScore
from core.errors import ValidationError

#: Single detectors (everything an ensemble can be made of), by registry name.
MEMBERS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (SeasonalZScore, CusumDetector, EwmaResidual, IsolationForestDetector, DriftZScore,
                DistributionChange, MatrixProfileDiscord)
}


def make_member(name: str, **params: Any) -> Detector:
    """A new single detector by registry name, with keyword parameters for its constructor."""
    try:
        cls = MEMBERS[name]
    except KeyError:
        raise ValidationError(f"unknown detector {name!r}; expected one of {sorted(MEMBERS)}",
                              path="detector") from None
    return cls(**params)
