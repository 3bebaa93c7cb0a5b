"""The data-quality report every dataset gets at ingest.

All figures are aggregated in the engine; only small results (one row of counts, one row per day,
one row per event type) come back to Python. Stored in the catalog as JSON and shown by
``likely datasets show``. Keys are a contract: new ones are added, none renamed or removed.

Duplicates are counted, never judged: ``exact_duplicate_rows`` (rows identical to an earlier one)
may be real repeat orders; ``event_id_duplicates`` (rows repeating an event id) are not.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import ibis

from likely.data.profiles import shape_report
from likely.data.schema import (
    EVENT_ID,
    EVENT_TYPE,
    PROFILE_ID,
    TIMESTAMP,
    UPDATED_AT,
    DatasetKind,
)

if TYPE_CHECKING:
    import ibis.expr.types as ir

MAX_GAPS_LISTED = 20
MAX_EVENT_TYPES = 50


def quality_report(
    table: ir.Table, kind: DatasetKind, *, now: datetime, exact_duplicates: int | None = None
) -> dict[str, Any]:
    """Rows, profiles, time span, gaps, completeness, duplicates, event types or profile shape,
    and freshness as of ``now``.

    ``now`` is an argument (not read from the clock) so a report can be recomputed for any date.
    ``exact_duplicates`` is the count of exact duplicate rows where the caller knows it (an
    ingest that dropped them knows the dataset holds as many as before), else it is counted.
    """
    with_ids = kind == "events" and EVENT_ID in table.columns
    counts = table.aggregate(
        rows=table.count(),
        profiles=table[PROFILE_ID].nunique(),
        **({"ids": table[EVENT_ID].count(), "distinct_ids": table[EVENT_ID].nunique()}
           if with_ids else {}),
        **{f"nonnull_{i}": table[c].count() for i, c in enumerate(table.columns)},
    ).execute().iloc[0]
    rows = int(counts["rows"])
    if exact_duplicates is None:
        exact_duplicates = exact_duplicate_rows(
            # Rows whose event id no other row has cannot be identical to another row.
            table.filter(table[EVENT_ID].isnull())
            if with_ids and int(counts["ids"]) == int(counts["distinct_ids"]) else table
        )
    report: dict[str, Any] = {
        "kind": kind,
        "rows": rows,
        "profiles": int(counts["profiles"]),
        "columns": len(table.columns),
        "completeness": {
            c: round(100.0 * int(counts[f"nonnull_{i}"]) / rows, 2) if rows else 0.0
            for i, c in enumerate(table.columns)
        },
        "exact_duplicate_rows": exact_duplicates,
    }
    if with_ids:
        report["event_id_duplicates"] = int(counts["ids"]) - int(counts["distinct_ids"])
    time_column = TIMESTAMP if kind == "events" else UPDATED_AT
    if time_column in table.columns:
        report.update(_time_span(table, time_column, now))
    if kind == "events":
        report["event_types"] = _event_types(table)
    else:
        report.update(shape_report(table))
    return report


def exact_duplicate_rows(table: ir.Table) -> int:
    """Rows identical in every column to another row (each such group counts all but one).

    Only rows whose hash of every column is shared with another row can be duplicates: those
    few are then grouped by every column, so no hash collision is ever counted. Grouping every
    row by every column cost twice as much as hashing.
    """
    key = ibis.struct({f"c{i}": table[c] for i, c in enumerate(table.columns)}).hash()
    shared = (table.mutate(_likely_h=key).group_by("_likely_h")
              .aggregate(_likely_n=lambda t: t.count()).filter(lambda t: t._likely_n > 1))
    # The hash is computed again rather than kept in a shared subquery, which DuckDB would
    # materialise whole.
    candidates = table.filter(key.isin(shared._likely_h))
    groups = candidates.group_by(table.columns).aggregate(_likely_n=lambda t: t.count())
    extra = groups.aggregate(extra=(groups._likely_n - 1).sum()).execute().iloc[0]["extra"]
    return int(extra or 0)


def id_overlap(events: ir.Table, profiles: ir.Table) -> dict[str, Any]:
    """How many of the profile ids seen in events the profiles dataset knows, in one query.

    A low share usually means the two datasets use different identity namespaces (e.g. an email
    hash in one, a CRM id in the other), so profile attributes would be missing for most people.
    ``share`` is 0.0 when the events name no profile.
    """
    ids = events.select(PROFILE_ID).distinct()
    row = ids.aggregate(
        event_profiles=ids.count(),
        matched=ids[PROFILE_ID].isin(profiles[PROFILE_ID]).sum(),
    ).execute().iloc[0]
    seen, matched = int(row["event_profiles"]), int(row["matched"] or 0)
    return {"event_profiles": seen, "matched": matched,
            "share": matched / seen if seen else 0.0}


def _time_span(table: ir.Table, column: str, now: datetime) -> dict[str, Any]:
    days = (
        table.filter(table[column].notnull())
        .group_by(day=table[column].date())
        .aggregate(events=lambda t: t.count())
        .order_by("day")
        .execute()
    )
    if days.empty:
        return {"first": None, "last": None, "days_of_history": 0, "gap_days": 0, "gaps": []}
    bounds = table.aggregate(first=table[column].min(), last=table[column].max()).execute()
    first, last = bounds["first"].iloc[0].to_pydatetime(), bounds["last"].iloc[0].to_pydatetime()
    active = {_as_date(d) for d in days["day"]}
    gaps = _gaps(min(active), max(active), active)
    return {
        "first": first.isoformat(),
        "last": last.isoformat(),
        "days_of_history": (last.date() - first.date()).days + 1,
        "active_days": len(active),
        "gap_days": sum(g["days"] for g in gaps),
        "gaps": gaps[:MAX_GAPS_LISTED],
        "freshness_days": round((now.replace(tzinfo=None) - last).total_seconds() / 86400, 2),
    }


def _gaps(first: date, last: date, active: set[date]) -> list[dict[str, Any]]:
    """Runs of consecutive days with no events between the first and the last day."""
    gaps: list[dict[str, Any]] = []
    day, start = first, None
    while day <= last:
        if day not in active and start is None:
            start = day
        elif day in active and start is not None:
            gaps.append({"from": start.isoformat(), "to": (day - timedelta(days=1)).isoformat(),
                         "days": (day - start).days})
            start = None
        day += timedelta(days=1)
    return gaps


def _event_types(table: ir.Table) -> dict[str, int]:
    if EVENT_TYPE not in table.columns:
        return {}
    counts = (
        table.group_by(EVENT_TYPE)
        .aggregate(n=lambda t: t.count())
        .order_by([lambda t: t.n.desc(), EVENT_TYPE])
        .limit(MAX_EVENT_TYPES)
        .execute()
    )
    return {str(k) if k is not None else "(none)": int(n)
            for k, n in zip(counts[EVENT_TYPE], counts["n"])}




def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return value.to_pydatetime().date()
