"""Data in: every format, column maps, XDM, validation errors, duplicates, time zones, deletes."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from likely.errors import AlreadyExistsError, ConfigError, DataError, InUseError, NotFoundError
from likely.storage import write_table
from likely.workspace import Workspace

EVENTS_CSV = """profile_id,timestamp,event_type,value,channel
p1,2025-01-01T10:00:00Z,commerce.purchases,12.5,web
p1,2025-01-02T11:00:00Z,commerce.productViews,,web
p2,2025-01-03T09:30:00+02:00,commerce.purchases,7,app
p3,2025-01-05 08:00:00,web.webpagedetails.pageViews,,web
"""


def rows(ws: Workspace, name: str):
    return ws.table(name).order_by(["profile_id", "timestamp"]).execute()


def snapshot(ws: Workspace, name: str) -> str:
    """A digest of what a dataset holds: its catalog rows and its part files' bytes."""
    d = ws.dataset(name)
    digest = hashlib.sha256(json.dumps(d.to_dict(), sort_keys=True, default=str).encode())
    for part in d.parts:
        digest.update(part.read_bytes())
    return digest.hexdigest()


def test_csv_ingest_types_and_normalises_timestamps_to_utc(ws, write):
    report = ws.ingest_events([write("e.csv", EVENTS_CSV)], "web")
    assert report.rows_ingested == 4 and report.rows_skipped == 0
    df = rows(ws, "web")
    schema = ws.table("web").schema()
    assert str(schema["timestamp"]).startswith("timestamp") and schema["value"].is_float64()
    assert schema["channel"].is_string()
    # +02:00 becomes 07:30 UTC; no offset is taken as UTC.
    p2 = df[df.profile_id == "p2"].timestamp.iloc[0]
    assert p2 == datetime(2025, 1, 3, 7, 30)
    assert df[df.profile_id == "p3"].timestamp.iloc[0] == datetime(2025, 1, 5, 8, 0)
    assert df.value.isna().sum() == 2


def test_parquet_and_jsonl_formats(ws, write, tmp_path):
    table = pa.table({
        "profile_id": ["a", "b"],
        "timestamp": pa.array([datetime(2025, 1, 1), datetime(2025, 1, 2)], pa.timestamp("us")),
        "event_type": ["search", "search"],
        "term": ["shoes", "hats"],
    })
    pq.write_table(table, tmp_path / "e.parquet")
    ws.ingest_events([tmp_path / "e.parquet"], "pq")
    assert rows(ws, "pq").term.tolist() == ["shoes", "hats"]

    path = write("e.jsonl", [
        {"profile_id": "a", "timestamp": "2025-01-01T00:00:00Z", "event_type": "search",
         "meta": {"device": {"os": "ios"}}},
        {"profile_id": "b", "timestamp": "2025-01-02T00:00:00Z", "event_type": "search",
         "meta": {"device": {"os": "android"}}},
    ])
    ws.ingest_events([path], "js")
    assert rows(ws, "js")["meta.device.os"].tolist() == ["ios", "android"]


def test_xdm_json_is_flattened_and_mapped_by_default(ws, write):
    events = [
        {"_id": "1", "timestamp": "2025-02-01T12:00:00Z", "eventType": "commerce.purchases",
         "identityMap": {"ECID": [{"id": "ecid-1", "primary": True}]},
         "commerce": {"order": {"priceTotal": 99.5, "currencyCode": "EUR"}}},
        {"_id": "2", "timestamp": "2025-02-02T12:00:00Z",
         "eventType": "web.webpagedetails.pageViews",
         "identityMap": {"ECID": [{"id": "ecid-2", "primary": True}]},
         "commerce": {"order": {"priceTotal": None, "currencyCode": None}}},
    ]
    path = write("xdm.json", json.dumps(events))
    ws.ingest_events([path], "xdm", format="xdm-json")
    df = rows(ws, "xdm")
    assert df.profile_id.tolist() == ["ecid-1", "ecid-2"]
    assert df.event_type.tolist() == ["commerce.purchases", "web.webpagedetails.pageViews"]
    assert df.value.iloc[0] == 99.5
    assert df["commerce.order.currencyCode"].iloc[0] == "EUR"


def test_column_map_renames_source_columns(ws, write):
    path = write("m.csv", "cust,when,what,amount\nc1,2025-01-01,commerce.purchases,3\n")
    ws.ingest_events([path], "m", column_map={"profile_id": "cust", "timestamp": "when",
                                               "event_type": "what", "value": "amount"})
    df = rows(ws, "m")
    assert list(df.columns[:4]) == ["profile_id", "timestamp", "event_type", "value"]
    assert df.value.tolist() == [3.0]


def test_map_to_missing_source_column_is_refused(ws, write):
    path = write("m.csv", "cust,when\nc1,2025-01-01\n")
    with pytest.raises(ConfigError, match=r"--map profile_id=customer: file '.*m.csv' has no "
                                          r"column 'customer'. Its columns: cust, when"):
        ws.ingest_events([path], "m", column_map={"profile_id": "customer"})


def test_missing_required_column_names_file_and_column(ws, write):
    path = write("x.csv", "id,timestamp\n1,2025-01-01\n")
    with pytest.raises(DataError, match=r"File '.*x.csv' has no column 'profile_id' \(required "
                                        r"for events\). Its columns: id, timestamp. Map one with "
                                        r"--map profile_id=<source column>"):
        ws.ingest_events([path], "x")


@pytest.mark.parametrize(
    ("content", "column", "issue", "examples"),
    [
        ("profile_id,timestamp\np1,2025-01-01\np2,yesterday\np3,2025-13-45\n",
         "timestamp", "an unparseable timestamp", "row 2 'yesterday', row 3 '2025-13-45'"),
        ("profile_id,timestamp,value\np1,2025-01-01,1.5\np2,2025-01-02,ten\n",
         "value", "a non-numeric value", "row 2 'ten'"),
        ("profile_id,timestamp\n,2025-01-01\np2,2025-01-02\n",
         "profile_id", "a missing profile id", "row 1 ''"),
    ],
)
def test_bad_values_fail_with_file_rows_and_column_and_change_nothing(
    ws, write, content, column, issue, examples
):
    ws.ingest_events([write("good.csv", EVENTS_CSV)], "web")
    before = snapshot(ws, "web")
    bad = write("bad.csv", content)
    with pytest.raises(DataError) as err:
        ws.ingest_events([bad], "web")
    message = str(err.value)
    assert f"File '{bad}'" in message
    assert f"with {issue} in column '{column}': {examples}" in message
    assert "Nothing was ingested" in message and "--on-error skip" in message
    assert snapshot(ws, "web") == before


def test_many_bad_rows_are_counted_and_first_three_shown(ws, write):
    body = "".join(f"p{i},not-a-date\n" for i in range(10))
    path = write("many.csv", "profile_id,timestamp\np0,2025-01-01\n" + body)
    with pytest.raises(DataError, match=r"10 row\(s\) with an unparseable timestamp in column "
                                        r"'timestamp': row 2 'not-a-date', row 3 'not-a-date', "
                                        r"row 4 'not-a-date' \(first 3 shown\)"):
        ws.ingest_events([path], "many")
    with pytest.raises(NotFoundError):
        ws.dataset("many")


def test_bad_value_names_the_mapped_source_column(ws, write):
    path = write("s.csv", "cust,ts\nc1,2025-01-01\nc2,soon\n")
    with pytest.raises(DataError, match=r"in column 'timestamp' \(source column 'ts'\): row 2"):
        ws.ingest_events([path], "s", column_map={"profile_id": "cust", "timestamp": "ts"})


def test_on_error_skip_ingests_good_rows_and_reports_bad(ws, write):
    path = write("mix.csv", "profile_id,timestamp,value\n"
                            "p1,2025-01-01,1\np2,nope,2\np3,2025-01-03,x\n")
    report = ws.ingest_events([path], "mix", on_error="skip")
    assert report.rows_read == 3 and report.rows_ingested == 1 and report.rows_skipped == 2
    assert {p["issue"] for p in report.problems} == {"an unparseable timestamp",
                                                     "a non-numeric value"}
    assert rows(ws, "mix").profile_id.tolist() == ["p1"]


def test_empty_file_and_header_only_file(ws, write):
    with pytest.raises(DataError, match=r"File '.*empty.csv' is empty"):
        ws.ingest_events([write("empty.csv", "")], "e")
    with pytest.raises(DataError, match=r"File '.*header.csv' has no data rows"):
        ws.ingest_events([write("header.csv", "profile_id,timestamp\n")], "e")


def test_file_that_is_not_what_format_says(ws, write):
    path = write("notjson.jsonl", "profile_id,timestamp\np1,2025-01-01\n")
    with pytest.raises(DataError, match=r"File '.*notjson.jsonl' could not be read as jsonl"):
        ws.ingest_events([path], "e")
    garbage = write("fake.parquet", "this is not parquet")
    with pytest.raises(DataError, match=r"could not be read as parquet"):
        ws.ingest_events([garbage], "e")


def test_unknown_extension_asks_for_format(ws, write):
    with pytest.raises(ConfigError, match=r"Pass --format with one of: parquet, csv"):
        ws.ingest_events([write("e.dat", EVENTS_CSV)], "e")


def test_same_file_twice_is_refused_unless_allowed(ws, write):
    path = write("e.csv", EVENTS_CSV)
    ws.ingest_events([path], "web")
    before = snapshot(ws, "web")
    with pytest.raises(AlreadyExistsError, match=r"already ingested into dataset 'web'.*"
                                                 r"--dedupe exact"):
        ws.ingest_events([path], "web")
    assert snapshot(ws, "web") == before
    # Allowed: the rows are added again (nothing says they are not new orders) ...
    report = ws.ingest_events([path], "web", allow_duplicate_file=True)
    assert (report.rows_ingested, report.duplicates_dropped) == (4, 0)
    assert report.dedupe_applied == "none" and report.exact_duplicates_kept == 4
    assert len(rows(ws, "web")) == 8
    # ... unless exact duplicates are asked to be dropped.
    report = ws.ingest_events([path], "web", allow_duplicate_file=True, dedupe="exact")
    assert (report.rows_ingested, report.duplicates_dropped) == (0, 4)
    assert report.dedupe_applied == "exact" and report.exact_duplicates_kept == 0
    assert len(rows(ws, "web")) == 8


def test_identical_rows_are_kept_by_default_and_counted(ws, write):
    # A transaction log without an order id: the same customer bought the same thing twice.
    a = write("a.csv", EVENTS_CSV + "p1,2025-01-01T10:00:00Z,commerce.purchases,12.5,web\n")
    report = ws.ingest_events([a], "web")
    assert (report.rows_ingested, report.duplicates_dropped) == (5, 0)
    assert report.exact_duplicates_kept == 1
    b = write("b.csv", "profile_id,timestamp,event_type,value,channel\n"
                       "p1,2025-01-01T10:00:00Z,commerce.purchases,12.5,web\n"
                       "p9,2025-01-09T10:00:00Z,search,,\n")
    report = ws.ingest_events([b], "web")
    assert (report.rows_ingested, report.duplicates_dropped) == (2, 0)
    assert report.exact_duplicates_kept == 1
    df = rows(ws, "web")
    assert len(df) == 7 and df.value[df.profile_id == "p1"].sum() == 37.5
    q = ws.dataset("web").quality
    assert q["exact_duplicate_rows"] == 2 and "event_id_duplicates" not in q


def test_dedupe_exact_drops_identical_rows_within_and_across_files(ws, write):
    a = write("a.csv", EVENTS_CSV + "p1,2025-01-01T10:00:00Z,commerce.purchases,12.5,web\n")
    report = ws.ingest_events([a], "web", dedupe="exact")
    assert (report.rows_ingested, report.duplicates_dropped) == (4, 1)
    b = write("b.csv", "profile_id,timestamp,event_type,value,channel\n"
                       "p1,2025-01-01T10:00:00Z,commerce.purchases,12.5,web\n"
                       "p9,2025-01-09T10:00:00Z,search,,\n")
    report = ws.ingest_events([b], "web", dedupe="exact")
    assert (report.rows_ingested, report.duplicates_dropped) == (1, 1)
    assert len(rows(ws, "web")) == 5 and ws.dataset("web").quality["exact_duplicate_rows"] == 0


def test_profiles_keep_identical_rows_by_default(ws, write):
    path = write("p.csv", "profile_id,tier\np1,gold\np1,gold\np2,silver\n")
    report = ws.ingest_profiles([path], "crm")
    assert (report.rows_ingested, report.exact_duplicates_kept) == (3, 1)
    q = ws.dataset("crm").quality
    assert q["exact_duplicate_rows"] == 1 and q["rows_per_profile_max"] == 2
    other = write("p2.csv", "profile_id,tier\np1,gold\np1,gold\np3,silver\n")
    report = ws.ingest_profiles([other], "crm2", dedupe="exact")
    assert (report.rows_ingested, report.duplicates_dropped) == (2, 1)


def test_appending_files_with_new_columns(ws, write):
    ws.ingest_events([write("a.csv", EVENTS_CSV)], "web")
    ws.ingest_events([write("b.csv", "profile_id,timestamp,coupon\np7,2025-01-07,SAVE10\n")],
                     "web")
    df = rows(ws, "web")
    assert len(df) == 5 and df.coupon.notna().sum() == 1


def test_several_files_and_globs_in_one_ingest(ws, write):
    write("parts/a.csv", EVENTS_CSV)
    last = write("parts/b.csv", "profile_id,timestamp\nq1,2025-02-01\n")
    report = ws.ingest_events([str(last.parent / "*.csv")], "web")
    assert len(report.files) == 2 and report.rows_ingested == 5


def test_incompatible_column_types_across_appends(ws, write):
    ws.ingest_events([write("a.csv", "profile_id,timestamp,size\np1,2025-01-01,10\n")], "w")
    with pytest.raises(DataError, match=r"Column 'size' is int64 in the dataset but string"):
        ws.ingest_events([write("b.csv", "profile_id,timestamp,size\np2,2025-01-02,XL\n")], "w")


def test_profiles_ingest_and_kind_mismatch(ws, write):
    path = write("p.csv", "profile_id,loyalty_tier,signup_date,updated_at\n"
                          "p1,gold,2024-05-01,2025-01-01T00:00:00Z\np2,silver,2024-06-01,\n")
    ws.ingest_profiles([path], "crm")
    schema = ws.table("crm").schema()
    assert schema["signup_date"].is_date() and str(schema["updated_at"]).startswith("timestamp")
    q = ws.dataset("crm").quality
    assert q["rows"] == 2 and q["completeness"]["updated_at"] == 50.0
    with pytest.raises(ConfigError, match=r"Dataset 'crm' holds profiles, not events"):
        ws.ingest_events([write("e.csv", EVENTS_CSV)], "crm")


def test_quality_report_counts_gaps_types_and_completeness(ws, write):
    ws.ingest_events([write("e.csv", EVENTS_CSV)], "web")
    q = ws.dataset("web").quality
    assert q["rows"] == 4 and q["profiles"] == 3
    assert q["first"] == "2025-01-01T10:00:00" and q["days_of_history"] == 5
    assert q["gap_days"] == 1 and q["gaps"] == [{"from": "2025-01-04", "to": "2025-01-04",
                                                 "days": 1}]
    assert q["event_types"] == {"commerce.purchases": 2, "commerce.productViews": 1,
                                "web.webpagedetails.pageViews": 1}
    assert q["completeness"]["value"] == 50.0 and q["completeness"]["profile_id"] == 100.0


def test_a_part_left_by_a_crash_is_never_read(ws, write):
    ws.ingest_events([write("e.csv", EVENTS_CSV)], "web")
    orphan = ws.dataset("web").parts[0].with_name("part-orphan.parquet")
    write_table(pa.table({"profile_id": ["zz"], "timestamp": [datetime(2025, 1, 1)]}), orphan)
    assert "zz" not in set(rows(ws, "web").profile_id)


def test_delete_dataset_refused_while_an_instance_uses_it(ws, write):
    ws.ingest_events([write("e.csv", EVENTS_CSV)], "web")
    with ws.catalog.transaction():
        ws.catalog.insert("instances", {
            "id": "i1", "name": "buyers", "config": {"datasets": {"events": "web"}},
            "created_at": "x", "updated_at": "x"})
    with pytest.raises(InUseError, match=r"used by instance\(s\) buyers"):
        ws.delete_dataset("web")
    assert ws.dataset("web").parts[0].exists()
    assert ws.delete_dataset("web", force=True) == ["buyers"]
    with pytest.raises(NotFoundError):
        ws.dataset("web")
    assert not (ws.path / "data" / "web").exists()


def test_workspace_must_exist(tmp_path: Path):
    from likely.errors import WorkspaceError

    with pytest.raises(WorkspaceError, match=r"No likely workspace at .* `likely init "):
        Workspace(tmp_path / "nowhere")
