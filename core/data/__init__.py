"""Data layer: reading metric exports (:mod:`.ingest`), the points frame (:mod:`.frame`), data quality
(:mod:`.quality`), incident windows (:mod:`.incidents`) and the DuckDB store (:mod:`.store`, the only code
that speaks SQL). Imports nothing above itself."""
