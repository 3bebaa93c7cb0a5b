"""Atomic files: a crash never leaves half a result, and old results stay readable.

Everything likely writes into a workspace goes through here: write to a temporary file in the same
folder, flush it to disk, then rename over the target (``os.replace`` is atomic on one filesystem).
Readers that opened the old file keep reading it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pyarrow as pa


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


ROW_GROUP_ROWS = 100_000  # small enough that a lookup by a sorted key skips most of a file


def write_table(table: pa.Table, target: str | Path) -> Path:
    """Write an Arrow table to Parquet atomically."""
    import pyarrow.parquet as pq

    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    return Path(target)


def write_expr(expr: ir.Table, target: str | Path) -> Path:
    """Let the engine write an Ibis expression to Parquet (streaming), atomically."""
    from likely.engine import write_parquet

    with atomic_path(target) as tmp:
        write_parquet(expr, tmp)  # one file from any engine (Spark alone would write a folder)
    return Path(target)


def write_batches(
    schema: pa.Schema, batches: Callable[[], Iterator[pa.RecordBatch]], target: str | Path
) -> Path:
    """Write record batches as they come, so a large result never sits in memory whole."""
    import pyarrow.parquet as pq

    with atomic_path(target) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in batches():
            writer.write_batch(batch)
    return Path(target)


EXPORT_FORMATS = ("csv", "parquet", "jsonl")


def export_expr(expr: ir.Table, target: str | Path, fmt: str) -> Path:
    """Write a result for people and other systems: CSV (lists and records as JSON text),
    Parquet, or JSON Lines (streamed in batches), atomically."""
    from likely.errors import ConfigError

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"Unknown export format '{fmt}'. Allowed: {', '.join(EXPORT_FORMATS)}.")
    from likely.engine import write_parquet

    with atomic_path(target) as tmp:
        if fmt == "parquet":
            write_parquet(expr, tmp)
        elif fmt == "csv":
            nested = {c: expr[c].cast("json").cast("string") for c, t in expr.schema().items()
                      if t.is_nested()}
            (expr.mutate(**nested) if nested else expr).to_csv(tmp)
        else:
            with open(tmp, "w") as handle:
                for batch in expr.to_pyarrow_batches(chunk_size=100_000):
                    for row in batch.to_pylist():
                        handle.write(json.dumps(row, default=str) + "\n")
    return Path(target)


def write_json(data: Any, target: str | Path) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str, sort_keys=True))
    return Path(target)


def write_bytes(data: bytes, target: str | Path) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def exclusive_lock(path: str | Path, what: str) -> Iterator[None]:
    """Hold an advisory lock on ``path`` for the duration; refuse at once if another holds it.

    Used so that two ingests into one dataset, or two runs of one instance, never interleave.
    The lock dies with its process, so a crash never leaves it stuck.
    """
    import fcntl

    from likely.errors import BusyError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise BusyError(
                f"{what} is busy: {holder} is working on it. Wait for it to finish and retry."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
