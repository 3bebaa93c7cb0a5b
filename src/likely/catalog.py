"""The workspace catalog: metadata in SQLite (WAL), so many processes read while one run writes.

Tables (schema version in ``PRAGMA user_version``; migrations only ever add):

- ``datasets``        one row per ingested dataset (events or profiles) with its columns and
                      data-quality report (JSON).
- ``dataset_parts``   the Parquet parts that make up a dataset, in ingest order. A dataset's data
                      is exactly the parts listed here: a part file on disk that is not listed
                      (left by a crash) is ignored.
- ``ingested_files``  every source file ingested, with its SHA-256 (duplicate-file detection).
- ``instances``       prediction instances: a stable id, a unique name, the config (JSON).
- ``runs``            one row per run: status, as-of date, timings, counts, metrics, error.
- ``models``          trained models: where saved, content hash, metrics.
- ``segments``        named rules over scores and profile attributes; ``automatic`` ones are
                      made by runs (one per bucket, one per common top reason among High).
- ``segment_memberships`` one row per materialised membership of a published segment: its score
                      date, Parquet file, size, and how many entered and left (``exited``) since
                      the previous one.
- ``destinations``    where segments are activated: a named config (folder, webhook, table);
                      credentials are named environment variables, never stored.
- ``activations``     the log of every activation: when, where, how many, outcome.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from likely.errors import WorkspaceError

MIGRATIONS: list[str] = [
    # 1: the foundation.
    """
    CREATE TABLE datasets (
        name        TEXT PRIMARY KEY,
        kind        TEXT NOT NULL CHECK (kind IN ('events', 'profiles')),
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        columns     TEXT NOT NULL DEFAULT '[]',
        quality     TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE dataset_parts (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,
        dataset             TEXT NOT NULL REFERENCES datasets(name) ON DELETE CASCADE,
        path                TEXT NOT NULL,
        rows                INTEGER NOT NULL,
        rows_skipped        INTEGER NOT NULL DEFAULT 0,
        duplicates_dropped  INTEGER NOT NULL DEFAULT 0,
        ingested_at         TEXT NOT NULL
    );
    CREATE TABLE ingested_files (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        dataset  TEXT NOT NULL REFERENCES datasets(name) ON DELETE CASCADE,
        part_id  INTEGER NOT NULL REFERENCES dataset_parts(id) ON DELETE CASCADE,
        source   TEXT NOT NULL,
        sha256   TEXT NOT NULL,
        rows     INTEGER NOT NULL
    );
    CREATE INDEX ingested_files_sha ON ingested_files(dataset, sha256);
    CREATE TABLE instances (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        config      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE runs (
        id           TEXT PRIMARY KEY,
        instance_id  TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
        as_of        TEXT NOT NULL,
        status       TEXT NOT NULL,
        started_at   TEXT NOT NULL,
        finished_at  TEXT,
        model_id     TEXT,
        timings      TEXT NOT NULL DEFAULT '{}',
        counts       TEXT NOT NULL DEFAULT '{}',
        metrics      TEXT NOT NULL DEFAULT '{}',
        notes        TEXT NOT NULL DEFAULT '[]',
        error_code   INTEGER,
        error        TEXT
    );
    CREATE INDEX runs_instance ON runs(instance_id, started_at);
    CREATE TABLE models (
        id           TEXT PRIMARY KEY,
        instance_id  TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
        run_id       TEXT NOT NULL,
        path         TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        metrics      TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE segments (
        id           TEXT PRIMARY KEY,
        name         TEXT NOT NULL UNIQUE,
        rule         TEXT NOT NULL,
        instance_ids TEXT NOT NULL DEFAULT '[]',
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        published    INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 2: segments get a description (the dashboard's Create segment names and describes one).
    """
    ALTER TABLE segments ADD COLUMN description TEXT NOT NULL DEFAULT ''
    """,
    # 3: segments are published (membership history), made automatically, activated.
    """
    ALTER TABLE segments ADD COLUMN automatic INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE segments ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE segment_memberships (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        segment_id    TEXT NOT NULL REFERENCES segments(id) ON DELETE CASCADE,
        score_date    TEXT NOT NULL,
        path          TEXT NOT NULL,
        profiles      INTEGER NOT NULL,
        entered       INTEGER,
        exited        INTEGER,
        run_ids       TEXT NOT NULL DEFAULT '{}',
        published_at  TEXT NOT NULL,
        UNIQUE (segment_id, score_date)
    );
    CREATE TABLE destinations (
        name        TEXT PRIMARY KEY,
        kind        TEXT NOT NULL CHECK (kind IN ('folder', 'webhook', 'table')),
        config      TEXT NOT NULL DEFAULT '{}',
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE activations (
        id              TEXT PRIMARY KEY,
        segment_id      TEXT NOT NULL,
        segment_name    TEXT NOT NULL,
        destination     TEXT NOT NULL,
        mode            TEXT NOT NULL,
        score_date      TEXT,
        status          TEXT NOT NULL,
        started_at      TEXT NOT NULL,
        finished_at     TEXT,
        profiles        INTEGER NOT NULL DEFAULT 0,
        sent            INTEGER NOT NULL DEFAULT 0,
        entered         INTEGER,
        exited          INTEGER,
        batches         INTEGER NOT NULL DEFAULT 0,
        failed_batches  INTEGER NOT NULL DEFAULT 0,
        detail          TEXT NOT NULL DEFAULT '{}',
        error           TEXT
    );
    CREATE INDEX activations_segment ON activations(segment_id, started_at);
    """,
]

JSON_COLUMNS = {"columns", "quality", "config", "timings", "counts", "metrics", "notes",
                "instance_ids", "run_ids", "detail"}


def utcnow() -> str:
    """Wall-clock time for bookkeeping only (never for cutting data by time)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Catalog:
    """A connection to ``catalog.sqlite``. Cheap to open; open one per process or thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._migrate()

    @property
    def version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        current = self.version
        if current > len(MIGRATIONS):
            raise WorkspaceError(
                f"Catalog {self.path} has schema version {current}; this likely knows up to "
                f"{len(MIGRATIONS)}. Upgrade likely to open this workspace."
            )
        for number, script in enumerate(MIGRATIONS[current:], start=current + 1):
            with self.transaction():
                for statement in script.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        return [_decode(row) for row in self._db.execute(sql, params).fetchall()]

    def query_one(self, sql: str, params: tuple | dict = ()) -> dict[str, Any] | None:
        row = self._db.execute(sql, params).fetchone()
        return _decode(row) if row is not None else None

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, _encode(params))

    def insert(self, table: str, values: dict[str, Any]) -> int:
        columns = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        cursor = self._db.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", _encode(values)
        )
        return int(cursor.lastrowid or 0)

    def update(self, table: str, key: str, key_value: Any, values: dict[str, Any]) -> None:
        assignments = ", ".join(f"{k} = :{k}" for k in values)
        self._db.execute(
            f"UPDATE {table} SET {assignments} WHERE {key} = :_key",
            {**_encode(values), "_key": key_value},
        )

    def close(self) -> None:
        self._db.close()


def _encode(params: tuple | dict) -> tuple | dict:
    if isinstance(params, dict):
        return {
            k: json.dumps(v, default=str) if k in JSON_COLUMNS and not isinstance(v, str) else v
            for k, v in params.items()
        }
    return params


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in JSON_COLUMNS & out.keys():
        if isinstance(out[key], str):
            out[key] = json.loads(out[key])
    return out
