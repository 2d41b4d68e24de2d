"""Guard against CSV formula injection in anything the studio exports.

A spreadsheet treats a cell starting with ``=``, ``+``, ``-``, ``@``, TAB or CR as a formula, so a
series key or note such as ``=HYPERLINK(...)`` coming from an uploaded file could run when a user opens
an export. :func:`safe_cell` prefixes such strings with a single quote; plain numbers (``-12.5``,
``+3``, ``-1e-5``) are left alone so numeric columns stay numeric.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|Inf|infinity|Infinity)")


def safe_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` if it is a string a spreadsheet would run as a formula.

    Non-strings (numbers, None, timestamps) are returned unchanged, as are strings that are plain
    numbers such as ``-12.5``.
    """
    if not isinstance(value, str) or not value.startswith(FORMULA_PREFIXES):
        return value
    if _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


def safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every string cell and column name passed through :func:`safe_cell`."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(safe_cell).astype(object)
    out.columns = [safe_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out


def to_safe_csv(df: pd.DataFrame, **kwargs: Any) -> str:
    """CSV text of ``df`` (no index unless asked) with formula-like strings neutralised."""
    kwargs.setdefault("index", False)
    return safe_frame(df).to_csv(**kwargs)
