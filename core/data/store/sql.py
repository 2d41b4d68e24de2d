"""Small SQL-building helpers shared by the store's modules (no database access here)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import pandas as pd


class Store(Protocol):
    """What the store's modules need of :class:`core.data.store.base.Store` (so that a module the
    Store itself imports, such as the audit chain, need not import it back)."""

    path: str
    after_commit: list[Any]

    def transaction(self) -> AbstractContextManager[Any]: ...
    def query_df(self, sql: str, params: Any = None) -> pd.DataFrame: ...
    def query_all(self, sql: str, params: Any = None) -> list[tuple]: ...
    def query_one(self, sql: str, params: Any = None) -> tuple | None: ...


def where_clause(*conds: tuple[str, Any], always: Sequence[str] = ()) -> tuple[str, list[Any]]:
    """A parameterised ``WHERE`` body from optional filters.

    Each ``(sql, value)`` in ``conds`` holds exactly one ``?`` and is kept only when ``value`` is not
    None (an absent filter); ``always`` are fixed conditions without parameters. Returns the
    ``AND``-joined text (``"TRUE"`` when nothing applies) and its parameters, in order.
    """
    parts, params = list(always), []
    for sql, value in conds:
        if value is not None:
            parts.append(sql)
            params.append(value)
    return " AND ".join(parts) or "TRUE", params
