"""Incident windows: CSV and NAB windows.json parsing, errors naming row/column, storing."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from core.errors import IngestError
from core.incidents import COLUMNS, import_incidents, read_incidents


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def test_csv_all_time_forms_and_global_rows():
    text = (
        "series,start,end,note,kind\n"
        ",2026-01-01T00:00:00+02:00,2026-01-01T01:00:00Z,whole fleet,maintenance\n"
        "cpu_pct{host=\"a\"},2026-01-01 03:00,2026-01-01 04:30:15,,\n"
        "lat,1767225600,1767225660.5,epoch seconds,\n"
        "lat,1767225600000,1767225720000,epoch ms,spike\n"
    )
    df = read_incidents(text.encode(), "inc.csv")
    assert list(df.columns) == COLUMNS
    assert df["series"].tolist() == [None, 'cpu_pct{host="a"}', "lat", "lat"]
    assert df["start"].tolist() == [ts("2025-12-31 22:00"), ts("2026-01-01 03:00"),
                                    ts("2026-01-01 00:00"), ts("2026-01-01 00:00")]
    assert df["end"].tolist() == [ts("2026-01-01 01:00"), ts("2026-01-01 04:30:15"),
                                  ts("2026-01-01 00:01:00.5"), ts("2026-01-01 00:02")]
    assert df["kind"].tolist() == ["maintenance", None, None, "spike"]
    assert df["note"].tolist() == ["whole fleet", None, "epoch seconds", "epoch ms"]
    assert str(df["start"].dtype) == "datetime64[ns, UTC]"


def test_csv_optional_columns_any_order_and_case():
    df = read_incidents(io.BytesIO("\ufeffEnd,Series,START\n2026-02-01,m,2026-01-31\n".encode()), "x.csv")
    assert df.iloc[0]["series"] == "m"
    assert (df.iloc[0]["start"], df.iloc[0]["end"]) == (ts("2026-01-31"), ts("2026-02-01"))
    assert df.iloc[0]["kind"] is None and df.iloc[0]["note"] is None


def test_csv_from_path(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("series,start,end\nm,2026-01-01,2026-01-02\n")
    assert len(read_incidents(p)) == 1
    with pytest.raises(IngestError) as e:
        read_incidents(tmp_path / "nope.csv")
    assert e.value.file.endswith("nope.csv")


@pytest.mark.parametrize("text, row, column, words", [
    ("series,start\nm,2026-01-01\n", 1, "end", "missing column"),
    ("series,start,end\nm,2026-01-01,2026-01-02\nm,2026-01-03,2026-01-02\n", 3, "end", "before it starts"),
    ("series,start,end\nm,yesterday,2026-01-02\n", 2, "start", "'yesterday' is not a time"),
    ("series,start,end\nm,2026-01-01,2026-01-02\nm,,2026-01-02\n", 3, "start", "is empty"),
    ("series,start,end\nm,2026-01-01,2026-13-45\n", 2, "end", "not a time"),
])
def test_csv_errors_name_row_and_column(text, row, column, words):
    with pytest.raises(IngestError) as e:
        read_incidents(text.encode(), "bad.csv")
    assert (e.value.file, e.value.row, e.value.column) == ("bad.csv", row, column)
    assert words in str(e.value)


def test_empty_csv_file():
    with pytest.raises(IngestError) as e:
        read_incidents(b"", "empty.csv")
    assert "empty" in str(e.value)


def test_nab_windows_json_real_file(nab_dir):
    path = nab_dir / "windows.json"
    raw = json.loads(path.read_text())
    df = read_incidents(path)
    assert len(df) == sum(len(w) for w in raw.values())
    first = df[df["series"] == "art_daily_flatmiddle"].iloc[0]
    assert first["start"] == ts("2014-04-10 07:15:00")
    assert first["end"] == ts("2014-04-11 16:45:00")
    assert first["kind"] == "anomaly_window" and first["note"] == "artificialWithAnomaly"
    two = df[df["series"] == "ec2_cpu_utilization_24ae8d"]
    assert two["start"].tolist() == [ts("2014-02-26 13:45"), ts("2014-02-27 08:55")]
    assert "art_daily_no_noise" not in set(df["series"])     # empty window list -> no rows
    assert (df["end"] >= df["start"]).all() and df["series"].notna().all()


def test_nab_series_key_matches_the_ingested_file(store, nab_dir):
    store.ingest(nab_dir / "data" / "realKnownCause" / "nyc_taxi.csv")
    assert "nyc_taxi" in store.series_keys()
    df = read_incidents(nab_dir / "windows.json")
    assert (df["series"] == "nyc_taxi").sum() == 5


def test_nab_shape_errors_and_dict_source():
    good = {"cat/a.csv": [["2026-01-01 00:00:00.000000", "2026-01-01 01:00:00.000000"]], "cat/b.csv": []}
    df = read_incidents(good)
    assert df["series"].tolist() == ["a"] and df["note"].tolist() == ["cat"]
    with pytest.raises(IngestError) as e:
        read_incidents(json.dumps({"cat/a.csv": [["2026-01-01"]]}).encode(), "w.json")
    assert e.value.column == "cat/a.csv[0]"
    with pytest.raises(IngestError) as e:
        read_incidents(json.dumps({"cat/a.csv": [["2026-01-01", "2026-01-02"], ["2026-01-05", "never"]]})
                       .encode(), "w.json")
    assert e.value.column == "cat/a.csv[1][1]" and "'never' is not a time" in str(e.value)
    with pytest.raises(IngestError) as e:
        read_incidents(json.dumps({"cat/a.csv": [["2026-01-05", "2026-01-01"]]}).encode(), "w.json")
    assert e.value.column == "cat/a.csv[0][1]" and "before it starts" in str(e.value)
    with pytest.raises(IngestError):
        read_incidents(b"[1, 2]", "w.json")
    with pytest.raises(IngestError):
        read_incidents(b"{not json", "w.json")


def test_import_into_store_and_replace(store):
    text = b"series,start,end,kind\nm,2026-01-01,2026-01-02,spike\n,2026-01-03,2026-01-04,\n"
    import_incidents(store, text, name="labels.csv")
    got = store.list_incidents()
    assert len(got) == 2 and set(got["source"]) == {"labels.csv"}
    assert got["series"].isna().sum() == 1
    assert len(store.list_incidents(series="m")) == 2          # its own + the global one
    import_incidents(store, text, name="labels.csv", replace=True)
    assert len(store.list_incidents()) == 2                     # replaced, not doubled
    import_incidents(store, text, name="labels.csv")
    assert len(store.list_incidents()) == 4


def test_bad_file_stores_nothing(store):
    with pytest.raises(IngestError):
        import_incidents(store, b"series,start,end\nm,2026-01-01,2026-01-02\nm,2026-01-03,2026-01-01\n",
                         name="bad.csv")
    assert store.list_incidents().empty


def test_cli(tmp_path, capsys):
    from core.__main__ import main

    db = str(tmp_path / "cli.duckdb")
    good = tmp_path / "inc.csv"
    good.write_text("series,start,end\nm,2026-01-01,2026-01-02\n,2026-01-03,2026-01-04\n")
    assert main(["incidents", str(good), "--db", db]) == 0
    out = capsys.readouterr().out
    assert "stored 2 incident window(s)" in out and "1 global" in out and "not in the database" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("series,start\nm,2026-01-01\n")
    assert main(["incidents", str(bad), "--db", db]) == 2
    assert "missing column" in capsys.readouterr().err
