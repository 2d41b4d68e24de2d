"""Analysis layer: per-series statistics over the data layer: baselines, trend and change points,
seasonality, forecasts, the causal anomaly detectors (:mod:`.detect`), event and NAB scoring, and the
per-series pipeline (:mod:`.pipeline`). Pure functions of DataFrames; no store access."""
