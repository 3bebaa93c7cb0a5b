"""Shared fixtures: a fresh workspace in a temp folder, and helpers to write source files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from likely.data import demo
from likely.workspace import Workspace


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
