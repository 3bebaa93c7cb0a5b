"""What the benchmarks that replicate a real run share: a workspace with demo data ingested."""

from __future__ import annotations

from pathlib import Path

from likely.data import demo
from likely.workspace import Workspace


def demo_workspace(root: Path, profiles: int, *, days: int = 200,
                   seed: int = 11) -> tuple[Workspace, demo.DemoData]:
    """``root/ws`` with ``profiles`` demo profiles ingested as datasets 'events' and
    'profiles' (the generator's files stay in ``root/data``)."""
    data = demo.generate(root / "data", profiles=profiles, days=days, seed=seed)
    ws = Workspace.create(root / "ws")
    ws.ingest_events([data.events_path], "events")
    ws.ingest_profiles([data.profiles_path], "profiles")
    return ws, data
