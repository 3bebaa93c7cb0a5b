"""A small workspace with a propensity instance and a lifetime-value one, for the CLV surfaces.

'buyers' (conversion, 30 days) and 'clv_90d' (type: clv, 90-day horizon) are run once each at
the demo data's end. Built once per test session (about 15 s) and shared read-only: tests that
run or change something copy it first, or use names of their own.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from likely.data import demo
from likely.scoring.records import run_dir
from likely.workspace import Workspace

BUYERS = {
    "name": "buyers", "datasets": {"events": "events", "profiles": "profiles"},
    "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
    "exclusions": ["event_type = 'directMarketing.emailSent'"],
    "min_positives": 150, "min_negatives": 150, "max_anchors": 2,
}
CLV = {
    "name": "clv_90d", "type": "clv", "horizon_days": 90, "description": "Spend in 90 days.",
    "datasets": {"events": "events", "profiles": "profiles"},
    "exclusions": ["event_type = 'directMarketing.emailSent'"],
}
VALUE_COLUMNS = ("predicted_value", "value_percentile", "value_bucket", "expected_purchases",
                 "probability_active")

_built: dict[str, Path] = {}


def clv_workspace(tmp_path_factory) -> Path:
    """The shared workspace's path (built on first use)."""
    if "path" not in _built:
        root = tmp_path_factory.mktemp("clv-surfaces")
        data = demo.generate(root / "data", profiles=6000, days=240, seed=11)
        ws = Workspace.create(root / "ws")
        ws.ingest_events([data.events_path], "events")
        ws.ingest_profiles([data.profiles_path], "profiles")
        ws.create_instance(BUYERS)
        ws.create_instance(CLV)
        for name in ("buyers", "clv_90d"):
            record = ws.run(name)
            assert record.status == "success", (name, record.error)
        _built["path"] = root / "ws"
    return _built["path"]


def scores_file(ws: Workspace, name: str) -> pd.DataFrame:
    """The current run's scores.parquet, as pandas reads it."""
    run = ws.get_run(name)
    return pd.read_parquet(run_dir(ws.path, run.instance_id, run.id) / "scores.parquet")
