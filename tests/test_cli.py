"""The `likely` command end to end, in-process: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json

from likely.cli.main import main

CSV = "profile_id,timestamp,event_type,value\np1,2025-01-01,commerce.purchases,3\n" \
      "p2,2025-01-03,search,\n"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_ingest_list_show_delete(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    src = tmp_path / "e.csv"
    src.write_text(CSV)
    assert run(capsys, "init", ws)[0] == 0
    code, out, _ = run(capsys, "datasets", "ingest", "events", str(src), "--name", "web",
                       "-w", ws, "--json")
    assert code == 0 and json.loads(out)["rows_ingested"] == 2
    code, out, _ = run(capsys, "datasets", "list", "-w", ws, "--json")
    assert [d["name"] for d in json.loads(out)] == ["web"]
    code, out, _ = run(capsys, "datasets", "show", "web", "-w", ws)
    assert code == 0 and "commerce.purchases" in out and "days of history" in out
    code, out, _ = run(capsys, "datasets", "delete", "web", "--yes", "-w", ws)
    assert code == 0 and "Deleted dataset 'web'" in out


def test_errors_are_one_line_with_exit_codes(tmp_path, capsys):
    ws = str(tmp_path / "ws")
    bad = tmp_path / "bad.csv"
    bad.write_text("profile_id,timestamp\np1,never\n")
    code, _, err = run(capsys, "datasets", "ingest", "events", str(bad), "-n", "x", "-w", ws)
    assert code == 7
    assert "Error: File" in err and "row 1 'never'" in err and "Traceback" not in err
    code, _, err = run(capsys, "datasets", "show", "nope", "-w", ws)
    assert code == 3 and "No dataset named 'nope'" in err
    code, _, err = run(capsys, "datasets", "list", "-w", str(tmp_path / "missing"))
    assert code == 8 and "No likely workspace" in err


def test_usage_error_exits_non_zero(tmp_path, capsys):
    code, _, _ = run(capsys, "datasets", "ingest", "widgets", "x.csv", "-n", "x",
                     "-w", str(tmp_path))
    assert code == 2
