"""Shared fixtures: a fresh workspace in a temp folder, and helpers to write source files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from likely.data import demo
from likely.workspace import Workspace

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from likely.features import FeaturePlan
    from likely.model.train import PropensityModel


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.create(tmp_path / "ws")


@pytest.fixture
def write(tmp_path: Path):
    """write(name, text) -> path of a new source file in the temp folder."""

    def _write(name: str, content: str | list[dict]) -> Path:
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, list):
            content = "\n".join(json.dumps(r) for r in content) + "\n"
        path.write_text(content)
        return path

    return _write


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory) -> Path:
    """A workspace with small demo data ingested as datasets 'events' and 'profiles'.

    Shared by the whole session: copy it (shutil.copytree) before running anything in it.
    """
    root = tmp_path_factory.mktemp("demo")
    data = demo.generate(root / "data", profiles=3000, days=200, seed=5)
    ws = Workspace.create(root / "ws")
    ws.ingest_events([data.events_path], "events")
    ws.ingest_profiles([data.profiles_path], "profiles")
    return root / "ws"


# -- the dashboard: a workspace with runs, served by a real server on loopback --------------------

DASHBOARD_LAST_DAY = "2025-07-19"  # the demo data's last day (2025-01-01 + 200 days)
DASHBOARD_INSTANCE = {
    "name": "buyers", "type": "conversion", "description": "Purchase within 30 days.",
    "datasets": {"events": "events", "profiles": "profiles"},
    "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
    "exclusions": ["event_type = 'directMarketing.emailSent'"],
    "min_positives": 150, "min_negatives": 150,
}


@pytest.fixture(scope="session")
def dashboard_workspace(demo_workspace: Path, tmp_path_factory) -> Path:
    """Demo data with instance 'buyers' run twice (2025-06-01, whose 30-day outcome window the
    second run at the data's end measures, then 2025-07-19) and 'never-run' created only.

    Shared: tests that change it use their own names and leave these two alone.
    """
    import shutil
    from datetime import date

    path = tmp_path_factory.mktemp("dashboard") / "ws"
    shutil.copytree(demo_workspace, path)
    ws = Workspace(path)
    ws.create_instance(DASHBOARD_INSTANCE)
    ws.create_instance({**DASHBOARD_INSTANCE, "name": "never-run", "description": ""})
    ws.run("buyers", as_of=date(2025, 6, 1))
    ws.run("buyers", as_of=date.fromisoformat(DASHBOARD_LAST_DAY))
    return path


class LiveServer:
    """``likely``'s app served by uvicorn in a thread on a free loopback port."""

    def __init__(self, app) -> None:
        import socket
        import threading

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        import time

        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("The dashboard server did not start.")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def dashboard(dashboard_workspace: Path):
    """A real ``likely`` dashboard server over the dashboard workspace; yields its base URL."""
    from likely.web import create_app

    with LiveServer(create_app(dashboard_workspace)) as server:
        yield server


def scored_features(folder: Path) -> tuple[PropensityModel, FeaturePlan, pa.Table, pd.DataFrame]:
    """A finished run folder's model, feature plan, features.parquet and those features as the
    model reads them (one frame), for tests that recompute what the run explained."""
    import pyarrow.parquet as pq

    from likely.features import FeaturePlan, arrow_frame
    from likely.model.store import load_model

    model = load_model(folder / "model")
    meta = json.loads((folder / "model").read_text())["meta"]
    plan = FeaturePlan.from_dict(meta["config"]["plan"])
    features = pq.read_table(folder / "features.parquet")
    frame = arrow_frame(features.to_batches(max_chunksize=features.num_rows)[0], plan)
    return model, plan, features, frame
