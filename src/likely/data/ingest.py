"""Ingesting source files into a dataset: read, check, type, de-duplicate, write, record.

Nothing is dropped unless the data says it is a duplicate. Identical rows are kept by default:
in a transaction log without an order id, two identical rows are usually two real orders. With an
``event_id`` column a row whose id the dataset already holds, or that repeats within the new
files, is dropped (one row per id is kept). ``dedupe="exact"`` opts into dropping identical rows.

A failed ingest changes nothing: the new rows go to a new Parquet part written atomically, and the
part only becomes part of the dataset when the catalog transaction that lists it commits. A part
left on disk by a crash is never listed, so never read.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import ibis

from likely.catalog import Catalog, utcnow
from likely.data.datasets import check_name, dataset_dir, find_dataset, open_dataset
from likely.data.quality import exact_duplicate_rows, quality_report
from likely.data.schema import EVENT_ID, TIMESTAMP, DatasetKind
from likely.data.sources import (
    FORMATS,
    SourceFormat,
    apply_column_map,
    expand_paths,
    infer_format,
    read_source,
    reading,
)
from likely.data.validate import OnError, Validated, validate
from likely.engine import read_parquet
from likely.errors import AlreadyExistsError, ConfigError, DataError
from likely.storage import atomic_path, exclusive_lock, sha256_file, write_expr

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

Progress = Callable[[str, int, int], None]
#: What ``dedupe`` may ask for: ``auto`` (by event id when there is one, else keep every row),
#: ``exact`` (drop identical rows) or ``none`` (keep everything).
Dedupe = Literal["auto", "exact", "none"]
DEDUPE_MODES: tuple[str, ...] = ("auto", "exact", "none")
#: What was actually de-duplicated on: ``auto`` resolves to ``event_id`` or ``none``.
DedupeBy = Literal["event_id", "exact", "none"]
_RANK = "_likely_rank"


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did, for the CLI table and the JSON API."""

    dataset: str
    kind: DatasetKind
    files: tuple[str, ...]
    rows_read: int
    rows_ingested: int
    rows_skipped: int
    duplicates_dropped: int
    dedupe: Dedupe
    dedupe_applied: DedupeBy
    exact_duplicates_kept: int
    part: str
    seconds: float
    quality: dict[str, Any]
    problems: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def ingest(
    catalog: Catalog,
    con: BaseBackend,
    root: Path,
    kind: DatasetKind,
    paths: Sequence[str | Path],
    name: str,
    *,
    fmt: SourceFormat | None = None,
    column_map: Mapping[str, str] | None = None,
    on_error: OnError = "fail",
    allow_duplicate_file: bool = False,
    dedupe: Dedupe = "auto",
    now: datetime,
    progress: Progress | None = None,
) -> IngestReport:
    """Add the rows of ``paths`` to dataset ``name`` (created if new). See the module docstring."""
    started = time.perf_counter()
    check_name(name)
    _check_options(fmt, on_error, dedupe)
    files = expand_paths(paths)
    with exclusive_lock(dataset_dir(root, name) / ".lock", f"Dataset '{name}'"):
        existing = find_dataset(catalog, root, name)
        if existing is not None and existing.kind != kind:
            raise ConfigError(
                f"Dataset '{name}' holds {existing.kind}, not {kind}. Pick another --name."
            )
        hashes = _check_duplicate_files(catalog, name, files, allow_duplicate_file)
        checked = _read_and_validate(con, files, kind, fmt, column_map or {}, on_error, progress)
        new_rows = _union(checked)
        old = open_dataset(con, existing) if existing and existing.parts else None
        if old is not None:
            _merged_schema([("the dataset", old), ("the new files", new_rows)])
        applied = _dedupe_by(dedupe, new_rows)
        new_rows = _deduplicate(new_rows, old, applied)
        part = dataset_dir(root, name) / f"part-{uuid.uuid4().hex[:12]}.parquet"
        _step(progress, "writing", 0, 1)
        _write_part(con, new_rows, part)
        _step(progress, "recording", 0, 1)
        try:
            return _record(
                catalog, con, root, name, kind, files, hashes, checked, part, existing,
                dedupe=dedupe, applied=applied, old=old, now=now, started=started,
            )
        except BaseException:
            part.unlink(missing_ok=True)
            raise


def _write_part(con: BaseBackend, rows: ir.Table, part: Path) -> None:
    """Write the new rows to ``part`` atomically.

    Rows in a part have no order, so DuckDB may write them as its threads finish them: keeping
    the order of the files read buffered whole files in memory (4.4 GiB for 20M events from four
    files) and took half as long again.
    """
    if con.name != "duckdb":
        write_expr(rows, part)
        return
    with atomic_path(part) as tmp:
        rows.to_parquet(tmp, compression="zstd", preserve_order=False)


def _check_options(fmt: str | None, on_error: str, dedupe: str) -> None:
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"Unknown --format '{fmt}'. Allowed: {', '.join(FORMATS)}.")
    if on_error not in ("fail", "skip"):
        raise ConfigError(f"Unknown --on-error '{on_error}'. Allowed: fail, skip.")
    if dedupe not in DEDUPE_MODES:
        raise ConfigError(f"Unknown --dedupe '{dedupe}'. Allowed: {', '.join(DEDUPE_MODES)}.")


def _check_duplicate_files(
    catalog: Catalog, name: str, files: list[Path], allow: bool
) -> list[str]:
    hashes = [sha256_file(f) for f in files]
    if allow:
        return hashes
    seen: dict[str, Path] = {}
    for path, digest in zip(files, hashes):
        if digest in seen:
            raise AlreadyExistsError(
                f"File '{path}' has the same content as '{seen[digest]}' in this ingest. "
                "Pass each file once, or --allow-duplicate-file."
            )
        seen[digest] = path
        row = catalog.query_one(
            "SELECT f.source, p.ingested_at FROM ingested_files f "
            "JOIN dataset_parts p ON p.id = f.part_id WHERE f.dataset = ? AND f.sha256 = ?",
            (name, digest),
        )
        if row is not None:
            raise AlreadyExistsError(
                f"File '{path}' was already ingested into dataset '{name}' (as '{row['source']}' "
                f"at {row['ingested_at']}). Nothing was ingested. Pass --allow-duplicate-file "
                "to ingest it again: its rows are then added again, except those whose event_id "
                "the dataset already holds (add --dedupe exact to drop rows identical to ones "
                "already there)."
            )
    return hashes


def _read_and_validate(
    con: BaseBackend,
    files: list[Path],
    kind: DatasetKind,
    fmt: SourceFormat | None,
    column_map: Mapping[str, str],
    on_error: OnError,
    progress: Progress | None,
) -> list[Validated]:
    checked = []
    for i, path in enumerate(files):
        _step(progress, f"checking {path.name}", i, len(files))
        file_format = fmt or infer_format(path)
        table = apply_column_map(read_source(con, path, file_format), column_map, path,
                                 file_format)
        with reading(path, file_format):  # the checks are the first full read of the file
            checked.append(validate(table, kind, path, on_error=on_error, sources=column_map,
                                    columnar=file_format == "parquet"))
    _step(progress, "checked", len(files), len(files))
    return checked


def _union(checked: list[Validated]) -> ir.Table:
    """All files' rows as one table; columns missing from a file are null there."""
    tables = [v.table for v in checked]
    schema = _merged_schema([(str(v.path), v.table) for v in checked])
    aligned = [
        t.select(**{c: (t[c].cast(typ) if c in t.columns else ibis.null(typ))
                    for c, typ in schema.items()})
        for t in tables
    ]
    return ibis.union(*aligned, distinct=False) if len(aligned) > 1 else aligned[0]


def _dedupe_by(dedupe: Dedupe, new_rows: ir.Table) -> DedupeBy:
    """``auto`` means by event id when the new rows have one, else keep every row."""
    if dedupe == "auto":
        return "event_id" if EVENT_ID in new_rows.columns else "none"
    return dedupe


def _deduplicate(new_rows: ir.Table, old: ir.Table | None, by: DedupeBy) -> ir.Table:
    """The new rows less duplicates within themselves and of what the dataset holds."""
    if by == "event_id":
        return _by_event_id(new_rows, old)
    if by == "exact":
        return _exact(new_rows, old)
    return new_rows


def _by_event_id(new_rows: ir.Table, old: ir.Table | None) -> ir.Table:
    """One row per event id not already in the dataset; rows without an id are all kept.

    Of several new rows with one id the one kept is the first by timestamp, then by every other
    column, so the result does not depend on the order files were read in or on threads.
    Ranking rows within their id sorts every row, so it is done only when an id does repeat
    (counting distinct ids first costs a third of it).
    """
    ids = new_rows[EVENT_ID]
    counts = new_rows.aggregate(ids=ids.count(), distinct=ids.nunique()).execute().iloc[0]
    kept = new_rows
    if int(counts["ids"]) != int(counts["distinct"]):
        others = [c for c in new_rows.columns if c not in (EVENT_ID, TIMESTAMP)]
        keys = [new_rows[c].asc() for c in (TIMESTAMP, *others) if c in new_rows.columns]
        rank = ibis.row_number().over(group_by=ids, order_by=keys)
        ranked = new_rows.mutate(**{_RANK: rank})
        kept = ranked.filter(ranked[EVENT_ID].isnull() | (ranked[_RANK] == 0)).drop(_RANK)
    if old is None or EVENT_ID not in old.columns:
        return kept
    known = old.filter(old[EVENT_ID].notnull()).select(EVENT_ID).distinct()
    return kept.anti_join(known, EVENT_ID)


def _exact(new_rows: ir.Table, old: ir.Table | None) -> ir.Table:
    """Drop exact duplicate rows, within the new files and against what the dataset holds."""
    distinct = new_rows.distinct()
    if old is None:
        return distinct
    old_aligned = old.select(
        **{c: (old[c].cast(t) if c in old.columns else ibis.null(t))
           for c, t in distinct.schema().items()}
    )
    return distinct.difference(old_aligned)


def _merged_schema(tables: list[tuple[str, ir.Table]]) -> dict[str, Any]:
    """One type per column across tables; numbers widen, other mismatches are refused."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for label, table in tables:
        for column, dtype in table.schema().items():
            if column not in merged or dtype.is_null():
                merged.setdefault(column, dtype)
                origin.setdefault(column, label)
                continue
            known = merged[column]
            if known.is_null():
                merged[column] = dtype
            elif _same_type(known, dtype):
                pass
            elif known.is_numeric() and dtype.is_numeric():
                merged[column] = ibis.dtype("float64")
            else:
                raise DataError(
                    f"Column '{column}' is {known} in {origin[column]} but {dtype} in {label}. "
                    "Convert the column, or map it to another name with --map."
                )
    return merged


def _same_type(a: Any, b: Any) -> bool:
    """Equal up to nullability and timestamp precision (Parquet stores microseconds)."""
    if a.is_timestamp() and b.is_timestamp():
        return True
    return a.copy(nullable=True) == b.copy(nullable=True)


def _record(
    catalog: Catalog,
    con: BaseBackend,
    root: Path,
    name: str,
    kind: DatasetKind,
    files: list[Path],
    hashes: list[str],
    checked: list[Validated],
    part: Path,
    existing: Any,
    *,
    dedupe: Dedupe,
    applied: DedupeBy,
    old: ir.Table | None,
    now: datetime,
    started: float,
) -> IngestReport:
    parts = [*(existing.parts if existing else ()), part]
    full = read_parquet(con, parts)
    before = _exact_duplicates_before(existing, old)
    # The new part holds no row twice nor any row the dataset held: as many duplicates as before.
    quality = quality_report(full, kind, now=now,
                             exact_duplicates=before if applied == "exact" else None)
    kept = quality["exact_duplicate_rows"] - before
    rows_new = int(read_parquet(con, [part]).count().execute())
    rows_valid = sum(v.rows_read - v.rows_skipped for v in checked)
    columns = [{"name": c, "type": str(t)} for c, t in full.schema().items()]
    stamp = utcnow()
    problems = tuple({"file": str(v.path), **p.__dict__} for v in checked for p in v.problems)
    with catalog.transaction():
        if existing is None:
            catalog.insert("datasets", {"name": name, "kind": kind, "created_at": stamp,
                                        "updated_at": stamp, "columns": columns,
                                        "quality": quality})
        else:
            catalog.update("datasets", "name", name,
                           {"updated_at": stamp, "columns": columns, "quality": quality})
        part_id = catalog.insert("dataset_parts", {
            "dataset": name, "path": str(part.relative_to(root)), "rows": rows_new,
            "rows_skipped": sum(v.rows_skipped for v in checked),
            "duplicates_dropped": rows_valid - rows_new, "ingested_at": stamp,
        })
        for v, digest in zip(checked, hashes):
            catalog.insert("ingested_files", {"dataset": name, "part_id": part_id,
                                              "source": str(v.path), "sha256": digest,
                                              "rows": v.rows_read})
    return IngestReport(
        dataset=name, kind=kind, files=tuple(str(f) for f in files),
        rows_read=sum(v.rows_read for v in checked), rows_ingested=rows_new,
        rows_skipped=sum(v.rows_skipped for v in checked),
        duplicates_dropped=rows_valid - rows_new, dedupe=dedupe, dedupe_applied=applied,
        exact_duplicates_kept=kept, part=str(part.relative_to(root)),
        seconds=round(time.perf_counter() - started, 3), quality=quality, problems=problems,
    )


def _exact_duplicates_before(existing: Any, old: ir.Table | None) -> int:
    """Exact duplicate rows the dataset held before this ingest (from its report when it has it).

    The ingest's kept duplicates are the growth of this count: rows of the new part identical to
    another row, new or old.
    """
    if old is None:
        return 0
    known = existing.quality.get("exact_duplicate_rows")
    return int(known) if known is not None else exact_duplicate_rows(old)


def _step(progress: Progress | None, what: str, done: int, total: int) -> None:
    if progress is not None:
        progress(what, done, total)
