"""Numeric ids, the profile shape in the quality report, and the events/profiles overlap."""

from __future__ import annotations

import json

import pandas as pd

from likely.cli.main import main
from likely.data.quality import id_overlap


def test_integer_ids_are_the_same_text_from_int_and_float_columns(ws, tmp_path, write):
    # pandas writes an integer column with a null as float64: 123 would read back as 123.0.
    as_int = tmp_path / "int.parquet"
    pd.DataFrame({
        "profile_id": [123, 456], "event_id": [9001, 9002],
        "timestamp": pd.to_datetime(["2025-01-01", "2025-01-02"]), "value": [1.0, 2.0],
    }).to_parquet(as_int)
    as_float = tmp_path / "float.parquet"
    pd.DataFrame({
        "profile_id": [123, None, 7.5, 456], "event_id": [None, 9004, 9003, 9001],
        "timestamp": pd.to_datetime(["2025-01-03"] * 4), "value": [3.0, 4.0, 5.0, 6.0],
    }).to_parquet(as_float)
    ws.ingest_events([as_int], "e")
    assert ws.table("e").schema()["profile_id"].is_string()
    report = ws.ingest_events([as_float], "e", on_error="skip")
    # The row without a profile id is skipped; event 9001 is already there (it was an int).
    assert (report.rows_skipped, report.duplicates_dropped, report.rows_ingested) == (1, 1, 2)
    ws.ingest_events([write("e.jsonl", [{"profile_id": 123.0, "timestamp": "2025-01-04",
                                         "event_id": 9005.0}])], "e")
    df = ws.table("e").order_by(["timestamp", "value"]).execute()
    assert df.profile_id.tolist() == ["123", "456", "123", "7.5", "123"]
    assert df.event_id.fillna("-").tolist() == ["9001", "9002", "-", "9003", "9005"]
    assert ws.dataset("e").quality["profiles"] == 3


def test_profile_ids_from_a_float_column_match_the_events(ws, tmp_path, write):
    events = write("e.csv", "profile_id,timestamp\n123,2025-01-01\n456,2025-01-02\n"
                            "123,2025-01-03\n789,2025-01-04\n")
    ws.ingest_events([events], "e")
    profiles = tmp_path / "p.parquet"
    pd.DataFrame({"profile_id": [123.0, 456.0, 1e20, float("nan")],
                  "tier": ["gold", "silver", "bronze", "none"]}).to_parquet(profiles)
    ws.ingest_profiles([profiles], "p", on_error="skip")
    # A NaN id is a missing one (skipped); a float too large for an integer keeps its text.
    assert sorted(ws.table("p").execute().profile_id) == ["123", "1e+20", "456"]
    overlap = id_overlap(ws.table("e"), ws.table("p"))
    assert overlap == {"event_profiles": 3, "matched": 2, "share": 2 / 3}


def test_id_overlap_with_no_event_profiles(ws, write):
    ws.ingest_events([write("e.csv", "profile_id,timestamp\na,2025-01-01\n")], "e")
    ws.ingest_profiles([write("p.csv", "profile_id\na\n")], "p")
    none = ws.table("e").filter(lambda t: t.profile_id == "nobody")
    assert id_overlap(none, ws.table("p")) == {"event_profiles": 0, "matched": 0, "share": 0.0}
    assert id_overlap(ws.table("e"), ws.table("p"))["share"] == 1.0


def test_profile_shape_snapshot_and_history_in_the_quality_report(ws, write):
    ws.ingest_profiles([write("s.csv", "profile_id,tier,updated_at\np1,gold,2025-01-05\n"
                                       "p2,silver,2025-01-01\n")], "snap")
    q = ws.dataset("snap").quality
    assert (q["shape"], q["versioned_profiles"], q["profiles_with_several_rows"]) == (
        "snapshot", 0, 0)
    assert q["versions_per_profile_max"] == 1 and q["rows_per_profile_max"] == 1
    ws.ingest_profiles([write("h.csv", "profile_id,tier,updated_at\np1,silver,2025-01-01\n"
                                       "p1,gold,2025-03-01\np1,gold,2025-06-01\n"
                                       "p2,silver,2025-01-01\n")], "hist")
    q = ws.dataset("hist").quality
    assert (q["shape"], q["versioned_profiles"], q["profiles_with_several_rows"]) == (
        "history", 1, 1)
    assert q["versions_per_profile_max"] == 3 and q["rows_per_profile_max"] == 3


def test_datasets_show_says_what_the_shape_means(ws, write, capsys):
    ws.ingest_profiles([write("s.csv", "profile_id,tier\np1,gold\np2,silver\n")], "snap")
    ws.ingest_profiles([write("h.csv", "profile_id,tier,updated_at\np1,silver,2025-01-01\n"
                                       "p1,gold,2025-03-01\n")], "hist")
    capsys.readouterr()
    assert main(["datasets", "show", "snap", "-w", str(ws.path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Shape: snapshot" in out
    assert ("Attributes are known only as they are now; instances use the ones declared in "
            "static_attributes for past training windows.") in out
    assert main(["datasets", "show", "hist", "-w", str(ws.path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Shape: history" in out and "Each version is used from its updated_at on." in out
    assert main(["datasets", "show", "hist", "-w", str(ws.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["quality"]["shape"] == "history"
