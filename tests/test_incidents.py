"""Incident windows: CSV and NAB windows.json parsing, errors naming row/column, storing."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from core.data.incidents import COLUMNS, import_incidents, read_incidents, split_source, windows_sha256
from core.errors import ConflictError, IngestError


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def test_csv_iso_times_and_global_rows():
    text = (
        "series,start,end,note,kind\n"
        ",2026-01-01T00:00:00+02:00,2026-01-01T01:00:00Z,whole fleet,maintenance\n"
        "cpu_pct{host=\"a\"},2026-01-01 03:00,2026-01-01 04:30:15,,\n"
    )
    df = read_incidents(text.encode(), "inc.csv")
    assert list(df.columns) == COLUMNS
    assert df["series"].tolist() == [None, 'cpu_pct{host="a"}']
    assert df["start"].tolist() == [ts("2025-12-31 22:00"), ts("2026-01-01 03:00")]
    assert df["end"].tolist() == [ts("2026-01-01 01:00"), ts("2026-01-01 04:30:15")]
    assert df["kind"].tolist() == ["maintenance", None]
    assert df["note"].tolist() == ["whole fleet", None]
    assert str(df["start"].dtype) == "datetime64[ns, UTC]"
    # the zone-less cells (row 3) are read as UTC, and the reader says so (once per column)
    assert [w for w in df.attrs["warnings"] if "no time zone" in w] == [
        "1 timestamp(s) have no time zone (e.g. '2026-01-01 03:00'); read as UTC",
        "1 timestamp(s) have no time zone (e.g. '2026-01-01 04:30:15'); read as UTC"]


@pytest.mark.parametrize("start, end, want_end", [
    ("1767225600", "1767225660.5", "2026-01-01 00:01:00.5"),          # epoch seconds
    ("1767225600000", "1767225720000", "2026-01-01 00:02"),           # epoch ms (unit from the size)
])
def test_csv_epoch_columns(start, end, want_end):
    df = read_incidents(f"series,start,end\nlat,{start},{end}\n".encode(), "e.csv")
    assert (df["start"].iloc[0], df["end"].iloc[0]) == (ts("2026-01-01"), ts(want_end))


@pytest.mark.parametrize("start, row, words", [
    ("946684799", 2, "before 2000"),        # 1999-12-31T23:59:59Z as epoch seconds: refused like in ingest
    ("1000", 2, "before 2000"),             # 1970-01-01T00:16:40Z: a misread, not a label
])
def test_pre_2000_epoch_refused_like_metric_files(start, row, words):
    with pytest.raises(IngestError) as e:
        read_incidents(f"series,start,end\nm,{start},1767225600\n".encode(), "old.csv")
    assert (e.value.row, e.value.column) == (row, "start") and words in str(e.value)
    # ISO 8601 may still say 1999
    df = read_incidents(b"series,start,end\nm,1999-12-31T23:59:59Z,2000-01-01T00:00:00Z\n", "iso.csv")
    assert df["start"].iloc[0] == ts("1999-12-31 23:59:59")


def test_one_time_format_per_column():
    with pytest.raises(IngestError) as e:
        read_incidents(b"series,start,end\nm,2026-01-01,2026-01-02\nm,1767225600,2026-01-03\n", "mix.csv")
    assert (e.value.row, e.value.column) == (3, "start") and "one format per file" in str(e.value)
    with pytest.raises(IngestError) as e:   # seconds then ms in one column
        read_incidents(b"series,start,end\nm,1767225600,1767225601\nm,1767225600000,1767225601\n", "u.csv")
    assert (e.value.row, e.value.column) == (3, "start") and "mixed epoch units" in str(e.value)


def test_header_only_csv_is_empty_not_an_error():
    df = read_incidents(b"series,start,end\n", "none.csv")
    assert df.empty and list(df.columns) == COLUMNS


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


TEXT = b"series,start,end,kind\nm,2026-01-01,2026-01-02,spike\n,2026-01-03,2026-01-04,\n"


def test_import_into_store_records_label_and_hash(store):
    res = import_incidents(store, TEXT, name="labels.csv")
    assert (res.stored, res.replaced, res.duplicate) == (2, 0, False)
    got = store.list_incidents()
    assert len(got) == 2 and set(got["source"]) == {f"labels.csv [sha256:{res.sha256}]"}
    assert split_source(got["source"])["label"].tolist() == ["labels.csv", "labels.csv"]
    assert got["series"].isna().sum() == 1
    assert len(store.list_incidents(series="m")) == 2          # its own + the global one
    assert res.message == "labels.csv: 2 incident window(s) stored."


def test_same_windows_are_never_stored_twice(store):
    first = import_incidents(store, TEXT, name="labels.csv")
    again = import_incidents(store, TEXT, name="labels.csv")                    # no replace: no doubling
    assert again.duplicate and (again.stored, again.already) == (0, 2)
    moved = import_incidents(store, TEXT, name="/elsewhere/copy.csv")           # same content, other name
    assert moved.duplicate
    # same windows re-saved: CRLF, other column order, times written with a zone -> same hash
    resaved = (b"kind,end,start,series\r\nspike,2026-01-02T00:00:00Z,2026-01-01T00:00:00+00:00,m\r\n"
               b",2026-01-04T01:00:00+01:00,2026-01-03T00:00:00Z,\r\n")
    assert windows_sha256(read_incidents(resaved, "r.csv")) == first.sha256
    assert import_incidents(store, resaved, name="resaved.csv").duplicate
    assert import_incidents(store, TEXT, name="labels.csv", replace=True).duplicate   # nothing to change
    assert len(store.list_incidents()) == 2


def test_changed_file_needs_replace_and_replace_is_by_label(store):
    import_incidents(store, TEXT, name="/a/incidents.csv")
    other = b"series,start,end\nq,2026-02-01,2026-02-02\n"
    import_incidents(store, other, name="/b/incidents.csv")           # same base name, other directory
    edited = TEXT + b"m,2026-01-05,2026-01-06,spike\n"
    with pytest.raises(ConflictError) as e:
        import_incidents(store, edited, name="/a/incidents.csv")
    assert "2 incident window(s) imported earlier from '/a/incidents.csv'" in str(e.value)
    assert len(store.list_incidents()) == 3                            # nothing written
    res = import_incidents(store, edited, name="/a/incidents.csv", replace=True)
    assert (res.stored, res.replaced) == (3, 2)
    labels = split_source(store.list_incidents()["source"])["label"]
    assert sorted(labels) == ["/a/incidents.csv"] * 3 + ["/b/incidents.csv"]   # /b's window untouched


def test_windows_stored_before_hashes_count_by_content(store):
    store.add_incidents(read_incidents(TEXT, "labels.csv"), source="labels.csv")   # an older import, no hash
    assert import_incidents(store, TEXT, name="labels.csv").duplicate
    with pytest.raises(ConflictError):
        import_incidents(store, TEXT + b"m,2026-01-05,2026-01-06,\n", name="labels.csv")
    res = import_incidents(store, TEXT + b"m,2026-01-05,2026-01-06,\n", name="labels.csv", replace=True)
    assert (res.stored, res.replaced) == (3, 2) and len(store.list_incidents()) == 3


def test_path_source_is_labelled_by_absolute_path(store, tmp_path):
    (tmp_path / "x").mkdir()
    p = tmp_path / "x" / "incidents.csv"
    p.write_bytes(TEXT)
    res = import_incidents(store, p)
    assert res.label == str(p.resolve())


def test_bad_file_stores_nothing(store):
    with pytest.raises(IngestError):
        import_incidents(store, b"series,start,end\nm,2026-01-01,2026-01-02\nm,2026-01-03,2026-01-01\n",
                         name="bad.csv")
    assert store.list_incidents().empty


def _roles(tmp_path, monkeypatch, user: str, default: str) -> None:
    roles = tmp_path / "roles.toml"
    roles.write_text(f'[roles]\ndefault = {default}\n"editor-ed" = ["editor"]\n')
    monkeypatch.setenv("STUDIO_ROLES", str(roles))
    monkeypatch.setenv("STUDIO_USER", user)


def test_cli(tmp_path, capsys, monkeypatch):
    from core.__main__ import main
    from core.data.store import Store
    from core.data.store.audit import list_audit

    _roles(tmp_path, monkeypatch, "editor-ed", "[]")
    db = str(tmp_path / "cli.duckdb")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    good = tmp_path / "a" / "incidents.csv"
    good.write_text("series,start,end\nm,2026-01-01,2026-01-02\n,2026-01-03,2026-01-04\n")
    assert main(["incidents", str(good), "--db", db]) == 0
    out = capsys.readouterr().out
    assert "2 incident window(s) stored" in out and "1 global" in out and "not in the database" in out
    assert "recorded as editor-ed" in out
    assert main(["incidents", str(good), "--db", db]) == 0             # again: nothing doubles
    assert "already stored" in capsys.readouterr().out
    twin = tmp_path / "b" / "incidents.csv"                             # another directory's incidents.csv
    twin.write_text("series,start,end\nq,2026-03-01,2026-03-02\n")
    assert main(["incidents", str(twin), "--db", db, "--replace"]) == 0
    with Store(db) as s:
        inc = s.list_incidents()
        assert len(inc) == 3                                            # a's windows were not replaced
        acts = list_audit(s, action="import_incidents")
    assert len(acts) == 2 and set(acts["actor"]) == {"editor-ed"}
    bad = tmp_path / "bad.csv"
    bad.write_text("series,start\nm,2026-01-01\n")
    assert main(["incidents", str(bad), "--db", db]) == 2
    assert "missing column" in capsys.readouterr().err


def test_cli_viewer_is_refused_and_nothing_written(tmp_path, capsys, monkeypatch):
    from core.__main__ import main
    from core.data.store import Store

    _roles(tmp_path, monkeypatch, "visitor", "[]")
    db = str(tmp_path / "v.duckdb")
    f = tmp_path / "inc.csv"
    f.write_bytes(TEXT)
    assert main(["incidents", str(f), "--db", db]) == 2
    err = capsys.readouterr().err
    assert "visitor may not" in err and "'editor' role" in err
    with Store(db) as s:
        assert s.list_incidents().empty
