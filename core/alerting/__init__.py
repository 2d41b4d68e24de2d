"""Alerting layer: alert rules (:mod:`.rules`), their replay over history and the threshold sweep
(:mod:`.replay`), threshold recommendations (:mod:`.recommend`) and the Prometheus mapping and export
(:mod:`.prometheus`)."""
