"""Backfill: the score dates of a history made at once (``likely backfill``)."""

from __future__ import annotations

import re
from datetime import date, timedelta

from likely.errors import ConfigError

MAX_DATES = 400


def backfill_dates(start: date, end: date, every_days: int) -> list[date]:
    """``start``, ``start + every``, … up to ``end`` (``end`` included when it falls on one)."""
    if every_days < 1:
        raise ConfigError(f"--every must be at least 1 day, not {every_days}.",
                          detail={"field": "every"})
    if end < start:
        raise ConfigError(f"--to {end} is before --from {start}.", detail={"field": "to"})
    count = (end - start).days // every_days + 1
    if count > MAX_DATES:
        raise ConfigError(f"{count} score dates from {start} to {end} every {every_days} days; "
                          f"at most {MAX_DATES}. Widen --every.", detail={"field": "every"})
    return [start + timedelta(days=i * every_days) for i in range(count)]


def parse_every(text: str) -> int:
    """``7d``, ``2w`` or ``7`` → days."""
    match = re.fullmatch(r"\s*(\d+)\s*([dw]?)\s*", text or "", re.IGNORECASE)
    if match is None:
        raise ConfigError(f"--every '{text}' is not a period: write e.g. 7d, 2w or 30.",
                          detail={"field": "every"})
    return int(match[1]) * (7 if match[2].lower() == "w" else 1)
