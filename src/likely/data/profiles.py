"""Profile attributes as they were known at a date: snapshots and histories.

A profiles dataset is one of two shapes, told apart from the data (:func:`profile_shape`):

- a **snapshot**: one row per profile, as a CRM export is. Its ``updated_at``, if any, says when
  the row was last written ("last modified"), not since when its values were true: a profile
  stamped after a date may well have existed, with other values, before it. So a snapshot row is
  read at every date alike, and only the attributes an instance declares time-invariant
  (``static_attributes``) may describe the past; the others would carry today's values, shaped
  by what the customer did since, into the training windows.
- a **history**: several versions per profile, each valid from its ``updated_at``. At a date, the
  version stamped last *before* it applies (rows without a stamp apply from the start).

Either way exactly one row per profile is picked, deterministically: newest stamp first, then by
every other column, so identical queries give identical rows and no row mixes the columns of
two versions. Date attributes later than the date read as null: at that date the thing (a
signup, a first order) had not happened yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import ibis

from likely.data.schema import PROFILE_ID, UPDATED_AT

if TYPE_CHECKING:
    import ibis.expr.types as ir

ProfileShape = Literal["snapshot", "history"]
#: The columns that identify and stamp a profile row; every other column is an attribute.
NOT_ATTRIBUTES = frozenset({PROFILE_ID, UPDATED_AT})
_RANK = "_likely_rank"


def profile_shape(table: ir.Table) -> ProfileShape:
    """``history`` when some profile has rows with two or more different ``updated_at``."""
    return "history" if shape_report(table)["versioned_profiles"] else "snapshot"


def shape_report(table: ir.Table) -> dict[str, Any]:
    """Counts behind the shape, and the most rows one profile has, for the data-quality report
    (one grouped pass in the engine)."""
    stamped = UPDATED_AT in table.columns
    stamp = table[UPDATED_AT] if stamped else ibis.null("timestamp")
    per = table.group_by(PROFILE_ID).aggregate(
        rows=lambda t: t.count(), stamps=stamp.nunique() if stamped else ibis.literal(0))
    row = per.aggregate(
        profiles=per.count(),
        repeated=(per.rows > 1).sum(),
        versioned=(per.stamps > 1).sum(),
        most=per.stamps.max(),
        most_rows=per.rows.max(),
    ).execute().iloc[0]
    versioned = int(row["versioned"] or 0)
    return {
        "shape": "history" if versioned else "snapshot",
        "versioned_profiles": versioned,
        "profiles_with_several_rows": int(row["repeated"] or 0),
        "versions_per_profile_max": int(row["most"] or 0) if stamped else 1,
        "rows_per_profile_max": int(row["most_rows"] or 0),
    }


@dataclass(frozen=True)
class Profiles:
    """A profiles dataset read point-in-time.

    ``static`` names the time-invariant attributes; ``horizon`` is the newest instant the run
    may read (its cutoff): a history's static attributes come from its newest version before it.
    """

    table: ir.Table
    shape: ProfileShape
    static: frozenset[str] = field(default_factory=frozenset)
    horizon: datetime | None = None

    @classmethod
    def of(cls, table: ir.Table, static: Iterable[str] = (), *,
           horizon: datetime | None = None) -> Profiles:
        return cls(table, profile_shape(table), frozenset(static), horizon)

    @property
    def attributes(self) -> list[str]:
        """Every attribute column (not the id, not the stamp)."""
        return [c for c in self.table.columns if c not in NOT_ATTRIBUTES]

    def describes_the_past(self, column: str) -> bool:
        """Whether ``column``'s value at a past date can be known: history, or declared static."""
        return self.shape == "history" or column in self.static

    def at(self, moment: datetime) -> ir.Table:
        """One row per profile: ``profile_id`` and every attribute as known just before ``moment``.

        Snapshot: the profile's row, whatever its stamp. History: the version stamped last
        before ``moment``; static attributes come from the newest version before the horizon
        (default ``moment``), since their value never changes.
        """
        if self.shape == "snapshot":
            current = _one_row(self.table)
        else:
            current = _one_row(self._stamped_before(moment))
            static = [c for c in self.attributes if c in self.static]
            if static:
                latest = _one_row(self._stamped_before(self.horizon or moment))
                fixed = latest.select(**{PROFILE_ID: latest[PROFILE_ID]},
                                      **{f"_s_{c}": latest[c] for c in static})
                current = (fixed.left_join(current, PROFILE_ID)
                           .select(PROFILE_ID, *[c for c in self.attributes if c not in static],
                                   **{c: fixed[f"_s_{c}"] for c in static}))
        return current.select(PROFILE_ID, **{c: _known_at(current[c], moment)
                                             for c in self.attributes})

    def existing_at(self, moment: datetime) -> ir.Table:
        """The profiles the dataset knows of before ``moment`` (a snapshot knows all of them)."""
        table = self.table if self.shape == "snapshot" else self._stamped_before(moment)
        return table.select(PROFILE_ID).distinct()

    def _stamped_before(self, moment: datetime) -> ir.Table:
        if UPDATED_AT not in self.table.columns:
            return self.table
        stamp = self.table[UPDATED_AT]
        return self.table.filter(stamp.isnull() | (stamp < moment))


def _one_row(table: ir.Table) -> ir.Table:
    """Exactly one row per profile: newest stamp first, ties broken by every other column."""
    keys = [table[c].asc() for c in table.columns if c not in NOT_ATTRIBUTES]
    if UPDATED_AT in table.columns:
        keys.insert(0, table[UPDATED_AT].desc(nulls_first=False))
    if not keys:
        return table.select(PROFILE_ID).distinct()
    rank = ibis.row_number().over(group_by=table[PROFILE_ID], order_by=keys)
    return table.mutate(**{_RANK: rank}).filter(lambda t: t[_RANK] == 0).drop(_RANK)


def _known_at(value: ir.Value, moment: datetime) -> ir.Value:
    """Dates at or after ``moment`` had not happened yet: they read as null."""
    dtype = value.type()
    if dtype.is_timestamp():
        return ibis.ifelse(value < moment, value, ibis.null(dtype))
    if dtype.is_date():  # a date means its midnight
        return ibis.ifelse(value.cast("timestamp") < moment, value, ibis.null(dtype))
    return value
