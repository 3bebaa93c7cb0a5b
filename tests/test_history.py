"""Score history: re-scoring with the current model, retraining when due, drift, backfill.

Workspaces are copies of the session's demo workspace (3,000 profiles, 2025-01-01 … 2025-07-19).
"""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from likely.cli.main import main
from likely.errors import ConfigError
from likely.scoring.records import run_dir
from likely.workspace import Workspace

INSTANCE = {
    "name": "buyers", "datasets": {"events": "events", "profiles": "profiles"},
    "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
    "exclusions": ["event_type = 'directMarketing.emailSent'"],
    "min_positives": 150, "min_negatives": 150, "max_anchors": 2,
}
DATES = (date(2025, 6, 1), date(2025, 6, 15), date(2025, 6, 29))


def copy(demo_workspace: Path, tmp_path: Path, name: str = "ws") -> Workspace:
    shutil.copytree(demo_workspace, tmp_path / name)
    ws = Workspace(tmp_path / name)
    ws.create_instance(INSTANCE)
    return ws


def scores(ws: Workspace, run) -> pd.DataFrame:
    path = run_dir(ws.path, run.instance_id, run.id) / "scores.parquet"
    return pd.read_parquet(path).set_index("profile_id").sort_index()


def demo_events(demo_workspace: Path) -> pa.Table:
    return pq.read_table(demo_workspace.parent / "data" / "events.parquet")


@pytest.fixture(scope="module")
def backfilled(demo_workspace: Path, tmp_path_factory):
    ws = copy(demo_workspace, tmp_path_factory.mktemp("backfill"))
    runs = ws.backfill("buyers", DATES[0], DATES[-1], every_days=14)
    return ws, runs


def test_a_backfill_trains_once_then_rescores_with_that_model(backfilled):
    ws, runs = backfilled
    assert [r.as_of for r in runs] == [d.isoformat() for d in DATES]
    assert all(r.status == "success" for r in runs)
    first = runs[0]
    assert first.metrics["retraining"]["retrained"] is True
    for run in runs[1:]:
        assert run.metrics["retraining"] == {
            "retrained": False, "reason": run.metrics["retraining"]["reason"],
            "model_run_id": runs[runs.index(run) - 1].id, "model_trained_as_of": "2025-06-01"}
        assert run.model_id == first.model_id
        assert "training" not in run.timings and run.metrics["holdout"] == first.metrics["holdout"]
        assert set(scores(ws, run)["model_id"]) == {first.model_id}  # each row says its model
        folder = run_dir(ws.path, run.instance_id, run.id)
        assert {"model", "evaluation.json", "drift_reference.json"} <= {
            p.name for p in folder.iterdir()}  # a run folder is complete on its own
    assert len(ws.catalog.query("SELECT id FROM models")) == 1  # model versions: one so far
    assert ws.evaluation("buyers")["holdout"]["auc"] == first.metrics["holdout"]["auc"]


def test_a_backfill_equals_separate_runs_with_the_same_model(backfilled, demo_workspace,
                                                             tmp_path):
    ws, runs = backfilled
    other = copy(demo_workspace, tmp_path)
    separate = [other.run("buyers", as_of=d) for d in DATES]
    assert [r.metrics["retraining"]["retrained"] for r in separate] == [True, False, False]
    for mine, theirs in zip(runs, separate, strict=True):
        a, b = scores(ws, mine), scores(other, theirs)
        assert list(a.index) == list(b.index)
        assert np.allclose(a["probability"], b["probability"], rtol=0, atol=1e-9)
        assert list(a["bucket"]) == list(b["bucket"])
        top = [f[0]["behaviour"] if len(f) else None for f in a["influential_factors"]]
        assert top == [f[0]["behaviour"] if len(f) else None for f in b["influential_factors"]]


def test_no_backfilled_date_sees_later_data(backfilled, demo_workspace, tmp_path):
    """The same backfill over only the events before the middle date's end gives that date the
    same scores: neither its model nor its features read anything later."""
    ws, runs = backfilled
    middle = DATES[1]
    cutoff = datetime.combine(middle + timedelta(days=1), datetime.min.time())
    events = demo_events(demo_workspace)
    before = events.filter(pa.compute.less(events["timestamp"], pa.scalar(cutoff)))
    assert before.num_rows < events.num_rows
    pq.write_table(before, tmp_path / "events-before.parquet")
    truncated = Workspace.create(tmp_path / "truncated")
    truncated.ingest_events([tmp_path / "events-before.parquet"], "events")
    truncated.ingest_profiles([demo_workspace.parent / "data" / "profiles.parquet"], "profiles")
    truncated.create_instance(INSTANCE)
    mine = truncated.backfill("buyers", DATES[0], middle, every_days=14)
    a, b = scores(ws, runs[1]), scores(truncated, mine[1])
    assert list(a.index) == list(b.index)
    assert np.allclose(a["probability"], b["probability"], rtol=0, atol=1e-9)


def test_retraining_is_due_by_age_and_on_request(demo_workspace, tmp_path):
    ws = copy(demo_workspace, tmp_path)
    ws.edit_instance("buyers", retrain_days=10)
    runs = ws.backfill("buyers", DATES[0], DATES[1], every_days=14)
    assert [r.metrics["retraining"]["retrained"] for r in runs] == [True, True]
    assert "14 days old; retrain_days is 10" in runs[1].metrics["retraining"]["reason"]
    assert runs[0].model_id != runs[1].model_id
    again = ws.run("buyers", as_of=DATES[1])  # same date: re-scores with that date's model
    assert again.metrics["retraining"]["retrained"] is False
    assert again.model_id == runs[1].model_id
    forced = ws.run("buyers", as_of=DATES[1], retrain=True)
    assert forced.metrics["retraining"] == {"retrained": True,
                                            "reason": "retraining was asked for",
                                            "model_run_id": None,
                                            "model_trained_as_of": DATES[1].isoformat()}
    assert len(ws.catalog.query("SELECT id FROM models")) == 3  # every version kept


def test_a_model_is_never_reused_for_an_earlier_date(backfilled, demo_workspace, tmp_path):
    ws = copy(demo_workspace, tmp_path)
    late = ws.run("buyers", as_of=DATES[-1])
    early = ws.run("buyers", as_of=DATES[0])  # before the only model: must train its own
    assert early.metrics["retraining"]["retrained"] is True
    assert early.model_id != late.model_id


# -- drift ----------------------------------------------------------------------------------------


def planted_shift(demo_workspace: Path, start: date, end: date) -> pa.Table:
    """Every profile views and adds items to a cart three times in [start, end): behaviour the
    model never saw at training (no purchases, so the goal's labels stay as they were)."""
    events = demo_events(demo_workspace)
    ids = sorted(set(events["profile_id"].to_pylist()))
    rng = np.random.default_rng(3)
    span = (datetime.combine(end, datetime.min.time())
            - datetime.combine(start, datetime.min.time())).total_seconds()
    rows = []
    for pid in ids:
        for kind in ("commerce.productListAdds", "commerce.productViews") * 3:
            moment = datetime.combine(start, datetime.min.time()) + timedelta(
                seconds=float(rng.uniform(0, span)))
            rows.append({"profile_id": pid, "timestamp": moment, "event_type": kind,
                         "value": None})
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("profile_id", pa.string()), ("timestamp", pa.timestamp("us")),
        ("event_type", pa.string()), ("value", pa.float64())]))


def test_drift_triggers_on_a_planted_shift_and_not_without_it(demo_workspace, tmp_path):
    trained_at, later = date(2025, 6, 15), date(2025, 6, 29)
    steady = copy(demo_workspace, tmp_path, "steady")
    steady.run("buyers", as_of=trained_at)
    calm = steady.run("buyers", as_of=later)
    assert calm.metrics["retraining"]["retrained"] is False
    assert calm.metrics["drift"]["drifted"] is False
    assert calm.metrics["drift"]["score_psi"] < 0.1
    assert all(f["psi"] <= 0.25 for f in calm.metrics["drift"]["features"])
    assert steady.run("buyers", as_of=later).metrics["retraining"]["retrained"] is False

    shifted = copy(demo_workspace, tmp_path, "shifted")
    shifted.run("buyers", as_of=trained_at)
    pq.write_table(planted_shift(demo_workspace, later - timedelta(days=7),
                                 later + timedelta(days=1)), tmp_path / "shift.parquet")
    shifted.ingest_events([tmp_path / "shift.parquet"], "events")
    moved = shifted.run("buyers", as_of=later)
    assert moved.metrics["retraining"]["retrained"] is False  # scored by the old model …
    drift = moved.metrics["drift"]
    assert drift["drifted"] is True and drift["over_threshold"]  # … which sees the shift
    assert drift["score_psi"] > 0.25 or max(f["psi"] for f in drift["features"]) > 0.25
    assert any("Drift" in note for note in moved.notes)
    following = shifted.run("buyers", as_of=later)
    assert following.metrics["retraining"]["retrained"] is True
    assert f"the run of {later} found drift" in following.metrics["retraining"]["reason"]


def test_drift_threshold_is_configurable(demo_workspace, tmp_path):
    ws = copy(demo_workspace, tmp_path)
    ws.edit_instance("buyers", drift_threshold=0.0001)
    ws.run("buyers", as_of=DATES[0])
    jumpy = ws.run("buyers", as_of=DATES[1])
    assert jumpy.metrics["drift"]["threshold"] == 0.0001 and jumpy.metrics["drift"]["drifted"]
    with pytest.raises(ConfigError, match="drift_threshold"):
        ws.edit_instance("buyers", drift_threshold=0)


# -- the CLI --------------------------------------------------------------------------------------


def test_cli_backfill(demo_workspace, tmp_path, capsys):
    ws = copy(demo_workspace, tmp_path)
    assert main(["backfill", "buyers", "--from", "2025-06-01", "--to", "2025-06-20",
                 "--every", "2w", "-w", str(ws.path)]) == 0
    out = capsys.readouterr().out
    assert "2025-06-01" in out and "2025-06-15" in out and "trained" in out
    assert "re-scored" in out
    assert main(["runs", "list", "buyers", "-w", str(ws.path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)  # newest first
    assert [r["metrics"]["retraining"]["retrained"] for r in listed] == [False, True]
    assert all("score_psi" in r["metrics"]["drift"] for r in listed)
    assert main(["backfill", "buyers", "--from", "2025-06-20", "--to", "2025-06-01",
                 "-w", str(ws.path)]) != 0
    assert "is before --from" in capsys.readouterr().err
    assert main(["backfill", "buyers", "--from", "2025-06-01", "--to", "2025-06-20",
                 "--every", "weekly", "-w", str(ws.path)]) != 0
    assert "not a period" in capsys.readouterr().err
