"""The catalog and the workspace's concurrency rules: WAL, schema version, locks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from likely.catalog import MIGRATIONS, Catalog
from likely.errors import BusyError, WorkspaceError
from likely.storage import exclusive_lock


def test_catalog_is_wal_and_versioned(tmp_path):
    catalog = Catalog(tmp_path / "c.sqlite")
    assert catalog.version == len(MIGRATIONS)
    mode = catalog.query_one("PRAGMA journal_mode")
    assert next(iter(mode.values())) == "wal"
    tables = {r["name"] for r in catalog.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"datasets", "dataset_parts", "ingested_files", "instances", "runs", "models",
            "segments"} <= tables


def test_newer_catalog_is_refused(tmp_path):
    path = tmp_path / "c.sqlite"
    Catalog(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(WorkspaceError, match=r"schema version .* Upgrade likely"):
        Catalog(path)


def test_readers_see_committed_data_while_a_writer_holds_a_transaction(tmp_path):
    path = tmp_path / "c.sqlite"
    writer, reader = Catalog(path), Catalog(path)
    with writer.transaction():
        writer.insert("datasets", {"name": "a", "kind": "events", "created_at": "t",
                                   "updated_at": "t"})
    with writer.transaction():
        writer.insert("datasets", {"name": "b", "kind": "events", "created_at": "t",
                                   "updated_at": "t"})
        names = [r["name"] for r in reader.query("SELECT name FROM datasets")]
        assert names == ["a"]  # not blocked, and no half-written state
    assert len(reader.query("SELECT name FROM datasets")) == 2


def test_a_second_process_is_refused_the_lock(tmp_path):
    lock = tmp_path / ".lock"
    code = ("import sys; from likely.storage import exclusive_lock\n"
            "from likely.errors import BusyError\n"
            f"try:\n    with exclusive_lock({str(lock)!r}, 'Dataset x'): pass\n"
            "except BusyError as e:\n    print(e); sys.exit(6)\n")
    with exclusive_lock(lock, "Dataset x"):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 6 and "Dataset x is busy" in done.stdout
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert again.returncode == 0


def test_busy_error_in_process(tmp_path):
    lock = tmp_path / ".lock"
    with exclusive_lock(lock, "Instance y"), pytest.raises(BusyError), \
            exclusive_lock(lock, "Instance y"):
        pass
