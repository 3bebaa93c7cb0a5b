"""The `likely` command end to end, in-process: exit codes, one-line errors, JSON output."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

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


def test_help_shows_argument_names_and_flags_without_a_value(capsys):
    for command in (["run"], ["runs", "show"], ["datasets", "ingest"], ["factors"], []):
        code, out, _ = run(capsys, *command, "--help")
        assert code == 0 and "--help" in out
        assert "{" not in out and "<bool>" not in out, out
    code, out, _ = run(capsys, "run", "--help")
    assert "likely run [OPTIONS] [NAME]" in out and "--json" in out and "--due" in out
    code, out, _ = run(capsys, "runs", "show", "--help")
    assert "likely runs show [OPTIONS] NAME [RUN_ID]" in out
    code, out, _ = run(capsys, "factors", "--help")
    assert "likely factors [OPTIONS] NAME" in out and "--top" in out
    assert "<int>" in out or "INTEGER" in out  # options that take a value still show its type


INSTANCE_YAML = """\
name: buyers
datasets: {events: events, profiles: profiles}
goal: {conditions: ["event_type = 'commerce.purchases'"], window_days: 30}
min_positives: 150
min_negatives: 150
"""


def test_instances_and_runs_from_the_command_line(demo_workspace, tmp_path, capsys):
    ws = str(tmp_path / "ws")
    shutil.copytree(demo_workspace, ws)
    spec = tmp_path / "buyers.yaml"
    spec.write_text(INSTANCE_YAML)
    assert run(capsys, "instances", "create", "-f", str(spec), "-w", ws)[0] == 0
    code, _, err = run(capsys, "instances", "create", "-f", str(spec), "-w", ws)
    assert code == 4 and "already exists" in err
    code, out, _ = run(capsys, "instances", "create", "--name", "churners", "--events", "events",
                       "--goal", "event_type = 'commerce.purchases'", "--window", "60",
                       "--churn", "-w", ws, "--json")
    assert code == 0 and json.loads(out)["config"]["goal"]["occurs"] is False
    code, _, err = run(capsys, "instances", "create", "--name", "bad", "--events", "events",
                       "--goal", "event_typ = 'x'", "-w", ws)
    assert code == 2 and "event_typ" in err and "event_type" in err

    assert run(capsys, "instances", "edit", "churners", "--schedule", "weekly",
               "--name", "leavers", "-w", ws)[0] == 0
    window = tmp_path / "window.yaml"
    window.write_text("goal: {window_days: 14}\n")
    assert run(capsys, "instances", "clone", "buyers", "buyers-14d", "-f", str(window),
               "-w", ws)[0] == 0
    code, out, _ = run(capsys, "instances", "list", "-w", ws, "--json")
    listed = {i["name"]: i for i in json.loads(out)}
    assert sorted(listed) == ["buyers", "buyers-14d", "leavers"]
    assert listed["leavers"]["config"]["schedule"] == "weekly"
    assert listed["buyers-14d"]["config"]["goal"]["window_days"] == 14
    assert listed["buyers-14d"]["config"]["min_positives"] == 150

    code, out, _ = run(capsys, "run", "buyers", "-w", ws)
    assert code == 0 and "success" in out and "holdout AUC" in out and "top behaviours" in out
    summary = out
    code, out, _ = run(capsys, "runs", "list", "buyers", "-w", ws, "--json")
    runs = json.loads(out)
    assert [r["status"] for r in runs] == ["success"]
    code, out, _ = run(capsys, "runs", "show", "buyers", runs[0]["id"], "-w", ws, "--json")
    assert json.loads(out)["metrics"]["holdout"]["auc"] > 0.65
    code, out, _ = run(capsys, "runs", "show", "buyers", "-w", ws)
    assert code == 0 and "top-10% lift" in out and "leaves x" in out and "holdout window" in out
    buckets = runs[0]["counts"]["buckets"]
    assert " · ".join(f"{b} {n:,}" for b, n in buckets.items()) in out and "{'" not in out
    code, out, _ = run(capsys, "scores", "buyers", "--top", "3", "-w", ws, "--json")
    top = json.loads(out)
    assert len(top) == 3 and top[0]["probability"] >= top[2]["probability"]
    code, out, _ = run(capsys, "explain", "buyers", top[0]["profile_id"], "-w", ws, "--json")
    assert json.loads(out)["profile"]["influential_factors"]
    code, out, _ = run(capsys, "scores", "buyers", "--top", "5000", "-w", ws, "--json")
    missing = next(r for r in json.loads(out)
                   if any(f["value"] is None for f in r["influential_factors"]))
    code, out, _ = run(capsys, "explain", "buyers", missing["profile_id"], "-w", ws)
    assert code == 0 and "None" not in out and "│ -" in out
    assert all(f["behaviour"] in out for f in missing["influential_factors"])

    code, out, _ = run(capsys, "factors", "buyers", "-w", ws, "--json")
    document = json.loads(out)
    sources = document["sources"]
    assert document["factors"] and sources[0]["share_pct"] >= sources[-1]["share_pct"]
    code, out, _ = run(capsys, "factors", "buyers", "--top", "3", "-w", ws)
    assert code == 0 and "behaviour" in out and "share" in out
    for entry in sources[:3]:
        assert entry["name"] in out and f"{entry['share_pct']:.1f}%" in out
        assert f"{entry['mean_abs_shap']:.3f}" in out
    assert sources[3]["name"] not in out
    top = sources[0]
    assert re.search(rf"{top['name']} +{top['mean_abs_shap']:.3f} +{top['share_pct']:.1f}%",
                     summary)
    code, out, _ = run(capsys, "export", "buyers", "--format", "csv", "--out",
                       str(tmp_path / "s.csv"), "-w", ws)
    assert code == 0 and (tmp_path / "s.csv").read_text().startswith("profile_id,")

    code, _, err = run(capsys, "run", "buyers", "--as-of", "2025-02-01", "-w", ws)
    assert code == 10 and "[407] Not enough history" in err and "Traceback" not in err
    code, _, err = run(capsys, "run", "buyers", "--as-of", "last week", "-w", ws)
    assert code == 2 and "last week" in err
    code, out, _ = run(capsys, "runs", "show", "buyers", "-w", ws)
    assert code == 0 and "[407] Not enough history" in out and "[407] [407]" not in out

    outputs = Path(ws) / "runs" / runs[0]["instance_id"]
    assert run(capsys, "instances", "delete", "buyers", "--yes", "--keep-outputs",
               "-w", ws)[0] == 0
    assert outputs.exists()
    code, _, err = run(capsys, "scores", "buyers", "-w", ws)
    assert code == 3 and "No instance named 'buyers'" in err
