"""Shared fixtures: a fresh workspace in a temp folder, and helpers to write source files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
