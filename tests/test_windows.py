"""Run windows: calendar-day history, the newest complete day, anchors every feature can fill,
the season, and the boundaries between features and outcomes."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from likely.config import parse_instance_config
from likely.errors import RunError
from likely.scoring.windows import EventSpan, newest_complete_day, plan_windows

CONFIG = {"name": "x", "datasets": {"events": "e"},
          "goal": {"conditions": ["event_type = 'buy'"], "window_days": 30}}


def span(first: datetime, last: datetime, per_day: int = 100, **days: int) -> EventSpan:
    """Events every day from ``first`` to ``last``; ``days`` overrides counts (d2025_06_29=3)."""
    counts = {first.date() + timedelta(days=i): per_day
              for i in range((last.date() - first.date()).days + 1)}
    for key, n in days.items():
        counts[datetime.strptime(key, "d%Y_%m_%d").date()] = n
    return EventSpan(first, last, {d: n for d, n in counts.items() if n})


def config(**changes) -> object:
    return parse_instance_config({**CONFIG, **changes})


def test_windows_step_back_one_outcome_window_at_a_time():
    w = plan_windows(config(), span(datetime(2025, 1, 1), datetime(2025, 6, 29, 18)), None)
    assert w.as_of == date(2025, 6, 29) and w.cutoff == datetime(2025, 6, 30)
    assert w.anchors[0] == datetime(2025, 5, 31)
    assert all((a - b).days == 30 for a, b in zip(w.anchors, w.anchors[1:], strict=False))
    # three anchors fit with 90 days of history, so every anchor has 90 (90-day features exist)
    assert len(w.anchors) == 3 and (w.anchors[-1] - datetime(2025, 1, 1)).days >= 90
    assert w.history_days == (w.anchors[-1].date() - date(2025, 1, 1)).days
    assert w.to_dict()["outcome_window"] == "[anchor, anchor + window_days)"


def test_short_data_uses_anchors_with_30_days_of_history():
    w = plan_windows(config(), span(datetime(2025, 1, 1), datetime(2025, 4, 30)), None)
    assert len(w.anchors) == 3 and w.history_days == 30
    assert w.short_lookback == (w.anchors[-1],)  # less than the 45-day lookback there
    assert "reaches before the data starts (2025-01-01)" in w.notes()[0]


def test_history_counts_whole_calendar_days():
    """Data from 00:00:13 on Jan 1 through Mar 1 is 60 calendar days: enough for 30 + 30."""
    first = datetime(2025, 1, 1, 0, 0, 13)
    w = plan_windows(config(), span(first, datetime(2025, 3, 1, 8)), None)
    assert w.anchors == (datetime(2025, 1, 31),)
    with pytest.raises(RunError, match=r"\[407\] Not enough history: 59 days available .* 60 "
                                       r"required \(30 days of history \+ outcome window 30\)"):
        plan_windows(config(), span(first, datetime(2025, 2, 28, 23)), None)


def test_a_partial_last_day_is_skipped_and_said():
    events = span(datetime(2025, 1, 1), datetime(2025, 6, 29, 9), per_day=400, d2025_06_29=35)
    as_of, partial = newest_complete_day(events)
    assert as_of == date(2025, 6, 28) and partial == {"day": "2025-06-29", "events": 35,
                                                      "usual": 400}
    w = plan_windows(config(), events, None)
    assert w.as_of == date(2025, 6, 28) and w.cutoff == datetime(2025, 6, 29)
    assert "partial export" in w.notes()[0] and "--as-of 2025-06-29" in w.notes()[0]
    # asked for explicitly, the day is scored; a quiet weekday on small data is not "partial"
    assert plan_windows(config(), events, date(2025, 6, 29)).as_of == date(2025, 6, 29)
    quiet = span(datetime(2025, 1, 1), datetime(2025, 6, 29), per_day=8, d2025_06_29=1)
    assert newest_complete_day(quiet) == (date(2025, 6, 29), None)


def test_an_as_of_after_the_data_ends_is_refused():
    events = span(datetime(2025, 1, 1), datetime(2025, 6, 29, 18))
    with pytest.raises(RunError, match=r"\[408\] The as-of date 2025-07-01 is after the data "
                                       r"ends \(2025-06-29\)"):
        plan_windows(config(), events, date(2025, 7, 1))


def test_stale_data_is_judged_up_to_the_as_of_date():
    """A 60-day gap before the as-of date is stale even though newer data exists."""
    days = {f"d{(date(2025, 4, 1) + timedelta(days=i)):%Y_%m_%d}": 0 for i in range(60)}
    events = span(datetime(2025, 1, 1), datetime(2025, 8, 30), **days)
    with pytest.raises(RunError, match=r"\[408\] No recent data: the newest event up to "
                                       r"2025-05-30 is from 2025-03-31"):
        plan_windows(config(), events, date(2025, 5, 30))
    assert plan_windows(config(), events, date(2025, 8, 30)).as_of == date(2025, 8, 30)


def test_thirteen_months_add_the_anchor_a_year_before():
    events = span(datetime(2024, 1, 1), datetime(2025, 1, 31))
    w = plan_windows(config(), events, None)
    assert w.seasonal_anchor == datetime(2024, 2, 1) == w.anchors[-1]
    assert w.history_days == 31
    assert plan_windows(config(), events, date(2025, 1, 29)).seasonal_anchor is None  # 29 days
    short = plan_windows(config(), span(datetime(2024, 3, 1), datetime(2025, 1, 31)), None)
    assert short.seasonal_anchor is None and datetime(2024, 2, 1) not in short.anchors


def test_no_training_window_sees_the_holdouts_outcomes():
    """A window over half a year long: the anchor a year back would have its outcome window run
    into the holdout's, so it is left out (CDNOW, 39 weeks: only the holdout window remains)."""
    events = span(datetime(1997, 1, 1), datetime(1998, 6, 30))
    long = parse_instance_config({"name": "x", "type": "clv", "horizon_days": 273,
                                  "datasets": {"events": "e"}})
    w = plan_windows(long, events, None)
    assert w.anchors == (datetime(1997, 10, 1),) and w.seasonal_anchor is None
    for c in (config(), config(goal={"conditions": ["event_type = 'buy'"], "window_days": 90})):
        w = plan_windows(c, span(datetime(2024, 1, 1), datetime(2025, 6, 30)), None)
        assert all(a + timedelta(days=w.window_days) <= w.anchors[0] for a in w.anchors[1:])
        assert w.seasonal_anchor is not None


def test_features_reach_only_as_far_as_the_oldest_window_when_customers_predate_the_data():
    """First events piling up at the data's start mean customers were active before it."""
    events = span(datetime(2025, 1, 1), datetime(2025, 6, 29))
    before = EventSpan(events.first_event, events.last_event, events.per_day, (9000, 300))
    cohort = EventSpan(events.first_event, events.last_event, events.per_day, (7500, 9000))
    censored = plan_windows(config(), before, None)
    assert censored.customers_before_data and censored.feature_reach_days == censored.history_days
    assert any("features look back at most" in n for n in censored.notes())
    starts_here = plan_windows(config(), cohort, None)
    assert not starts_here.customers_before_data and starts_here.feature_reach_days is None
    assert not any("features look back" in n for n in starts_here.notes())
