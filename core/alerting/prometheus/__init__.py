"""Prometheus: how studio series map to PromQL (:mod:`.mapping`) and alerting-rule export (:mod:`.export`)."""

from core.alerting.prometheus.export import (
           PromExport,
           prometheus_export,
           prometheus_rules,
           to_prometheus_yaml,
)
from core.alerting.prometheus.mapping import (
           PROM_DURATION,
           VECTOR_SELECTOR,
           PromMapping,
           is_vector_selector,
           prom_duration,
)

__all__ = ["PROM_DURATION", "VECTOR_SELECTOR", "PromExport", "PromMapping", "is_vector_selector",
           "prom_duration", "prometheus_export", "prometheus_rules", "to_prometheus_yaml"]
