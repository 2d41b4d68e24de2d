"""The only place that speaks SQL: a DuckDB file with numbered migrations. See :class:`Store`."""

from core.data.store.base import DEFAULT_DB, IngestReport, Store, default_db_path

__all__ = ["DEFAULT_DB", "IngestReport", "Store", "default_db_path"]
