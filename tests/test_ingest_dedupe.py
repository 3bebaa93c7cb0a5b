"""Duplicates at ingest: event ids decide, identical rows are kept unless asked, nothing is lost."""

from __future__ import annotations

import json

import pytest

from likely.cli.main import main
from likely.errors import ConfigError

HEADER = "order_line_id,profile_id,timestamp,event_type,value\n"
ORDERS = HEADER + (
    "L1,p1,2025-01-01T10:00:00Z,commerce.purchases,10\n"
    "L2,p1,2025-01-02T10:00:00Z,commerce.purchases,20\n"
    ",p2,2025-01-03T10:00:00Z,commerce.purchases,5\n"
    ",p2,2025-01-03T10:00:00Z,commerce.purchases,5\n"
    "  ,p3,2025-01-04T10:00:00Z,commerce.purchases,7\n"
)
ID_MAP = {"event_id": "order_line_id"}


def table(ws, name: str):
    return ws.table(name).order_by(["profile_id", "timestamp", "value"]).execute()


def test_event_id_drops_repeats_across_ingests_and_keeps_rows_without_one(ws, write):
    report = ws.ingest_events([write("a.csv", ORDERS)], "orders", column_map=ID_MAP)
    # Null and blank ids: every such row is kept, identical ones included.
    assert (report.rows_ingested, report.duplicates_dropped) == (5, 0)
    assert report.dedupe_applied == "event_id" and report.exact_duplicates_kept == 1
    later = write("b.csv", HEADER + "L2,p1,2025-01-02T10:00:00Z,commerce.purchases,99\n"
                                    "L3,p4,2025-01-05T10:00:00Z,commerce.purchases,1\n"
                                    ",p2,2025-01-03T10:00:00Z,commerce.purchases,5\n")
    report = ws.ingest_events([later], "orders", column_map=ID_MAP)
    # L2 is already in the dataset (even with another value); the id-less row is kept.
    assert (report.rows_ingested, report.duplicates_dropped) == (2, 1)
    assert report.exact_duplicates_kept == 1
    df = table(ws, "orders")
    assert len(df) == 7 and df.value.sum() == 10 + 20 + 5 * 3 + 7 + 1
    assert df.event_id.isna().sum() == 4 and set(df.event_id.dropna()) == {"L1", "L2", "L3"}
    q = ws.dataset("orders").quality
    assert q["event_id_duplicates"] == 0 and q["exact_duplicate_rows"] == 2


def test_event_id_repeated_within_new_files_keeps_one_row_whatever_the_file_order(ws, write):
    a = write("a.csv", HEADER + "L1,p1,2025-01-02T10:00:00Z,commerce.purchases,20\n"
                                "L1,p1,2025-01-01T10:00:00Z,commerce.purchases,30\n")
    b = write("b.csv", HEADER + "L1,p1,2025-01-01T10:00:00Z,commerce.purchases,10\n"
                                "L2,p2,2025-01-01T10:00:00Z,search,\n")
    one = ws.ingest_events([a, b], "ab", column_map=ID_MAP)
    two = ws.ingest_events([b, a], "ba", column_map=ID_MAP)
    assert (one.rows_ingested, one.duplicates_dropped) == (2, 2) == (two.rows_ingested,
                                                                     two.duplicates_dropped)
    # The earliest row wins; ties on time are broken by the other columns (value 10 < 30).
    for name in ("ab", "ba"):
        df = table(ws, name)
        assert df[df.event_id == "L1"].value.tolist() == [10.0]
    assert table(ws, "ab").equals(table(ws, "ba"))


#: One event id three times: twice in identical rows, once on another day.
REPEATED_ID = (HEADER + "L1,p1,2025-01-01T10:00:00Z,commerce.purchases,10\n"
                        "L1,p1,2025-01-01T10:00:00Z,commerce.purchases,10\n"
                        "L1,p1,2025-01-02T10:00:00Z,commerce.purchases,10\n")


def test_dedupe_none_keeps_repeated_event_ids_and_the_report_counts_them(ws, write):
    path = write("a.csv", REPEATED_ID)
    report = ws.ingest_events([path], "o", column_map=ID_MAP, dedupe="none")
    assert (report.rows_ingested, report.duplicates_dropped) == (3, 0)
    assert report.dedupe == "none" and report.dedupe_applied == "none"
    q = ws.dataset("o").quality
    assert q["event_id_duplicates"] == 2 and q["exact_duplicate_rows"] == 1


def test_dedupe_exact_ignores_event_ids(ws, write):
    path = write("a.csv", REPEATED_ID)
    report = ws.ingest_events([path], "o", column_map=ID_MAP, dedupe="exact")
    assert (report.rows_ingested, report.duplicates_dropped) == (2, 1)
    assert report.dedupe_applied == "exact"


def test_xdm_id_is_the_event_id_so_a_re_export_adds_nothing(ws, write):
    def event(i: int, day: int, price: float) -> dict:
        return {"_id": f"evt-{i}", "timestamp": f"2025-02-0{day}T12:00:00Z",
                "eventType": "commerce.purchases",
                "identityMap": {"ECID": [{"id": "ecid-1", "primary": True}]},
                "commerce": {"order": {"priceTotal": price}},
                "productListItems": [{"SKU": f"sku-{i}", "quantity": 1}]}

    first = write("x1.json", json.dumps([event(1, 1, 5.0), event(2, 2, 5.0)]))
    ws.ingest_events([first], "xdm", format="xdm-json")
    assert table(ws, "xdm").event_id.tolist() == ["evt-1", "evt-2"]
    # The same events, exported again with a new one sent twice: only the new one is added.
    again = write("x2.json", json.dumps([event(1, 1, 5.0), event(2, 2, 5.0), event(3, 3, 5.0),
                                         event(3, 3, 6.0)]))
    report = ws.ingest_events([again], "xdm", format="xdm-json")
    assert (report.rows_ingested, report.duplicates_dropped) == (1, 3)
    assert table(ws, "xdm").event_id.tolist() == ["evt-1", "evt-2", "evt-3"]


def test_unknown_dedupe_mode_is_refused_naming_the_allowed_ones(ws, write):
    with pytest.raises(ConfigError, match=r"Unknown --dedupe 'rows'. Allowed: auto, exact, none"):
        ws.ingest_events([write("a.csv", ORDERS)], "o", dedupe="rows")


def run(capsys, *args: str) -> tuple[int, str]:
    """Exit code and stdout with whitespace runs made single spaces (the console wraps lines)."""
    code = main(list(args))
    return code, " ".join(capsys.readouterr().out.split())


def test_cli_dedupe_option_and_what_the_ingest_says(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    src = tmp_path / "orders.csv"
    src.write_text(HEADER + "L1,p1,2025-01-01,commerce.purchases,3\n"
                            "L1,p1,2025-01-01,commerce.purchases,3\n")
    code, out = run(capsys, "datasets", "ingest", "events", str(src), "-n", "o", "-w", ws,
                    "--dedupe", "none", "--json")
    report = json.loads(out)
    assert code == 0 and report["rows_ingested"] == 2 and report["dedupe"] == "none"
    assert report["exact_duplicates_kept"] == 1
    assert report["quality"]["exact_duplicate_rows"] == 1
    code, out = run(capsys, "datasets", "ingest", "events", str(src), "-n", "o", "-w", ws,
                    "--allow-duplicate-file", "--dedupe", "exact")
    assert code == 0 and "2 exact duplicate row(s) dropped (--dedupe exact)" in out
    code, out = run(capsys, "datasets", "ingest", "events", str(src), "-n", "o", "-w", ws,
                    "--allow-duplicate-file")
    assert code == 0 and "no rows dropped as duplicates (--dedupe auto)" in out
    assert "kept 2 row(s) identical to another row" in out
    code, out = run(capsys, "datasets", "ingest", "events", str(src), "-n", "o2", "-w", ws,
                    "--map", "event_id=order_line_id")
    assert code == 0 and "1 row(s) dropped as repeated event_id (--dedupe auto)" in out
    code = main(["datasets", "ingest", "events", str(src), "-n", "o3", "-w", ws,
                 "--dedupe", "maybe"])
    err = capsys.readouterr().err
    assert code != 0 and "Allowed: auto, exact, none" in err
