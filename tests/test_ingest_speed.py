"""Ingest at speed keeps every rule.

Text column types are inferred from a sample and the distinct values instead of every row, rows are
numbered only when a bad one has to be named, timestamps without a zone are kept as they are, and
exact duplicate rows are found through a hash of every column: each of these must decide exactly
as the slow way did.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from likely.data import validate as v
from likely.data.quality import exact_duplicate_rows
from likely.data.schema import CANONICAL
from likely.data.sources import read_source
from likely.engine import connect
from likely.errors import DataError, NotFoundError

if TYPE_CHECKING:
    import ibis.expr.types as ir

ROWS = v.SAMPLE_ROWS + 5_000  # every awkward value below sits past the sample
LATE = v.SAMPLE_ROWS + 100


def write_csv(path: Path, columns: dict[str, list[str]]) -> Path:
    names = list(columns)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(names)
        out.writerows(zip(*(columns[n] for n in names)))
    return path


def late(values: list[str], value: str, at: int = LATE) -> list[str]:
    values = list(values)
    values[at] = value
    return values


def every_row_types(table: ir.Table, exclude: set[str]) -> dict[str, ibis.DataType]:
    """The rule as it was: try every candidate type on every row."""
    types = {}
    for column in table.columns:
        if column in exclude or not table[column].type().is_string():
            continue
        col = table[column]
        n = int(col.count().execute())
        for target in v.CANDIDATES:
            if n and int(col.count(where=v._parses(col, target)).execute()) == n:
                types[column] = target
                break
    return types


AWKWARD = {
    "zero_padded_id": [f"{i:06d}" for i in range(ROWS)],
    "numbers_then_text": late([str(i) for i in range(ROWS)], "n/a"),
    "integers_then_decimal": late([str(i % 50) for i in range(ROWS)], "2.5"),
    "decimals": [f"{i / 7:.3f}" for i in range(ROWS)],
    "dates": [f"2025-01-{1 + i % 28:02d}" for i in range(ROWS)],
    "dates_then_a_time": late([f"2025-02-{1 + i % 28:02d}" for i in range(ROWS)],
                              "2025-02-03 09:30:00"),
    "offsets": [f"2025-03-01T{i % 24:02d}:15:00+02:00" for i in range(ROWS)],
    "booleans": ["true" if i % 3 else "false" for i in range(ROWS)],
    "zero_one_then_true": late([str(i % 2) for i in range(ROWS)], "true"),
    "mostly_empty_then_number": late([""] * ROWS, "42"),
    "all_empty": [""] * ROWS,
    "words": [("web", "app", "email")[i % 3] for i in range(ROWS)],
    "words_that_look_like_numbers_first": late(["7"] * ROWS, "seven", at=ROWS - 1),
}


@pytest.fixture
def awkward_csv(tmp_path) -> Path:
    columns = {"profile_id": [f"p{i}" for i in range(ROWS)],
               "timestamp": ["2025-01-01"] * ROWS, **AWKWARD}
    return write_csv(tmp_path / "awkward.csv", columns)


@pytest.mark.parametrize("columnar", [False, True], ids=["in-one-read", "column-by-column"])
def test_inference_from_distinct_values_decides_as_every_row_does(awkward_csv, columnar):
    table = read_source(connect(), awkward_csv, "csv")
    exclude = set(CANONICAL["events"])
    fast = v._infer_text_types(table, exclude, columnar=columnar)
    assert fast == every_row_types(table, exclude)
    # What the rule says, whichever way it is computed.
    assert fast["zero_padded_id"].is_int64() and fast["decimals"].is_float64()
    assert fast["dates"].is_date() and fast["offsets"].is_timestamp()
    assert fast["booleans"].is_boolean()
    # Nothing is lost: one decimal makes a float column, one time of day a timestamp column.
    assert fast["integers_then_decimal"].is_float64()
    assert fast["dates_then_a_time"].is_timestamp()
    assert fast["mostly_empty_then_number"].is_int64()  # empty CSV fields are missing values
    for text in ("numbers_then_text", "words", "words_that_look_like_numbers_first"):
        assert text not in fast  # stays text, as read
    assert "all_empty" not in fast


def test_inferred_types_reach_the_dataset_with_every_row(ws, awkward_csv):
    report = ws.ingest_events([awkward_csv], "awkward")
    assert report.rows_ingested == ROWS
    schema = ws.table("awkward").schema()
    assert schema["zero_padded_id"].is_int64() and schema["numbers_then_text"].is_string()
    df = ws.table("awkward").execute()
    assert (df.numbers_then_text == "n/a").sum() == 1
    assert (df.integers_then_decimal == 2.5).sum() == 1 and (df.decimals == 0.143).any()
    assert (df.dates_then_a_time == datetime(2025, 2, 3, 9, 30)).sum() == 1
    assert df.mostly_empty_then_number.notna().sum() == 1
    assert set(df.words) == {"web", "app", "email"}


def test_text_columns_of_a_parquet_file_are_typed_alike(ws, tmp_path, awkward_csv):
    frame = pd.read_csv(awkward_csv, dtype=str, keep_default_na=False).replace("", None)
    path = tmp_path / "awkward.parquet"
    frame.to_parquet(path)
    ws.ingest_events([path], "pq")
    ws.ingest_events([awkward_csv], "csv")
    assert ws.table("pq").schema() == ws.table("csv").schema()


def test_json_empty_strings_are_text_not_missing(ws, write):
    rows = [{"profile_id": f"p{i}", "timestamp": "2025-01-01", "tag": "" if i == 5 else str(i)}
            for i in range(20)]
    ws.ingest_events([write("e.jsonl", rows)], "js")
    assert ws.table("js").schema()["tag"].is_string()


def test_bad_rows_far_into_a_csv_are_named_by_their_record_number(ws, tmp_path):
    n = 200_000
    stamps = [f"2025-01-{1 + i % 28:02d}T10:00:00Z" for i in range(n)]
    stamps[150_000] = "soon"
    stamps[199_998] = "later"
    values = [str(i % 9) for i in range(n)]
    values[2] = "ten"
    path = write_csv(tmp_path / "big.csv", {"profile_id": [f"p{i % 977}" for i in range(n)],
                                            "timestamp": stamps, "value": values})
    with pytest.raises(DataError) as err:
        ws.ingest_events([path], "big")
    message = str(err.value)
    assert f"File '{path}'" in message
    assert ("2 row(s) with an unparseable timestamp in column 'timestamp': "
            "row 150001 'soon', row 199999 'later'") in message
    assert "1 row(s) with a non-numeric value in column 'value': row 3 'ten'" in message
    with pytest.raises(NotFoundError):
        ws.dataset("big")


def test_bad_rows_in_a_parquet_file_of_many_row_groups_are_named_by_their_record_number(
    ws, tmp_path
):
    n = 50_000
    ids = [f"p{i % 311}" for i in range(n)]
    ids[34_999] = None
    ids[49_999] = " "
    path = tmp_path / "groups.parquet"
    pq.write_table(pa.table({"profile_id": ids,
                             "timestamp": pa.array([datetime(2025, 1, 1)] * n)}),
                   path, row_group_size=4_000)
    with pytest.raises(DataError, match=r"2 row\(s\) with a missing profile id in column "
                                        r"'profile_id': row 35000 '', row 50000 ' '"):
        ws.ingest_events([path], "groups")
    report = ws.ingest_events([path], "groups", on_error="skip")
    assert (report.rows_read, report.rows_skipped, report.rows_ingested) == (n, 2, n - 2)


def test_a_row_with_two_problems_is_skipped_once(ws, write):
    path = write("two.csv", "profile_id,timestamp,value\np1,2025-01-01,1\np2,nope,x\n"
                            "p3,2025-01-03,y\n,2025-01-04,4\n")
    report = ws.ingest_events([path], "two", on_error="skip")
    assert (report.rows_read, report.rows_skipped, report.rows_ingested) == (4, 3, 1)
    found = {(p["column"], p["rows"]) for p in report.problems}
    assert found == {("timestamp", 1), ("value", 2), ("profile_id", 1)}


def test_a_good_file_is_read_without_row_numbers(tmp_path, write):
    """Numbering rows keeps every query above it on one core: only bad rows get numbers."""
    path = write("e.csv", "profile_id,timestamp,value\np1,2025-01-01,1\np2,2025-01-02,2\n")
    table = read_source(connect(), path, "csv")
    checked = v.validate(table, "events", path)
    assert "ROW_NUMBER" not in ibis.to_sql(checked.table).upper()
    assert checked.rows_read == 2 and checked.rows_skipped == 0


def test_a_csv_broken_past_its_start_is_reported_as_unreadable(ws, tmp_path):
    path = tmp_path / "broken.csv"
    lines = ["profile_id,timestamp"] + [f"p{i},2025-01-01" for i in range(60_000)]
    lines.append("p1,2025-01-01,extra,fields")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"File '.*broken.csv' could not be read as csv"):
        ws.ingest_events([path], "broken")
    with pytest.raises(NotFoundError):
        ws.dataset("broken")


def test_timestamps_without_a_zone_are_kept_and_zoned_ones_converted_to_utc(ws, tmp_path):
    when = [datetime(2025, 1, 3, 9, 30, 0, 123456), datetime(2025, 7, 1, 23, 59, 59)]
    cases = {
        "ns": pa.array(when, pa.timestamp("ns")),
        "ms": pa.array([w.replace(microsecond=0) for w in when], pa.timestamp("ms")),
        "paris": pa.array(when, pa.timestamp("us")).cast(pa.timestamp("us", tz="Europe/Paris")),
        "day": pa.array([w.date() for w in when], pa.date32()),
    }
    expected = {
        "ns": when,
        "ms": [w.replace(microsecond=0) for w in when],
        # pyarrow took the naive times as UTC instants; stored back as those UTC times.
        "paris": when,
        "day": [datetime(2025, 1, 3), datetime(2025, 7, 1)],
    }
    for name, stamps in cases.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"profile_id": ["a", "b"], "timestamp": stamps,
                                 "seen": stamps}), path)
        ws.ingest_events([path], name)
        schema = ws.table(name).schema()
        assert schema["timestamp"].is_timestamp() and schema["timestamp"].timezone is None
        df = ws.table(name).order_by("profile_id").execute()
        assert [t.to_pydatetime() for t in df.timestamp] == expected[name], name


def test_text_timestamps_with_offsets_zones_and_none(ws, write):
    path = write("z.csv", "profile_id,timestamp,seen\n"
                          "a,2025-01-03T09:30:00+02:00,2025-01-03T09:30:00+02:00\n"
                          "b,2025-01-03 09:30:00,2025-01-03 09:30:00\n"
                          "c,2025-01-03T09:30:00Z,2025-01-03T09:30:00Z\n"
                          "d,2025-01-03 09:30:00 America/New_York,2025-01-03\n")
    ws.ingest_events([path], "z")
    df = ws.table("z").order_by("profile_id").execute()
    assert [t.to_pydatetime() for t in df.timestamp] == [
        datetime(2025, 1, 3, 7, 30), datetime(2025, 1, 3, 9, 30), datetime(2025, 1, 3, 9, 30),
        datetime(2025, 1, 3, 14, 30)]
    assert ws.table("z").schema()["seen"].is_timestamp()
    assert df.seen.iloc[0].to_pydatetime() == datetime(2025, 1, 3, 7, 30)


def duplicates_by_grouping(df: pd.DataFrame) -> int:
    return int(len(df) - len(df.drop_duplicates()))


def test_exact_duplicate_rows_counts_identical_rows_only():
    con = connect()
    df = pd.DataFrame({
        "profile_id": ["a", "a", "a", "b", "b", "c", "c", None, None, "d"],
        "value": [1.0, 1.0, 1.0, None, None, 2.0, 2.5, 3.0, 3.0, 0.0],
        "tag": ["x", "x", "x", None, None, "y", "y", None, None, "z"],
        "n": [1, 1, 1, 2, 2, 3, 3, 4, 4, 5],
    })
    # a ×3 (2 extra), b ×2 with nulls (1), c differs in value (0), null ids ×2 (1).
    assert exact_duplicate_rows(con.create_table("d", df)) == 4 == duplicates_by_grouping(df)
    wide = pd.concat([df] * 300, ignore_index=True)
    wide["k"] = [i % 7 for i in range(len(wide))]
    assert exact_duplicate_rows(con.create_table("w", wide)) == duplicates_by_grouping(wide)
    assert exact_duplicate_rows(con.create_table("none", df.iloc[[0, 3, 5, 6]])) == 0


def test_dedupe_exact_still_drops_only_identical_rows_across_files(ws, write):
    header = "profile_id,timestamp,event_type,value,channel\n"
    a = write("a.csv", header + "p1,2025-01-01T10:00:00Z,buy,1,\np1,2025-01-01T10:00:00Z,buy,1,\n"
                                "p1,2025-01-01T10:00:00Z,buy,1,web\np2,2025-01-02,,,\n")
    b = write("b.csv", header + "p2,2025-01-02,,,\np1,2025-01-01T10:00:00+00:00,buy,1.0,\n"
                                "p1,2025-01-01T10:00:01Z,buy,1,\n")
    report = ws.ingest_events([a, b], "x", dedupe="exact")
    # Identical once typed: the +00:00 and Z times, 1 and 1.0; the one second later is not.
    assert (report.rows_read, report.rows_ingested, report.duplicates_dropped) == (7, 4, 3)
    assert ws.dataset("x").quality["exact_duplicate_rows"] == 0


def test_dedupe_exact_reports_the_duplicates_the_dataset_still_holds(ws, write):
    first = write("a.csv", "profile_id,timestamp,value\n"
                           "p1,2025-01-01,1\np1,2025-01-01,1\np2,2025-01-02,2\n")
    ws.ingest_events([first], "x")
    report = ws.ingest_events([write("b.csv", "profile_id,timestamp,value,coupon\n"
                                              "p1,2025-01-01,1,\np1,2025-01-01,1,\n"
                                              "p3,2025-01-03,3,SAVE\np3,2025-01-03,3,SAVE\n")],
                              "x", dedupe="exact")
    assert (report.rows_ingested, report.duplicates_dropped, report.exact_duplicates_kept) == (
        1, 3, 0)
    # Not recounted after an exact ingest, yet what a count of the dataset says.
    held = ws.dataset("x").quality["exact_duplicate_rows"]
    assert held == 1 == exact_duplicate_rows(ws.table("x"))


def test_event_ids_decide_on_their_stored_text_whatever_the_source_type(ws, tmp_path):
    as_text = tmp_path / "text.parquet"
    pq.write_table(pa.table({"profile_id": ["a", "b", "c"], "event_id": ["9001", " ", "7"],
                             "timestamp": pa.array([datetime(2025, 1, 2)] * 3)}), as_text)
    as_float = tmp_path / "float.parquet"
    pq.write_table(pa.table({"profile_id": ["a", "d", "e"], "event_id": [9001.0, None, 8.0],
                             "timestamp": pa.array([datetime(2025, 1, 1)] * 3)}), as_float)
    # 9001 repeats (as text and as a float): the earlier row is kept; blank and null ids stay.
    report = ws.ingest_events([as_text, as_float], "ids")
    assert (report.rows_ingested, report.duplicates_dropped) == (5, 1)
    df = ws.table("ids").order_by("profile_id").execute()
    assert df.profile_id.tolist() == ["a", "b", "c", "d", "e"]
    assert df.timestamp.iloc[0].to_pydatetime() == datetime(2025, 1, 1)
    assert df.event_id.fillna("-").tolist() == ["9001", "-", "7", "-", "8"]
    # No id repeats: every row is kept, without ranking them.
    unique = tmp_path / "unique.parquet"
    pq.write_table(pa.table({"profile_id": ["f", "g"], "event_id": ["10", None],
                             "timestamp": pa.array([datetime(2025, 1, 3)] * 2)}), unique)
    report = ws.ingest_events([unique], "ids")
    assert (report.rows_ingested, report.duplicates_dropped) == (2, 0)


def test_several_files_are_written_whole_into_one_part(ws, tmp_path):
    """The part is written as the engine's threads finish: every row once, none lost."""
    frames = []
    for i in range(3):
        n = 30_000 + i
        frame = pd.DataFrame({"profile_id": [f"f{i}-{j % 500}" for j in range(n)],
                              "timestamp": pd.Timestamp("2025-01-01") + pd.to_timedelta(
                                  [j % 86_400 for j in range(n)], unit="s"),
                              "n": range(n)})
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False),
                       tmp_path / f"f{i}.parquet", row_group_size=7_000)
        frames.append(frame)
    report = ws.ingest_events([tmp_path / f"f{i}.parquet" for i in range(3)], "many")
    assert len(ws.dataset("many").parts) == 1 and report.rows_ingested == 90_003
    got = ws.table("many").execute().sort_values(["profile_id", "n"]).reset_index(drop=True)
    want = pd.concat(frames).sort_values(["profile_id", "n"]).reset_index(drop=True)
    assert got.profile_id.tolist() == want.profile_id.tolist()
    assert got.n.tolist() == want.n.tolist()
    assert (got.timestamp.values == want.timestamp.values).all()


def test_exact_duplicates_with_unique_event_ids_are_among_rows_without_one(ws, write):
    path = write("ids.csv", "profile_id,timestamp,order,value\n"
                            "p1,2025-01-01,L1,5\np1,2025-01-01,L2,5\np1,2025-01-01,,5\n"
                            "p1,2025-01-01,,5\np1,2025-01-01, ,5\np2,2025-01-02,,7\n")
    ws.ingest_events([path], "o", column_map={"event_id": "order"})
    q = ws.dataset("o").quality
    # The three rows without an id (blank is none) are identical; L1 and L2 differ by id only.
    assert q["event_id_duplicates"] == 0 and q["exact_duplicate_rows"] == 2
    assert exact_duplicate_rows(ws.table("o")) == 2


def test_csv_dialects_are_read_as_detected(ws, tmp_path):
    """The dialect is detected once and named to every read: quotes, odd names, CRLF, tabs."""
    crlf = tmp_path / "it's here.csv"
    crlf.write_bytes(b'\xef\xbb\xbfprofile_id,timestamp,"a b","c""d",\xc3\xa9\r\n'
                     b'p1,2025-01-01,"x, y","q""uote",3\r\np2,2025-01-02,,,4\r\n')
    ws.ingest_events([crlf], "crlf")
    df = ws.table("crlf").order_by("profile_id").execute()
    assert df["a b"].tolist()[0] == "x, y" and df['c"d'].tolist()[0] == 'q"uote'
    assert df["é"].tolist() == [3, 4] and df["a b"].isna().tolist() == [False, True]
    tsv = tmp_path / "e.tsv"
    tsv.write_text("profile_id\ttimestamp\tnote\np1\t2025-01-01\thas, comma\n")
    ws.ingest_events([tsv], "tsv")
    assert ws.table("tsv").execute().note.tolist() == ["has, comma"]
