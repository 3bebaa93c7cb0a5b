"""When a run looks: the scoring instant, the training anchors, and the history checks.

``as_of`` is a calendar date; scores describe each profile at the END of that day, so the scoring
instant (the *cutoff*) is midnight UTC after it, and events on the as-of day are features. The
default as-of is the newest *complete* day: a last day holding far fewer events than the same
weekday usually does looks like a partial export, so the run scores the day before and says so.

Windows: features use events strictly before an anchor; the outcome window is
``[anchor, anchor + W)``, so an event exactly at an anchor is the future, and with date-only data
(midnight timestamps) every day belongs to exactly one side. History is counted in whole
calendar days.

Training anchors step back one outcome window at a time: ``cutoff - W``, ``cutoff - 2W``, ...
within one year of the cutoff, each with at least 30 days of history before it; when at least
three anchors can have 90 days of history, anchors must have 90, so 90-day features exist.
With 13 months of history the anchor a year before the cutoff is added too, so the model sees
the season the scores are for.

Features may only look as far back as the *oldest* anchor can see (``history_days``) when
customers were active before the data starts: a 365-day count at an anchor with 60 days of data
would then mean something else than at the score date. The data tells: when customers were
active before it, their first events pile up at its start (far more profiles are first seen in
its first 30 days than in the next 30); when the data starts with its customers (a cohort, a
new business) nothing before it is missing and every window means the same everywhere.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from likely.config import InstanceConfig
from likely.data.schema import PROFILE_ID, TIMESTAMP
from likely.errors import RunError

if TYPE_CHECKING:
    import ibis.expr.types as ir

MIN_HISTORY_DAYS = 30
PREFERRED_HISTORY_DAYS = 90  # room for the 90-day features
MIN_ANCHORS_FOR_PREFERRED = 3
MAX_DAYS_BACK = 365
PARTIAL_DAY_SHARE = 0.5  # a last day below half its usual count is partial...
PARTIAL_DAY_MIN_USUAL = 10  # ...when the usual count is big enough to tell
PARTIAL_DAY_WEEKS = 4
FIRST_SEEN_DAYS = 30  # first-seen profiles in the data's first 30 days against the next 30...
FIRST_SEEN_PILE_UP = 2.0  # ...this many times more: customers were active before the data


@dataclass(frozen=True)
class EventSpan:
    """What the run knows of the events' time span: the exact ends and the events per day."""

    first_event: datetime
    last_event: datetime
    per_day: dict[date, int]
    first_seen: tuple[int, int] = (0, 0)  # profiles first seen in the first 30 days, next 30

    @property
    def customers_before_data(self) -> bool:
        """Whether customers were active before the data starts (their first events pile up)."""
        early, later = self.first_seen
        return early > FIRST_SEEN_PILE_UP * later

    def newest_day_until(self, day: date) -> date | None:
        days = [d for d in self.per_day if d <= day]
        return max(days) if days else None


def event_span(events: ir.Table) -> EventSpan:
    """First and last event and the events per calendar day, in one grouped pass."""
    day = events[TIMESTAMP].date()
    per_day = (events.group_by(day=day)
               .aggregate(n=lambda t: t.count(), first=lambda t: t[TIMESTAMP].min(),
                          last=lambda t: t[TIMESTAMP].max())
               .execute())
    if per_day.empty:
        raise RunError(412, "The events dataset has no events. Ingest data first.")
    first = per_day["first"].min().to_pydatetime()
    return EventSpan(first, per_day["last"].max().to_pydatetime(),
                     {_day(d): int(n) for d, n in zip(per_day["day"], per_day["n"])},
                     _first_seen(events, first))


def _first_seen(events: ir.Table, start: datetime) -> tuple[int, int]:
    """Profiles whose first event is in the data's first 30 days, and in the 30 after."""
    first = events.group_by(PROFILE_ID).aggregate(t=events[TIMESTAMP].min())
    edge, end = (start + timedelta(days=FIRST_SEEN_DAYS * k) for k in (1, 2))
    row = first.aggregate(early=(first.t < edge).sum(),
                          later=((first.t >= edge) & (first.t < end)).sum()).execute().iloc[0]
    return int(row["early"] or 0), int(row["later"] or 0)


def _day(value) -> date:
    return value if type(value) is date else value.date()


@dataclass(frozen=True)
class RunWindows:
    as_of: date
    cutoff: datetime
    anchors: tuple[datetime, ...]  # newest first; anchors[0] is the holdout
    window_days: int
    history_needed_days: int
    first_event: datetime
    last_event: datetime
    lookback_days: int
    history_days: int = 0  # whole days of data before the oldest anchor
    seasonal_anchor: datetime | None = None
    partial_day: dict | None = None  # the skipped partial last day, when there was one
    customers_before_data: bool = True

    @property
    def feature_reach_days(self) -> int | None:
        """How far back features may look: ``history_days`` when the data's start censors
        them, else no limit."""
        return self.history_days if self.customers_before_data else None

    @property
    def short_lookback(self) -> tuple[datetime, ...]:
        """The anchors with less history before them than the population lookback."""
        first = self.first_event.date()
        return tuple(a for a in self.anchors if (a.date() - first).days < self.lookback_days)

    def to_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(), "cutoff": self.cutoff.isoformat(),
            "anchors": [a.isoformat() for a in self.anchors], "window_days": self.window_days,
            "history_needed_days": self.history_needed_days,
            "first_event": self.first_event.isoformat(), "last_event": self.last_event.isoformat(),
            "short_lookback": [a.isoformat() for a in self.short_lookback],
            "history_days": self.history_days,
            "seasonal_anchor": self.seasonal_anchor.isoformat() if self.seasonal_anchor else None,
            "outcome_window": "[anchor, anchor + window_days)",
            "partial_day": self.partial_day,
            "customers_before_data": self.customers_before_data,
            "feature_reach_days": self.feature_reach_days,
        }

    def notes(self) -> list[str]:
        notes = []
        if self.partial_day:
            p = self.partial_day
            notes.append(f"The last day of data ({p['day']}) holds {p['events']:,} events against "
                         f"a usual {p['usual']:,} on that weekday: it looks like a partial "
                         f"export, so the scores are as of {self.as_of}. Pass --as-of "
                         f"{p['day']} to score it anyway.")
        reach = self.feature_reach_days
        if reach is not None and reach < 365:
            notes.append(f"Customers were active before the data starts "
                         f"({self.first_event:%Y-%m-%d}), so features look back at most {reach} "
                         "days, what the oldest training window sees; longer-term activity "
                         "enters as rates per 30 days since first seen. Ingest older history "
                         "for longer windows.")
        if self.short_lookback:
            dates = ", ".join(f"{a:%Y-%m-%d}" for a in self.short_lookback)
            notes.append(f"The population lookback ({self.lookback_days} days) reaches before "
                         f"the data starts ({self.first_event:%Y-%m-%d}) at training window(s) "
                         f"{dates}: eligibility there uses the history available.")
        return notes


def plan_windows(config: InstanceConfig, span: EventSpan, as_of: date | None) -> RunWindows:
    """Place the anchors, or raise the coded error that says why a run cannot train."""
    partial = None
    if as_of is None:
        as_of, partial = newest_complete_day(span)
    last_day, first_day = span.last_event.date(), span.first_event.date()
    if as_of > last_day:
        raise RunError(408, f"The as-of date {as_of} is after the data ends ({last_day}): the "
                            "newest training window's outcome would be cut short. Ingest newer "
                            f"data or pick --as-of {last_day} or earlier.",
                       detail={"as_of": as_of.isoformat(), "last_event": last_day.isoformat()})
    if first_day > as_of:
        raise RunError(408, f"No events before the as-of date {as_of}: the data starts "
                            f"{first_day}. Pick a later --as-of.")
    window, lookback = config.goal.window_days, config.population.lookback_days
    cutoff = datetime.combine(as_of + timedelta(days=1), time())
    _check_history(as_of, first_day, window)
    _check_recent(span, as_of, lookback)
    anchors = _anchors(cutoff, first_day, window, config.max_anchors)
    seasonal = _seasonal_anchor(cutoff, first_day, anchors, window)
    if seasonal is not None:
        anchors = (*anchors, seasonal)
    history_days = (anchors[-1].date() - first_day).days
    return RunWindows(as_of, cutoff, anchors, window, MIN_HISTORY_DAYS + window,
                      span.first_event, span.last_event, lookback, history_days, seasonal,
                      partial, span.customers_before_data)


def newest_complete_day(span: EventSpan) -> tuple[date, dict | None]:
    """The newest day, unless it holds far fewer events than that weekday usually does."""
    last = span.last_event.date()
    earlier = [span.per_day.get(last - timedelta(weeks=k), 0)
               for k in range(1, PARTIAL_DAY_WEEKS + 1)
               if last - timedelta(weeks=k) >= span.first_event.date()]
    if not earlier:
        return last, None
    usual = statistics.median(earlier)
    events = span.per_day.get(last, 0)
    if usual >= PARTIAL_DAY_MIN_USUAL and events < PARTIAL_DAY_SHARE * usual:
        return last - timedelta(days=1), {"day": last.isoformat(), "events": events,
                                          "usual": int(usual)}
    return last, None


def _check_history(as_of: date, first_day: date, window: int) -> None:
    available = (as_of - first_day).days + 1
    needed = MIN_HISTORY_DAYS + window
    if available < needed:
        raise RunError(
            407,
            f"Not enough history: {available} days available ({first_day} to {as_of}), "
            f"{needed} required ({MIN_HISTORY_DAYS} days of history + outcome window {window}). "
            "Shorten the outcome window, ingest older data or pick a later --as-of.",
            detail={"available_days": available, "required_days": needed},
        )


def _check_recent(span: EventSpan, as_of: date, lookback: int) -> None:
    """Stale data: nothing in the lookback before the as-of date (later data does not count)."""
    newest = span.newest_day_until(as_of)
    oldest_allowed = as_of - timedelta(days=lookback - 1)
    if newest is None or newest < oldest_allowed:
        raise RunError(
            408,
            f"No recent data: the newest event up to {as_of} is from {newest}, older than the "
            f"population lookback ({lookback} days). Make sure the dataset is up to date, or "
            "pick an earlier --as-of.",
            detail={"as_of": as_of.isoformat(), "newest_event_day": str(newest)},
        )


def _anchors(cutoff: datetime, first_day: date, window: int,
             max_anchors: int) -> tuple[datetime, ...]:
    """Anchors W apart; 90 days of history each when three such fit, else 30."""
    preferred = _stepped(cutoff, first_day, window, max_anchors, PREFERRED_HISTORY_DAYS)
    if len(preferred) >= MIN_ANCHORS_FOR_PREFERRED:
        return preferred
    return _stepped(cutoff, first_day, window, max_anchors, MIN_HISTORY_DAYS)


def _stepped(cutoff: datetime, first_day: date, window: int, max_anchors: int,
             floor_days: int) -> tuple[datetime, ...]:
    anchors = []
    for k in range(1, max_anchors + 1):
        anchor = cutoff - timedelta(days=k * window)
        if anchor < cutoff - timedelta(days=MAX_DAYS_BACK):
            break
        if (anchor.date() - first_day).days < floor_days:
            break
        anchors.append(anchor)
    return tuple(anchors)


def _seasonal_anchor(cutoff: datetime, first_day: date, anchors: tuple[datetime, ...],
                     window: int) -> datetime | None:
    """The anchor a calendar year before the cutoff, when 13 months of data reach it and its
    outcome window ends by the holdout's start (an outcome window over half a year long would
    overlap it: the model would train on the holdout's outcomes)."""
    anchor = _year_before(cutoff)
    if anchor in anchors or (anchor.date() - first_day).days < MIN_HISTORY_DAYS:
        return None
    if anchors and anchor + timedelta(days=window) > anchors[0]:
        return None
    return anchor


def _year_before(moment: datetime) -> datetime:
    """The same calendar day a year earlier (29 February becomes the 28th)."""
    try:
        return moment.replace(year=moment.year - 1)
    except ValueError:
        return moment.replace(year=moment.year - 1, day=28)
