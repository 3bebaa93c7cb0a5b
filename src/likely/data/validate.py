"""Checking and typing the canonical columns of one source file.

Every problem is counted in the engine and reported with the file, the first rows (1-based record
numbers inside the file) and the column, so a user can find and fix it. With ``on_error="skip"``
bad rows are dropped instead and the same report says how many and why.

A good file costs one pass for the checks and the row count, the inference of text columns'
types from their distinct values, and the pass that writes it. Row numbers are computed only for
a file with bad rows, to name them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import ibis
import ibis.expr.datatypes as dt
import ibis.selectors as selectors

from likely.data.schema import (
    CANONICAL,
    EVENT_ID,
    PROFILE_ID,
    TIMESTAMP,
    UPDATED_AT,
    VALUE,
    DatasetKind,
)
from likely.data.sources import ROW, numbered
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
    columnar: bool = False,
) -> Validated:
    """Type the canonical columns, infer types of text columns, and check every row.

    ``columnar``: the source reads one column without the others (Parquet), which decides how
    text columns' distinct values are found.
    """
    sources = dict(sources or {})
    _require_columns(table, kind, path, sources)
    checks = _checks(table, kind)
    text_types = _infer_text_types(table, exclude=set(CANONICAL[kind]) | {ROW},
                                   columnar=columnar)
    rows_read, rows_bad, counts = _count_problems(table, checks)
    failing = [key for key, n in counts.items() if n]
    problems = _problems(table, kind, failing, counts) if failing else ()
    if problems and on_error == "fail":
        lines = "; ".join(p.describe(sources.get(p.column, p.column)) for p in problems)
        raise DataError(
            f"File '{path}': {lines}. Nothing was ingested. Fix these rows, or pass "
            "--on-error skip to ingest the other rows and skip these.",
            detail={"file": str(path), "problems": [p.__dict__ for p in problems]},
        )
    clean = table
    if problems:
        bad = ibis.or_(*(checks[key] for key in failing))
        clean = table.filter(~bad)
    out = clean.select(**_typed(clean, kind, text_types))
    return Validated(path, out, rows_read, rows_bad, problems)


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


def _checks(table: ir.Table, kind: DatasetKind) -> dict[tuple[str, str], ir.BooleanValue]:
    """(column, issue) -> true for the rows of ``table`` that have that issue."""
    checks: dict[tuple[str, str], ir.BooleanValue] = {}
    pid = _id_text(table[PROFILE_ID])
    checks[(PROFILE_ID, "a missing profile id")] = pid.isnull() | (pid.strip() == "")
    for column in (TIMESTAMP, UPDATED_AT):
        if column in table.columns:
            raw = table[column]
            if not (raw.type().is_timestamp() or raw.type().is_date()):  # else always parsed
                parsed = _parse_timestamp(raw)
                checks[(column, "an unparseable timestamp")] = parsed.isnull() & raw.notnull()
            if CANONICAL[kind].get(column):
                checks[(column, "a missing timestamp")] = raw.isnull()
    if VALUE in table.columns:
        raw = table[VALUE]
        checks[(VALUE, "a non-numeric value")] = raw.try_cast(dt.float64).isnull() & raw.notnull()
    return checks


def _typed(
    t: ir.Table, kind: DatasetKind, text_types: Mapping[str, dt.DataType]
) -> dict[str, ir.Value]:
    """The columns as stored: canonical ones typed, text columns as inferred, others as read."""
    columns: dict[str, ir.Value] = {PROFILE_ID: _id_text(t[PROFILE_ID])}
    for column in CANONICAL[kind]:
        if column == EVENT_ID and column in t.columns:
            columns[column] = _event_id(t[column])
        elif column in (TIMESTAMP, UPDATED_AT) and column in t.columns:
            columns[column] = _utc_naive(t[column])
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
            columns[column] = _utc_naive(t[column])
        else:
            columns[column] = t[column].try_cast(target)
    return columns


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


def _utc_naive(raw: ir.Value) -> ir.TimestampValue:
    """The UTC time as stored: a timestamp without a zone.

    A timestamp without a zone is taken as UTC already, so it is kept as it is (at microsecond
    precision) rather than sent through a time zone and back, which costs a calendar lookup
    per row.
    """
    dtype = raw.type()
    if (dtype.is_timestamp() and not dtype.timezone) or dtype.is_date():
        return raw.cast(NAIVE_TIMESTAMP)
    return _parse_timestamp(raw).cast(NAIVE_TIMESTAMP)


#: Types a text column may turn out to be, narrowest first.
CANDIDATES: tuple[dt.DataType, ...] = (dt.int64, dt.float64, dt.boolean, dt.date, UTC_TIMESTAMP)
#: Rows whose values rule candidate types out before the distinct values are looked at.
SAMPLE_ROWS = 10_000


def _infer_text_types(
    table: ir.Table, exclude: set[str], *, columnar: bool = False
) -> dict[str, dt.DataType]:
    """Pick the narrowest type that every non-empty value of a text column parses as.

    Whether a value parses depends on the value alone, so the distinct values decide as every
    row would, at a fraction of the cost. First the file's first rows rule out the types some of
    their values do not parse as (usually all of them, for a column of words); only the types
    left are tried on the column's distinct values. A ``columnar`` source (Parquet) reads one
    column cheaply, so each column's distinct values are found on their own; a CSV or JSON file
    would be parsed once per column that way, so the distinct values of all of them are found in
    one read.
    """
    text = [c for c in table.columns if c not in exclude and table[c].type().is_string()]
    if not text:
        return {}
    sample = table.select(*text).limit(SAMPLE_ROWS)
    seen = _distinct_counts(sample, dict.fromkeys(text, CANDIDATES))
    left = {c: [t for t in CANDIDATES if t not in ruled_out] for c, (_, ruled_out) in seen.items()}
    left = {c: targets for c, targets in left.items() if targets}
    if not left:
        return {}
    counts = _column_counts(table, left) if columnar else _distinct_counts(table, left)
    types: dict[str, dt.DataType] = {}
    for column, (values, ruled_out) in counts.items():
        if values == 0:
            continue  # no value at all: stays as read
        for target in left[column]:
            if target not in ruled_out:
                types[column] = target
                break
    return types


def _parses(value: ir.StringValue, target: dt.DataType) -> ir.BooleanValue:
    """True where a text value parses as ``target`` without losing anything (false where null).

    The engine's casts round ``2.5`` to the integer 3 and cut ``2025-01-03 09:30`` to its day,
    so an integer must be the same number read as a float, and a date must be the same time read
    as a timestamp (midnight UTC); values that only one reading accepts (hex ``0x1A``, padded
    ``' 2025-01-03 '``) keep what the cast says.
    """
    cast = value.try_cast(target)
    parses = cast.notnull() & value.notnull()
    if target.is_integer():
        return parses & (value.try_cast(dt.float64) == cast).fill_null(True)
    if target.is_date():
        return parses & (value.try_cast(UTC_TIMESTAMP) == cast.cast(UTC_TIMESTAMP)).fill_null(True)
    return parses


Counts = dict[str, tuple[int, set[dt.DataType]]]


def _distinct_counts(table: ir.Table, targets: Mapping[str, Sequence[dt.DataType]]) -> Counts:
    """column -> (its distinct non-null values, the targets some of them do not parse as).

    One read of ``table``: the columns are stacked as (column, value) pairs and made distinct.
    """
    names = {column: f"c{i}" for i, column in enumerate(targets)}
    pairs = (table.select(**{key: table[column] for column, key in names.items()})
             .pivot_longer(selectors.all(), names_to="k", values_to="v").distinct())
    aggs = {}
    for j, target in enumerate(CANDIDATES):
        keys = [names[c] for c, wanted in targets.items() if target in wanted]
        if keys:
            aggs[f"c{j}"] = pairs.v.count(where=pairs.k.isin(keys) & _parses(pairs.v, target))
    rows = pairs.group_by("k").aggregate(n=pairs.v.count(), **aggs).execute()
    found = {row["k"]: row for row in rows.to_dict("records")}
    return {column: _ruled_out(found.get(key), targets[column]) for column, key in names.items()}


def _column_counts(table: ir.Table, targets: Mapping[str, Sequence[dt.DataType]]) -> Counts:
    """As :func:`_distinct_counts`, each column's distinct values read on their own."""
    parts = []
    for i, (column, wanted) in enumerate(targets.items()):
        values = table.select(v=table[column]).distinct()
        aggs = {f"c{j}": values.v.count(where=_parses(values.v, target))
                for j, target in enumerate(CANDIDATES) if target in wanted}
        unused = {f"c{j}": ibis.literal(-1, dt.int64)
                  for j, target in enumerate(CANDIDATES) if target not in wanted}
        counts = values.aggregate(n=values.v.count(), **aggs).mutate(
            k=ibis.literal(i, dt.int64), **unused)
        parts.append(counts.select("k", "n", *(f"c{j}" for j in range(len(CANDIDATES)))))
    rows = (ibis.union(*parts) if len(parts) > 1 else parts[0]).execute()
    found = {int(row["k"]): row for row in rows.to_dict("records")}
    return {column: _ruled_out(found.get(i), targets[column])
            for i, column in enumerate(targets)}


def _ruled_out(row: Mapping | None, wanted: Sequence[dt.DataType]) -> tuple[int, set[dt.DataType]]:
    """(values, the wanted targets fewer values parse as) from one row of counts."""
    if row is None:  # no value at all
        return 0, set()
    n = int(row["n"])
    return n, {t for j, t in enumerate(CANDIDATES)
               if t in wanted and int(row.get(f"c{j}") or 0) != n}


def _count_problems(
    table: ir.Table, checks: Mapping[tuple[str, str], ir.BooleanValue]
) -> tuple[int, int, dict[tuple[str, str], int]]:
    """Rows in the file, rows failing any check, and rows failing each check, in one pass."""
    keys = list(checks)
    aggs = {f"p{i}": checks[key].sum() for i, key in enumerate(keys)}
    row = table.aggregate(
        _rows=table.count(), _bad=ibis.or_(*checks.values()).sum(), **aggs
    ).execute().iloc[0]
    counts = {key: int(row[f"p{i}"] or 0) for i, key in enumerate(keys)}
    return int(row["_rows"]), int(row["_bad"] or 0), counts


def _problems(
    table: ir.Table,
    kind: DatasetKind,
    failing: Sequence[tuple[str, str]],
    counts: Mapping[tuple[str, str], int],
) -> tuple[Problem, ...]:
    """Each failing check with the first rows that fail it, numbered as records in the file."""
    rows = numbered(table)
    checks = _checks(rows, kind)
    return tuple(_problem(rows, column, issue, checks[(column, issue)], counts[(column, issue)])
                 for column, issue in failing)


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
