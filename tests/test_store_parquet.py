"""Points as Parquet partitions (core.data.store.parquet): DuckDB writes one Hive-style directory per
batch, a partition reads back exactly (missing values stay missing), bad input names the field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.__main__ import main
from core.data.store.parquet import export_points, partition_path, read_partition
from core.errors import ValidationError


def test_partitions_round_trip(tmp_path: Path) -> None:
    ts = pd.date_range("2026-01-01", periods=4, freq="1min", tz="UTC")
    pts = pd.DataFrame({"series": ["b"] * 4 + ["a"] * 4 + ["c"] * 4, "ts": list(ts) * 3,
                        "value": [1.0, np.nan, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]})
    out = export_points(pts, str(tmp_path / "deep" / "run"), [1] * 4 + [0] * 4 + [1] * 4)
    assert out == {0: partition_path(str(tmp_path / "deep" / "run"), 0), 1: str(tmp_path / "deep" / "run") + "/batch=1"}
    one = read_partition(out[1])
    assert one["series"].tolist() == ["b"] * 4 + ["c"] * 4                 # sorted by series, then time
    exp = pts[pts["series"] != "a"].sort_values(["series", "ts"]).reset_index(drop=True)
    exp["ts"] = exp["ts"].dt.as_unit("ns")
    pd.testing.assert_frame_equal(one, exp.astype({"series": one["series"].dtype}), check_dtype=True)
    assert np.isnan(one["value"].iloc[1]) and str(one["ts"].dtype) == "datetime64[ns, UTC]"
    assert read_partition(out[0])["value"].tolist() == [5.0, 6.0, 7.0, 8.0]


def test_bad_input_names_the_field(tmp_path: Path) -> None:
    pts = pd.DataFrame({"series": ["a"], "ts": [pd.Timestamp("2026-01-01", tz="UTC")], "value": [1.0]})
    with pytest.raises(ValidationError, match="batch has 2 entries"):
        export_points(pts, str(tmp_path), [0, 1])
    with pytest.raises(ValidationError, match="lacks column 'value'"):
        export_points(pts.drop(columns="value"), str(tmp_path), [0])


def test_cli_parquet_dir_needs_a_scheduler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "m.csv"
    f.write_text("timestamp,series,value\n2026-01-01T00:00:00Z,a,1\n")
    assert main(["recommend", str(f), "--parquet-dir", str(tmp_path), "--json"]) == 2
    assert "--parquet-dir is only used with --scheduler" in capsys.readouterr().err
