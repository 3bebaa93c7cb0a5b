"""The workspace: likely's front door for the CLI, the web app and Python users.

A workspace is a folder::

    <workspace>/
      catalog.sqlite        metadata: datasets, instances, runs, models, segments (SQLite, WAL)
      data/<dataset>/       ingested datasets as Parquet parts
      runs/<instance>/      run outputs (scores, explanations, models)

>>> ws = Workspace.create("/tmp/ws")                       # doctest: +SKIP
>>> ws.ingest_events(["events.csv"], name="events")        # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from likely.catalog import Catalog
from likely.data import datasets as _datasets
from likely.data.ingest import IngestReport, Progress, ingest
from likely.data.schema import DatasetKind
from likely.data.sources import SourceFormat
from likely.data.validate import OnError
from likely.engine import EngineSettings, connect
from likely.errors import WorkspaceError

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

DEFAULT_PATH = "likely-workspace"
ENV_VAR = "LIKELY_WORKSPACE"
CATALOG = "catalog.sqlite"


def resolve_path(path: str | Path | None = None) -> Path:
    """``path``, else ``$LIKELY_WORKSPACE``, else ``./likely-workspace``."""
    return Path(path or os.environ.get(ENV_VAR) or DEFAULT_PATH).expanduser().resolve()


class Workspace:
    """An initialised workspace folder. Open one per process (or thread)."""

    def __init__(self, path: str | Path | None = None, *, engine: EngineSettings | None = None):
        self.path = resolve_path(path)
        if not (self.path / CATALOG).exists():
            raise WorkspaceError(
                f"No likely workspace at '{self.path}'. Create one with `likely init "
                f"{self.path}` (or pass --workspace / set {ENV_VAR})."
            )
        self.engine_settings = engine or EngineSettings(temp_directory=str(self.path / "tmp"))

    @classmethod
    def create(cls, path: str | Path | None = None, *, exist_ok: bool = True) -> Workspace:
        """Create (or open, if ``exist_ok``) a workspace folder with an empty catalog."""
        root = resolve_path(path)
        if (root / CATALOG).exists() and not exist_ok:
            raise WorkspaceError(f"A workspace already exists at '{root}'.")
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"'{root}' exists and is not a folder.")
        for sub in ("data", "runs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        Catalog(root / CATALOG).close()
        return cls(root)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.path / CATALOG)

    @cached_property
    def con(self) -> BaseBackend:
        """The engine connection (DuckDB by default), opened on first use."""
        return connect(self.engine_settings)

    # -- data in -------------------------------------------------------------------------------

    def ingest(
        self,
        kind: DatasetKind,
        paths: Sequence[str | Path],
        name: str,
        *,
        format: SourceFormat | None = None,
        column_map: Mapping[str, str] | None = None,
        on_error: OnError = "fail",
        allow_duplicate_file: bool = False,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Add files to a dataset of ``kind`` ('events' or 'profiles'), creating it if new."""
        return ingest(
            self.catalog, self.con, self.path, kind, paths, name, fmt=format,
            column_map=column_map, on_error=on_error,
            allow_duplicate_file=allow_duplicate_file, now=datetime.now(UTC),
            progress=progress,
        )

    def ingest_events(self, paths: Sequence[str | Path], name: str, **options) -> IngestReport:
        return self.ingest("events", paths, name, **options)

    def ingest_profiles(self, paths: Sequence[str | Path], name: str, **options) -> IngestReport:
        return self.ingest("profiles", paths, name, **options)

    def datasets(self) -> list[_datasets.Dataset]:
        return _datasets.list_datasets(self.catalog, self.path)

    def dataset(self, name: str) -> _datasets.Dataset:
        return _datasets.get_dataset(self.catalog, self.path, name)

    def table(self, name: str) -> ir.Table:
        """A dataset as an Ibis table (lazy: nothing is read until a result is asked for)."""
        return _datasets.open_dataset(self.con, self.dataset(name))

    def delete_dataset(self, name: str, *, force: bool = False) -> list[str]:
        """Delete a dataset; returns the instances that used it (only possible with ``force``)."""
        return _datasets.delete_dataset(self.catalog, self.path, name, force=force)
