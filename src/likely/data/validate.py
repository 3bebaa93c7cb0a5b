"""Checking and typing the canonical columns of one source file.

Every problem is counted in the engine and reported with the file, the first rows (1-based record
numbers inside the file) and the column, so a user can find and fix it. With ``on_error="skip"``
bad rows are dropped instead and the same report says how many and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import ibis
import ibis.expr.datatypes as dt

from likely.data.schema import (
    CANONICAL,
    EVENT_ID,
    PROFILE_ID,
    TIMESTAMP,
    UPDATED_AT,
    VALUE,
    DatasetKind,
)
from likely.data.sources import ROW
from likely.errors import DataError

if TYPE_CHECKING:
    import ibis.expr.types as ir

OnError = Literal["fail", "skip"]
EXAMPLES = 3
UTC_TIMESTAMP = dt.Timestamp(timezone="UTC")
NAIVE_TIMESTAMP = dt.Timestamp()


@dataclass(frozen=True)
class Problem:
    """Rows of one file that fail one check."""

    column: str
    issue: str
    rows: int
    examples: tuple[tuple[int, str], ...]

    def describe(self, source_column: str) -> str:
        shown = ", ".join(f"row {row} {value!r}" for row, value in self.examples)
        more = f" (first {len(self.examples)} shown)" if self.rows > len(self.examples) else ""
        col = f"'{self.column}'"
        if source_column != self.column:
            col += f" (source column '{source_column}')"
        return f"{self.rows} row(s) with {self.issue} in column {col}: {shown}{more}"


@dataclass(frozen=True)
class Validated:
    """A typed canonical table and what was found on the way."""

    path: Path
    table: ir.Table
    rows_read: int
    rows_skipped: int
    problems: tuple[Problem, ...]


def validate(
    table: ir.Table,
    kind: DatasetKind,
    path: Path,
    *,
    on_error: OnError = "fail",
    sources: Mapping[str, str] | None = None,
) -> Validated:
    """Type the canonical columns, infer types of text columns, and check every row."""
    sources = dict(sources or {})
    _require_columns(table, kind, path, sources)
    typed, checks = _typed_columns(table, kind)
    rows_read, counts = _count_problems(table, checks)
    problems = tuple(
        _problem(table, column, issue, checks[(column, issue)], n)
        for (column, issue), n in counts.items()
        if n
    )
    if problems and on_error == "fail":
        lines = "; ".join(p.describe(sources.get(p.column, p.column)) for p in problems)
        raise DataError(
            f"File '{path}': {lines}. Nothing was ingested. Fix these rows, or pass "
            "--on-error skip to ingest the other rows and skip these.",
            detail={"file": str(path), "problems": [p.__dict__ for p in problems]},
        )
    clean = table
    if problems:
        bad = ibis.or_(*(checks[(p.column, p.issue)] for p in problems))
        clean = table.filter(~bad)
    out = clean.select(**typed(clean))
    skipped = rows_read - int(out.count().execute()) if problems else 0
    return Validated(path, out, rows_read, skipped, problems)


def _require_columns(
    table: ir.Table, kind: DatasetKind, path: Path, sources: Mapping[str, str]
) -> None:
    for column, required in CANONICAL[kind].items():
        if required and column not in table.columns:
            known = ", ".join(c for c in table.columns if c != ROW)
            raise DataError(
                f"File '{path}' has no column '{column}' (required for {kind}). Its columns: "
                f"{known}. Map one with --map {column}=<source column>.",
                detail={"file": str(path), "column": column},
            )


def _typed_columns(table: ir.Table, kind: DatasetKind):
    """Return (a function building the typed columns for a table, the row checks)."""
    checks: dict[tuple[str, str], ir.BooleanValue] = {}
    pid = _id_text(table[PROFILE_ID])
    checks[(PROFILE_ID, "a missing profile id")] = pid.isnull() | (pid.strip() == "")
    for column in (TIMESTAMP, UPDATED_AT):
        if column in table.columns:
            raw = table[column]
            parsed = _parse_timestamp(raw)
            checks[(column, "an unparseable timestamp")] = parsed.isnull() & raw.notnull()
            if CANONICAL[kind].get(column):
                checks[(column, "a missing timestamp")] = raw.isnull()
    if VALUE in table.columns:
        raw = table[VALUE]
        checks[(VALUE, "a non-numeric value")] = raw.try_cast(dt.float64).isnull() & raw.notnull()

    text_types = _infer_text_types(table, exclude=set(CANONICAL[kind]) | {ROW})

    def typed(t: ir.Table) -> dict[str, ir.Value]:
        columns: dict[str, ir.Value] = {PROFILE_ID: _id_text(t[PROFILE_ID])}
        for column in CANONICAL[kind]:
            if column == EVENT_ID and column in t.columns:
                columns[column] = _event_id(t[column])
            elif column in (TIMESTAMP, UPDATED_AT) and column in t.columns:
                columns[column] = _parse_timestamp(t[column]).cast(NAIVE_TIMESTAMP)
            elif column == VALUE and column in t.columns:
                columns[column] = t[column].try_cast(dt.float64)
            elif column != PROFILE_ID and column in t.columns:
                columns[column] = t[column].cast(dt.string)
        if kind == "events":
            columns.setdefault("event_type", ibis.null(dt.string))
            columns.setdefault(VALUE, ibis.null(dt.float64))
        for column in t.columns:
            if column in columns or column == ROW:
                continue
            target = text_types.get(column)
            if target is None:
                columns[column] = t[column]
            elif target.is_timestamp():
                columns[column] = _parse_timestamp(t[column]).cast(NAIVE_TIMESTAMP)
            else:
                columns[column] = t[column].try_cast(target)
        return columns

    return typed, checks


def _id_text(value: ir.Value) -> ir.StringValue:
    """An id as text; a float or decimal holding a whole number gives its digits.

    pandas writes an integer id column that has nulls as float64, so without this one customer
    would be ``"123"`` in one file and ``"123.0"`` in another. Other numbers keep their text
    (``"1.5"``); a float NaN is a missing id.
    """
    dtype = value.type()
    if dtype.is_string():
        return value
    if not (dtype.is_floating() or dtype.is_decimal()):
        return value.cast(dt.string)
    if dtype.is_floating():
        value = ibis.ifelse(value.isnan(), ibis.null(dtype), value)
    whole = value.try_cast(dt.int64)
    return ibis.ifelse(whole == value, whole.cast(dt.string), value.cast(dt.string))


def _event_id(value: ir.Value) -> ir.StringValue:
    """The event id as text; blank means none, so it is stored as null (such rows are all kept)."""
    text = _id_text(value)
    return ibis.ifelse(text.strip() == "", ibis.null(dt.string), text)


def _parse_timestamp(raw: ir.Value) -> ir.TimestampValue:
    """Text with an offset is converted to UTC; text without one is taken as UTC already."""
    dtype = raw.type()
    if dtype.is_timestamp():
        return raw if dtype.timezone else raw.cast(UTC_TIMESTAMP)
    if dtype.is_date():
        return raw.cast(UTC_TIMESTAMP)
    return raw.cast(dt.string).try_cast(UTC_TIMESTAMP)


def _infer_text_types(table: ir.Table, exclude: set[str]) -> dict[str, dt.DataType]:
    """Pick the narrowest type that every non-empty value of a text column parses as."""
    text = [c for c in table.columns if c not in exclude and table[c].type().is_string()]
    if not text:
        return {}
    candidates = (dt.int64, dt.float64, dt.boolean, dt.date, UTC_TIMESTAMP)
    aggs = {}
    for i, column in enumerate(text):
        col = table[column]
        aggs[f"n{i}"] = col.count()
        for j, target in enumerate(candidates):
            aggs[f"c{i}_{j}"] = col.try_cast(target).count()
    row = table.aggregate(**aggs).execute().iloc[0]
    types: dict[str, dt.DataType] = {}
    for i, column in enumerate(text):
        if row[f"n{i}"] == 0:
            continue
        for j, target in enumerate(candidates):
            if row[f"c{i}_{j}"] == row[f"n{i}"]:
                types[column] = target
                break
    return types


def _count_problems(
    table: ir.Table, checks: Mapping[tuple[str, str], ir.BooleanValue]
) -> tuple[int, dict[tuple[str, str], int]]:
    """Rows in the file and rows failing each check, in one pass."""
    keys = list(checks)
    aggs = {f"p{i}": checks[key].sum() for i, key in enumerate(keys)}
    row = table.aggregate(_rows=table.count(), **aggs).execute().iloc[0]
    return int(row["_rows"]), {key: int(row[f"p{i}"] or 0) for i, key in enumerate(keys)}


def _problem(
    table: ir.Table, column: str, issue: str, check: ir.BooleanValue, rows: int
) -> Problem:
    shown = table.filter(check).order_by(ROW).limit(EXAMPLES)
    sample = shown.select(ROW, raw=table[column].cast(dt.string)).execute()
    examples = tuple(
        (int(r), "" if v is None or v != v else str(v))
        for r, v in zip(sample[ROW], sample["raw"])
    )
    return Problem(column, issue, rows, examples)
