"""When a run looks: the scoring instant and the training anchors, and the history checks.

``as_of`` is a calendar date; scores describe each profile at the END of that day, so the scoring
instant (the *cutoff*) is midnight UTC after it. Training anchors step back one outcome window at a
time: ``cutoff - W``, ``cutoff - 2W``, ... while each anchor has at least 30 days of history
before it and stays within one year of the cutoff. An anchor closer to the data's start than the
population lookback judges eligibility on the history there is (a lookback of 365 days on a year
of data means "everyone active since the data starts"); the run says so in its notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from likely.config import InstanceConfig
from likely.errors import RunError

MIN_HISTORY_DAYS = 30
MAX_YEARS_BACK = 365


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

    @property
    def short_lookback(self) -> tuple[datetime, ...]:
        """The anchors with less history before them than the population lookback."""
        return tuple(a for a in self.anchors
                     if (a - self.first_event).total_seconds() / 86400 < self.lookback_days)

    def to_dict(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(), "cutoff": self.cutoff.isoformat(),
            "anchors": [a.isoformat() for a in self.anchors], "window_days": self.window_days,
            "history_needed_days": self.history_needed_days,
            "first_event": self.first_event.isoformat(), "last_event": self.last_event.isoformat(),
            "short_lookback": [a.isoformat() for a in self.short_lookback],
        }

    def notes(self) -> list[str]:
        if not self.short_lookback:
            return []
        dates = ", ".join(f"{a:%Y-%m-%d}" for a in self.short_lookback)
        return [f"The population lookback ({self.lookback_days} days) reaches before the data "
                f"starts ({self.first_event:%Y-%m-%d}) at training window(s) {dates}: "
                "eligibility there uses the history available."]


def plan_windows(
    config: InstanceConfig, first_event: datetime, last_event: datetime, as_of: date | None
) -> RunWindows:
    """Place the anchors, or raise the coded error that says why a run cannot train."""
    as_of = as_of or last_event.date()
    cutoff = datetime.combine(as_of + timedelta(days=1), time())
    window = config.goal.window_days
    lookback = config.population.lookback_days
    needed = MIN_HISTORY_DAYS + window
    available = (cutoff - first_event).total_seconds() / 86400
    if first_event >= cutoff:
        raise RunError(408, f"No events before the as-of date {as_of}: the data starts "
                            f"{first_event:%Y-%m-%d}. Pick a later --as-of.")
    if available < needed:
        raise RunError(
            407,
            f"Not enough history: {available:.0f} days available ({first_event:%Y-%m-%d} to "
            f"{as_of}), {needed} required ({MIN_HISTORY_DAYS} days of history + outcome window "
            f"{window}). Shorten the outcome window, ingest older data or pick a later --as-of.",
            detail={"available_days": round(available, 1), "required_days": needed},
        )
    recent_start = cutoff - timedelta(days=lookback)
    if min(last_event, cutoff) < recent_start:
        raise RunError(
            408,
            f"No recent data: the newest event before {as_of} is {last_event:%Y-%m-%d}, older "
            f"than the population lookback ({config.population.lookback_days} days). "
            "Make sure the dataset is up to date, or pick an earlier --as-of.",
        )
    anchors = []
    for k in range(1, config.max_anchors + 1):
        anchor = cutoff - timedelta(days=k * window)
        if anchor < cutoff - timedelta(days=MAX_YEARS_BACK):
            break
        if (anchor - first_event).total_seconds() / 86400 < MIN_HISTORY_DAYS:
            break
        anchors.append(anchor)
    return RunWindows(as_of, cutoff, tuple(anchors), window, needed, first_event, last_event,
                      lookback)
