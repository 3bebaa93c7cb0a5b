"""What every analytic reads: an instance's successful runs, their scores, and a filter.

A :class:`Filter` narrows the scored rows (one per profile per score date) three ways, all
optional and combined with AND:

- ``segment``: the profiles of a segment's membership at its newest score date (the segment as
  it is now), followed back through every score date. The same set of profiles at every date is
  what makes a trend or a flow of "today's segment" readable; a segment's own membership history
  is on its page.
- ``bucket``: the rows in that bucket at their own score date.
- ``where``: a condition over the profile attributes (the whitelisted condition language), as
  the attributes were known at the end of each row's score date (point-in-time, as runs read
  them).

Everything is an Ibis expression over the runs' ``scores.parquet``; only aggregates leave the
engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis

from likely.catalog import Catalog
from likely.conditions import Condition, compile_condition, parse_condition
from likely.data.datasets import get_dataset, open_dataset
from likely.data.profiles import NOT_ATTRIBUTES, Profiles
from likely.data.schema import PROFILE_ID
from likely.engine import read_parquet
from likely.errors import ConfigError, NotFoundError, did_you_mean
from likely.scoring import records
from likely.scoring.instances import Instance
from likely.scoring.outputs import SCORES_FILE
from likely.scoring.scores import BUCKETS

if TYPE_CHECKING:
    import ibis.expr.datatypes as dt
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

#: Buckets as the dashboard lists them: the most likely first.
ORDER = tuple(reversed(BUCKETS))
SCORE_DATE = "score_date"


@dataclass(frozen=True)
class Filter:
    """Which scored rows an analytic counts; empty = every scored profile."""

    segment: str | None = None
    bucket: str | None = None
    where: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "segment", (self.segment or "").strip() or None)
        object.__setattr__(self, "where", (self.where or "").strip() or None)
        bucket = (self.bucket or "").strip()
        if bucket:
            match = next((b for b in BUCKETS if b.lower() == bucket.lower()), None)
            if match is None:
                raise ConfigError(f"Unknown bucket '{bucket}'. Buckets: {', '.join(ORDER)}.")
            bucket = match
        object.__setattr__(self, "bucket", bucket or None)

    @property
    def empty(self) -> bool:
        return not (self.segment or self.bucket or self.where)

    def with_bucket(self, bucket: str | None) -> Filter:
        return Filter(self.segment, bucket, self.where)

    def to_dict(self) -> dict[str, Any]:
        return {"segment": self.segment, "bucket": self.bucket, "where": self.where}


@dataclass
class Scope:
    """One instance's history, read through the catalog (never by listing folders)."""

    catalog: Catalog
    con: BaseBackend
    root: Path
    instance: Instance
    _segment_dates: dict[str, str] = field(default_factory=dict, repr=False)

    # -- runs ------------------------------------------------------------------------------------

    @cached_property
    def runs(self) -> list[records.RunRecord]:
        """Successful runs, oldest score date first."""
        found = records.successful_runs(self.catalog, self.instance.id)
        if not found:
            raise NotFoundError(f"Instance '{self.instance.name}' has no successful run yet, so "
                                f"no scores to analyse. Run it with `likely run "
                                f"{self.instance.name}`.")
        return found

    def select(self, chosen: str | Sequence[str] | None, newest: int | None = None
               ) -> list[records.RunRecord]:
        """Runs by id or score date (``all`` = every run); by default the ``newest`` N (all when
        None). Oldest first, each once."""
        tokens = _tokens(chosen)
        if not tokens:
            return self.runs[-newest:] if newest else list(self.runs)
        if tokens == ["all"]:
            return list(self.runs)
        picked = {}
        for token in tokens:
            run = next((r for r in self.runs if token in (r.id, r.as_of)), None)
            if run is None:
                dates = ", ".join(r.as_of for r in self.runs)
                raise NotFoundError(f"No successful run of '{self.instance.name}' with id or "
                                    f"score date '{token}'. Score dates: {dates}.")
            picked[run.id] = run
        return sorted(picked.values(), key=lambda r: r.as_of)

    def scores(self, runs: Sequence[records.RunRecord]) -> ir.Table:
        """The runs' scores (event format) as one table."""
        return read_parquet(self.con, [records.run_dir(self.root, self.instance.id, r.id)
                                       / SCORES_FILE for r in runs])

    def rows(self, runs: Sequence[records.RunRecord], flt: Filter, *,
             attributes: Sequence[str] = (),
             derive: Callable[[ir.Table], dict[str, ir.Value]] | None = None) -> ir.Table:
        """The runs' scored rows that pass the filter (every column of ``scores.parquet``), with
        ``attributes`` added as ``_a_<name>`` and ``derive``'s columns (see
        :meth:`with_attributes`): the filter's condition and these share one join."""
        table = self.scores(runs)
        if flt.bucket:
            table = table.filter(table.bucket == flt.bucket)
        if flt.segment:  # before the attributes: fewer rows to join
            members = self.segment_members(flt.segment)
            table = table.semi_join(members, table[PROFILE_ID] == members["_member"])
        condition = self.condition(flt.where) if flt.where else None
        read = sorted(condition.columns) if condition else []
        wanted = list(dict.fromkeys([*read, *attributes]))
        if not wanted and derive is None:
            return table
        known = self.with_attributes(table, wanted, runs, prefix="_a_", derive=derive)
        if condition is None:
            return known
        # the condition reads attributes by their own names, whatever the score columns are
        shaped = known.select(**{f"_s_{c}": known[c] for c in known.columns},
                              **{c: known[f"_a_{c}"] for c in read})
        kept = shaped.filter(compile_condition(condition, shaped).fill_null(False))
        out = [*table.columns, *[f"_a_{c}" for c in attributes],
               *[c for c in known.columns if c not in table.columns and not c.startswith("_a_")]]
        return kept.select(**{c: kept[f"_s_{c}"] for c in out})

    @staticmethod
    def stage(table: ir.Table, runs: Sequence[records.RunRecord]) -> ir.IntegerValue:
        """The index (0 = oldest) of each row's run among ``runs``, by its score date."""
        return ibis.cases(*[(table[SCORE_DATE] == ibis.literal(date.fromisoformat(r.as_of)), i)
                            for i, r in enumerate(runs)], else_=-1).cast("int32")

    # -- segments ----------------------------------------------------------------------------------

    def segment_members(self, name: str) -> ir.Table:
        """``_member``: the ids of a segment's members at its newest score date."""
        from likely import segments

        segment = segments.get_segment(self.catalog, name)
        self._segment_dates[name] = segments.members_date(self.catalog, self.root, segment)
        table = segments.segment_members(self.catalog, self.con, self.root, segment)
        return table.select(_member=table[PROFILE_ID]).distinct()

    def segment_date(self, name: str) -> str | None:
        return self._segment_dates.get(name)

    # -- profile attributes ----------------------------------------------------------------------

    @cached_property
    def profiles_dataset(self) -> str:
        name = self.instance.config.datasets.profiles
        if not name:
            raise ConfigError(f"Instance '{self.instance.name}' reads no profiles dataset, so "
                              f"there are no profile attributes to filter or group by.")
        return name

    @cached_property
    def attribute_types(self) -> dict[str, dt.DataType]:
        """Every profile attribute (not the id, not the stamp) and its type."""
        dataset = get_dataset(self.catalog, self.root, self.profiles_dataset)
        return {c["name"]: ibis.dtype(c["type"]) for c in dataset.columns
                if c["name"] not in NOT_ATTRIBUTES}

    @cached_property
    def profiles(self) -> Profiles:
        """The profiles dataset, read point-in-time. Its shape (snapshot or history) is the one
        its data-quality report found over every part at the last ingest; measured when absent."""
        dataset = get_dataset(self.catalog, self.root, self.profiles_dataset)
        table = open_dataset(self.con, dataset)
        static = self.instance.config.static_attributes
        shape = (dataset.quality or {}).get("shape")
        if shape in ("snapshot", "history"):
            return Profiles(table, shape, frozenset(static))
        return Profiles.of(table, static)

    def condition(self, text: str) -> Condition:
        return parse_condition(text, self.attribute_types)

    def check_attribute(self, name: str) -> dt.DataType:
        if name not in self.attribute_types:
            raise ConfigError(f"Unknown profile attribute '{name}'."
                              f"{did_you_mean(name, list(self.attribute_types))} Attributes: "
                              f"{', '.join(sorted(self.attribute_types))}.")
        return self.attribute_types[name]

    def with_attributes(self, table: ir.Table, columns: Iterable[str],
                        runs: Sequence[records.RunRecord], *, prefix: str = "",
                        derive: Callable[[ir.Table], dict[str, ir.Value]] | None = None
                        ) -> ir.Table:
        """``table`` (one row per profile and score date) with ``columns`` of the profile
        attributes added (as ``prefix + column``), each as known at the end of the row's score
        date: what ``Profiles.at`` gives at midnight after it (null when the profile is unknown).
        ``derive`` adds columns computed from the attributes table (one row per profile) before
        the join, where they cost one computation per profile instead of one per row.

        A snapshot has one row per profile whatever the date, so it is joined once and only its
        dates later than each row's score date are blanked (as ``at`` does); a history is joined
        per score date.
        """
        columns = list(dict.fromkeys(columns))
        for column in columns:
            self.check_attribute(column)
        dates = sorted({date.fromisoformat(r.as_of) for r in runs})
        if self.profiles.shape == "snapshot":
            known = self._attributes_at(dates[-1], columns, prefix, derive)
            joined = table.left_join(known, table[PROFILE_ID] == known["_attribute_id"])
            added = {f"{prefix}{c}": _known_by(joined[f"{prefix}{c}"], joined[SCORE_DATE])
                     for c in columns}
            extra = [c for c in known.columns if c != "_attribute_id" and c not in added]
            return joined.select(*[joined[c] for c in table.columns], **added,
                                 **{c: joined[c] for c in extra})
        parts = []
        for day in dates:
            rows = table.filter(table[SCORE_DATE] == ibis.literal(day))
            known = self._attributes_at(day, columns, prefix, derive)
            joined = rows.left_join(known, rows[PROFILE_ID] == known["_attribute_id"])
            parts.append(joined.select(*[joined[c] for c in table.columns],
                                       *[joined[c] for c in known.columns
                                         if c != "_attribute_id"]))
        return ibis.union(*parts) if len(parts) > 1 else parts[0]

    def attributes_at(self, day: date) -> ir.Table:
        """Every profile's attributes as known at the end of ``day``."""
        return self.profiles.at(datetime.combine(day + timedelta(days=1), time()))

    def _attributes_at(self, day: date, columns: list[str], prefix: str,
                       derive: Callable[[ir.Table], dict[str, ir.Value]] | None) -> ir.Table:
        at = self.attributes_at(day)
        return at.select(_attribute_id=at[PROFILE_ID], **{f"{prefix}{c}": at[c] for c in columns},
                         **(derive(at) if derive else {}))

    # -- what every answer carries -------------------------------------------------------------

    def envelope(self, kind: str, flt: Filter, runs: Sequence[records.RunRecord],
                 **extra: Any) -> dict[str, Any]:
        described = {**flt.to_dict(), "in_words": self.in_words(flt)}
        if flt.segment:
            described["segment_date"] = self.segment_date(flt.segment)
        return {"instance": self.instance.name, "kind": kind, "filter": described,
                "runs": [run_line(r) for r in runs], **extra}

    def in_words(self, flt: Filter) -> str:
        if flt.empty:
            return "every scored profile"
        parts = []
        if flt.segment:
            when = self.segment_date(flt.segment)
            parts.append(f"members of segment '{flt.segment}'"
                         + (f" (as of {when})" if when else ""))
        if flt.bucket:
            parts.append(f"in bucket {flt.bucket} at each score date")
        if flt.where:
            parts.append(f"whose attributes meet {flt.where}")
        return ", ".join(parts)


def run_line(run: records.RunRecord) -> dict[str, str]:
    return {"run_id": run.id, "score_date": run.as_of}


def _tokens(chosen: str | Sequence[str] | None) -> list[str]:
    if chosen is None:
        return []
    items = [chosen] if isinstance(chosen, str) else list(chosen)
    return [t.strip() for item in items for t in str(item).split(",") if t.strip()]


def _known_by(value: ir.Value, day: ir.DateValue) -> ir.Value:
    """A date or time after the end of ``day`` had not happened yet: null (as ``Profiles.at`` at
    the midnight after ``day``: a date is known when it is ``day`` or before, a time when its
    date is)."""
    dtype = value.type()
    if dtype.is_timestamp():
        return ibis.ifelse(value.date() <= day, value, ibis.null(dtype))
    if dtype.is_date():
        return ibis.ifelse(value <= day, value, ibis.null(dtype))
    return value


def iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (date, datetime)) else value
