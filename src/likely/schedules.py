"""Schedules: when an instance runs by itself, and whether a run is due.

A schedule is one line of text, stored in the instance's config as written::

    manual                                   (the default: only when asked)
    daily                                    every day at 02:00 UTC
    daily at 06:30 Europe/Berlin
    weekly on monday at 06:00 America/New_York
    monthly on 1 at 03:00                    day 1–28 of each month

Times are wall-clock times in the schedule's time zone. On the day clocks spring forward, a time
in the gap runs as late as the gap is long (02:30 becomes 03:30); on the day they fall back, a
time that occurs twice runs at the first. A run is **due** when the newest scheduled moment has
passed and no run of the instance started since: however many moments were missed, one run
catches up. Runs never overlap: the engine's lock refuses a second run of an instance.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, available_timezones

from likely.errors import ConfigError

if TYPE_CHECKING:
    from likely.catalog import Catalog
    from likely.scoring.instances import Instance

EVERY = ("manual", "daily", "weekly", "monthly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_AT = time(2, 0)
_PATTERN = re.compile(
    r"^(?P<every>manual|daily|weekly|monthly)"
    r"(?:\s+on\s+(?P<on>[a-z]+|\d{1,2}))?"
    r"(?:\s+at\s+(?P<at>\d{1,2}:\d{2}))?"
    r"(?:\s+(?P<zone>[A-Za-z_]+(?:/[A-Za-z0-9_+\-]+)*))?$", re.IGNORECASE)
EXAMPLE = "'weekly on monday at 06:00 Europe/Berlin'"


@dataclass(frozen=True)
class Schedule:
    every: str
    at: time = DEFAULT_AT
    weekday: int = 0      # Monday = 0, for weekly
    day: int = 1          # 1–28, for monthly
    zone: str = "UTC"

    @property
    def manual(self) -> bool:
        return self.every == "manual"

    def in_words(self) -> str:
        if self.manual:
            return "manual (runs only when asked)"
        when = {"daily": "every day",
                "weekly": f"every {WEEKDAYS[self.weekday].capitalize()}",
                "monthly": f"on day {self.day} of every month"}[self.every]
        return f"{when} at {self.at:%H:%M} ({self.zone})"


def parse_schedule(text: str) -> Schedule:
    """Read a schedule line; refusals say what is wrong and show an example."""
    match = _PATTERN.match((text or "").strip())
    if match is None:
        raise ConfigError(f"Schedule '{text}' is not understood. Write manual, daily, weekly or "
                          f"monthly, optionally 'on <weekday|day>', 'at HH:MM' and a time zone, "
                          f"e.g. {EXAMPLE}.", detail={"field": "schedule"})
    every, on, at, zone = match["every"].lower(), match["on"], match["at"], match["zone"]
    on = on.lower() if on else None
    if every == "manual":
        if on or at or zone:
            raise ConfigError(f"Schedule '{text}': manual takes no day, time or zone.",
                              detail={"field": "schedule"})
        return Schedule("manual")
    return Schedule(every, _time(text, at), *_on(text, every, on), _zone(text, zone))


def describe(text: str, now: datetime) -> str:
    """A schedule in words with its next moment: 'every Monday at 06:00 (Europe/Berlin), next
    2025-07-21 04:00 UTC'."""
    schedule = parse_schedule(text)
    upcoming = next_moment(schedule, now)
    return schedule.in_words() + (f", next {upcoming:%Y-%m-%d %H:%M} UTC" if upcoming else "")


def latest_moment(schedule: Schedule, now: datetime) -> datetime | None:
    """The newest scheduled moment at or before ``now`` (UTC), None for manual schedules."""
    if schedule.manual:
        return None
    local = now.astimezone(ZoneInfo(schedule.zone)).date()
    for day in _candidate_days(schedule, local):
        moment = _moment(schedule, day)
        if moment <= now:
            return moment
    return None  # pragma: no cover - a candidate within the last two periods always passed


def next_moment(schedule: Schedule, now: datetime) -> datetime | None:
    """The first scheduled moment after ``now`` (UTC)."""
    if schedule.manual:
        return None
    local = now.astimezone(ZoneInfo(schedule.zone)).date()
    for offset in range(0, 70):
        day = local + timedelta(days=offset)
        if _matches(schedule, day) and (moment := _moment(schedule, day)) > now:
            return moment
    return None  # pragma: no cover


def is_due(schedule: Schedule, now: datetime, last_started: datetime | None) -> bool:
    """Whether a run is due: a moment passed and no run started at or after it."""
    moment = latest_moment(schedule, now)
    return moment is not None and (last_started is None or last_started < moment)


def _candidate_days(schedule: Schedule, today: date) -> list[date]:
    """Local days that may hold the newest moment, newest first (today may be still ahead)."""
    days = [today - timedelta(days=n) for n in range(0, 64)]
    return [d for d in days if _matches(schedule, d)]


def _matches(schedule: Schedule, day: date) -> bool:
    if schedule.every == "daily":
        return True
    if schedule.every == "weekly":
        return day.weekday() == schedule.weekday
    return day.day == schedule.day


def _moment(schedule: Schedule, day: date) -> datetime:
    """The wall-clock time on ``day`` in the zone, as UTC. A time in a spring-forward gap is
    read with the offset before the change (it lands as late as the gap); a repeated time at a
    fall-back is its first occurrence (fold 0)."""
    local = datetime.combine(day, schedule.at, tzinfo=ZoneInfo(schedule.zone))
    return local.astimezone(UTC)


def _time(text: str, at: str | None) -> time:
    if at is None:
        return DEFAULT_AT
    hours, minutes = (int(p) for p in at.split(":"))
    if hours > 23 or minutes > 59:
        raise ConfigError(f"Schedule '{text}': '{at}' is not a time of day (00:00–23:59).",
                          detail={"field": "schedule"})
    return time(hours, minutes)


def _on(text: str, every: str, on: str | None) -> tuple[int, int]:
    """(weekday, day) from the 'on' part, which only weekly and monthly take."""
    if on is None:
        return 0, 1
    if every == "weekly" and len(on) >= 3 and any(w.startswith(on) for w in WEEKDAYS):
        return next(i for i, w in enumerate(WEEKDAYS) if w.startswith(on)), 1
    if every == "monthly" and on.isdigit() and 1 <= int(on) <= 28:
        return 0, int(on)
    wants = {"weekly": "a weekday (monday … sunday)", "monthly": "a day 1–28",
             "daily": "nothing ('daily' runs every day)"}[every]
    raise ConfigError(f"Schedule '{text}': '{on}' is not allowed after 'on'; {every} takes "
                      f"{wants}.", detail={"field": "schedule"})


def _zone(text: str, zone: str | None) -> str:
    """An IANA time zone, found whatever its case (``europe/berlin`` is Europe/Berlin)."""
    if zone is None:
        return "UTC"
    found = _zones().get(zone.lower())
    if found is None:
        raise ConfigError(f"Schedule '{text}': unknown time zone '{zone}'. Use an IANA name "
                          "such as Europe/Berlin, America/New_York or UTC.",
                          detail={"field": "schedule"})
    return found


@functools.cache
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()} | {"utc": "UTC"}


def due_instances(catalog: Catalog, now: datetime) -> list[tuple[Instance, datetime]]:
    """The scheduled instances with a run due at ``now``, each with the moment it is due for.

    The last run is the newest run of the instance by start, whatever started it (a manual run
    after the moment counts) and whatever its outcome (a failed scheduled run waits for the
    next moment rather than retrying at every check).
    """
    from likely.scoring.instances import list_instances

    found = []
    for instance in list_instances(catalog):
        schedule = parse_schedule(instance.config.schedule)
        if schedule.manual:
            continue
        row = catalog.query_one("SELECT max(started_at) AS started FROM runs "
                                "WHERE instance_id = ?", (instance.id,))
        started = _utc(row["started"]) if row and row["started"] else None
        if is_due(schedule, now, started):
            found.append((instance, latest_moment(schedule, now)))
    return found


def _utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
