"""threshold studio analytics and domain package.

Pure functions and small dataclasses over pandas/numpy. This package never imports streamlit;
the Streamlit pages in ``pages/`` are thin callers of what lives here.

The canonical in-memory shape of metric data is a *points frame*: a DataFrame with columns
``series`` (str, the series key such as ``latency_p95_ms{service="api"}``), ``ts`` (tz-aware UTC
timestamps) and ``value`` (float64, NaN kept as missing). See :mod:`core.frame`.
"""

__version__ = "0.1.0"
