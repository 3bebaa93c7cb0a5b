"""Capped training rows: a stable sample of profiles trains, the holdout keeps its rows."""

from __future__ import annotations

import shutil
from datetime import date

from likely.workspace import Workspace

INSTANCE = {
    "name": "buyers", "datasets": {"events": "events", "profiles": "profiles"},
    "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
    "exclusions": ["event_type = 'directMarketing.emailSent'"],
    "min_positives": 150, "min_negatives": 150, "max_anchors": 3,
    "max_training_rows": 2500,
}


def test_a_capped_run_samples_profiles_but_keeps_the_holdout(demo_workspace, tmp_path):
    shutil.copytree(demo_workspace, tmp_path / "ws")
    ws = Workspace(tmp_path / "ws")
    ws.create_instance(INSTANCE)
    run = ws.run("buyers", as_of=date(2025, 7, 1))
    windows = run.metrics["training_windows"]  # newest first: the holdout window
    eligible = sum(w["rows"] for w in windows)
    assert eligible > INSTANCE["max_training_rows"]
    assert run.counts["holdout_rows"] == windows[0]["rows"]  # under 50,000: all of it
    rate = INSTANCE["max_training_rows"] / eligible
    older = sum(w["rows"] for w in windows[1:])
    assert 0.7 * rate * older < run.counts["training_rows"] < 1.3 * rate * older
    assert any("Training rows capped at 2,500" in n for n in run.notes)
    assert run.metrics["holdout"]["auc"] > 0.7
