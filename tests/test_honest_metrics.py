"""Metrics that tell the truth, and a run that says what it did: cross-fitted calibration
metrics, optimistic holdouts marked, goal rates per window, the season, the expected count,
coded holdout failures, features that mean the same at every window, one thread setting."""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from likely.catalog import utcnow
from likely.config import parse_instance_config
from likely.data import demo
from likely.errors import ConfigError, RunError
from likely.model.calibration import choose_calibrator
from likely.model.evaluate import evaluate
from likely.model.train import PropensityModel, TrainParams
from likely.scoring.records import run_dir
from likely.workspace import Workspace

LAST_DAY = date(2025, 7, 19)  # the session demo data: 2025-01-01 + 200 days
PURCHASES = "event_type = 'commerce.purchases'"
BASE = {"name": "buyers", "datasets": {"events": "events"},
        "goal": {"conditions": [PURCHASES], "window_days": 30},
        "min_positives": 100, "min_negatives": 100}


@pytest.fixture
def ws(demo_workspace: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(demo_workspace, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


def goal(condition: str) -> dict:
    return {**BASE, "goal": {"conditions": [condition], "window_days": 30}}


def test_calibration_metrics_come_from_cross_fitted_probabilities():
    """In-sample, a calibration map looks better than it is; the reported metrics do not."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 5))
    y = (rng.random(6000) < 1 / (1 + np.exp(-(X[:, 0] + 0.5 * X[:, 1] - 1.5)))).astype(int)
    params = TrainParams(num_threads=1, calibration="isotonic")
    model = PropensityModel(params).fit(X[:4000], y[:4000], X[4000:], y[4000:])
    y_holdout = y[4000:]
    honest = evaluate(y_holdout, model.holdout_probability_, ranking=model.holdout_raw_)
    in_sample = evaluate(y_holdout, model.calibrator_.transform(model.holdout_raw_))
    again = choose_calibrator(model.holdout_raw_, y_holdout, methods=("isotonic",))
    np.testing.assert_allclose(model.holdout_probability_, again.out_of_fold_)
    assert model.holdout_cross_fitted_ and in_sample.ece < honest.ece
    assert honest.auc == pytest.approx(evaluate(y_holdout, 1 / (1 + np.exp(
        -model.holdout_raw_))).auc)


def test_a_run_reports_what_its_metrics_are_measured_on(ws):
    ws.create_instance(BASE)
    run = ws.run("buyers")
    holdout = run.metrics["holdout"]
    assert holdout["out_of_time"] is True and holdout["calibration_measured_on"] == "cross-fitted"
    windows = run.metrics["training_windows"]
    assert [w["anchor"] for w in windows] == run.metrics["windows"]["anchors"]
    assert windows[0]["rows"] == holdout["rows"] and windows[0]["positives"] == holdout["positives"]
    scores = pq.read_table(run_dir(ws.path, run.instance_id, run.id) / "scores.parquet")
    expected = run.metrics["expected"]
    assert expected["expected_goal_profiles"] == pytest.approx(
        float(np.sum(scores.column("probability").to_numpy())))
    assert expected["last_window"]["goal_profiles"] == holdout["positives"]
    assert run.counts["holdout_positives"] == holdout["positives"]
    assert run.counts["holdout_negatives"] == holdout["negatives"]


def test_a_holdout_from_the_only_window_is_marked_optimistic(ws, capsys):
    from likely.cli.main import main

    ws.create_instance(BASE)
    run = ws.run("buyers", as_of=date(2025, 3, 1))  # 60 days: one window
    assert run.counts["anchors"] == 1 and run.metrics["holdout"]["out_of_time"] is False
    assert any("optimistic" in note for note in run.notes)
    for command in (["runs", "show", "buyers"], ["runs", "list", "buyers"],
                    ["run", "buyers", "--as-of", "2025-03-01"]):
        capsys.readouterr()
        assert main([*command, "-w", str(ws.path)]) == 0
        out = " ".join(capsys.readouterr().out.replace("│", " ").split())
        assert "AUC" in out.upper() and "optimistic" in out, command
    assert "expected to meet the goal" in out and "the last window" in out


def test_a_holdout_window_without_positives_is_a_coded_requirement_error(ws):
    ws.create_instance(goal(f"{PURCHASES} AND timestamp < TIMESTAMP '2025-06-15 00:00:00'"))
    with pytest.raises(RunError) as err:
        ws.run("buyers")
    assert err.value.code == 413 and "holdout window (from 2025-06-20" in err.value.message
    assert ws.runs("buyers")[0].error_code == 413


def test_goal_rates_that_differ_across_windows_are_noted(ws):
    ws.create_instance(goal(f"{PURCHASES} AND timestamp >= TIMESTAMP '2025-05-21 00:00:00'"))
    run = ws.run("buyers")
    rates = [w["rate"] for w in run.metrics["training_windows"]]
    assert rates[-1] == 0 and min(rates[:2]) > 0.05
    assert any(n.startswith("Goal rates differ widely between training windows: 0.0% (from "
                            "2025-04-21)") for n in run.notes)


def test_days_since_first_is_no_clock(ws):
    """Capped at what the oldest window sees, scoring values stay within the training range."""
    ws.create_instance(BASE)
    run = ws.run("buyers")
    horizon = run.metrics["windows"]["history_days"]
    features = pq.read_table(run_dir(ws.path, run.instance_id, run.id) / "features.parquet")
    tenure = features.column("days_since_first.all_events").to_numpy(zero_copy_only=False)
    assert np.nanmax(tenure) == horizon < (LAST_DAY - date(2025, 1, 1)).days
    assert not [c for c in features.column_names if c.startswith("count_365d")]


def test_thirteen_months_of_history_learn_the_season(tmp_path):
    data = demo.generate(tmp_path / "demo", profiles=1500, days=400, seed=3)
    ws = Workspace.create(tmp_path / "ws")
    ws.ingest_events([data.events_path], "events")
    ws.create_instance(BASE)
    run = ws.run("buyers")
    year_before = run.metrics["windows"]["seasonal_anchor"]
    assert year_before == run.metrics["windows"]["anchors"][-1]
    assert year_before[:10] == (data.end + timedelta(days=1)).replace(
        year=data.end.year - 1).isoformat()
    plan = json.loads((run_dir(ws.path, run.instance_id, run.id) / "model").read_text())
    assert "calendar.month" in plan["meta"]["feature_names"]


def test_one_thread_setting_governs_lightgbm_too(ws, monkeypatch):
    monkeypatch.setenv("LIKELY_THREADS", "3")  # neither the default nor this machine's cores
    ws = Workspace(ws.path)  # engine settings are read when the workspace opens its engine
    ws.create_instance(BASE)
    run = ws.run("buyers")
    model = json.loads((run_dir(ws.path, run.instance_id, run.id) / "model").read_text())
    assert model["meta"]["lgb_params"]["num_threads"] == 3


def test_ids_that_barely_match_the_profiles_are_noted(ws, tmp_path):
    people = pq.read_table(Path(ws.dataset("profiles").parts[0])).to_pandas()
    people["profile_id"] = "C-" + people.profile_id
    people.to_parquet(tmp_path / "crm.parquet", index=False)
    ws.ingest_profiles([tmp_path / "crm.parquet"], "crm")
    ws.create_instance({**BASE, "datasets": {"events": "events", "profiles": "crm"}})
    run = ws.run("buyers")
    assert run.counts["profiles_matched"] == 0
    assert any(n.startswith("Only 0% of the profiles in the events") for n in run.notes)


def test_retrain_days_is_a_setting_and_older_configs_without_it_still_load(ws):
    """retrain_days was once accepted and ignored, then removed; it now decides retraining."""
    assert parse_instance_config({**BASE, "retrain_days": 30}).retrain_days == 30
    with pytest.raises(ConfigError, match="retrain_days"):
        parse_instance_config({**BASE, "retrain_days": 0})
    instance = ws.create_instance(BASE)
    stored = {k: v for k, v in instance.config.to_dict().items()
              if k not in ("retrain_days", "drift_threshold")}
    with ws.catalog.transaction():
        ws.catalog.update("instances", "id", instance.id, {"config": stored,
                                                           "updated_at": utcnow()})
    assert ws.instance("buyers").config.retrain_days == 90


def test_notes_print_as_written(ws, capsys):
    """A note's [brackets] are text, not terminal markup."""
    from likely.cli.main import main

    ws.create_instance({**BASE, "datasets": {"events": "events", "profiles": "profiles"}})
    ws.run("buyers")
    assert main(["runs", "show", "buyers", "-w", str(ws.path)]) == 0
    out = "".join(capsys.readouterr().out.replace("│", " ").split())  # the table's wrapping
    assert "static_attributes:[loyalty_tier]" in out
