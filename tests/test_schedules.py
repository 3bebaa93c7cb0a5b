"""Schedules with an injected clock: moments in time zones and across daylight-saving changes,
one catch-up for many missed moments, and no two runs of an instance at once."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from likely.errors import ConfigError
from likely.schedules import is_due, latest_moment, next_moment, parse_schedule
from likely.scoring.instances import outputs_dir
from likely.storage import exclusive_lock
from likely.web.jobs import RunJobs, Scheduler
from likely.workspace import Workspace


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(("text", "words"), [
    ("manual", "manual (runs only when asked)"),
    ("daily", "every day at 02:00 (UTC)"),
    ("daily at 06:30 europe/berlin", "every day at 06:30 (Europe/Berlin)"),
    ("Weekly on fri at 18:00 America/New_York", "every Friday at 18:00 (America/New_York)"),
    ("monthly on 15 at 03:00", "on day 15 of every month at 03:00 (UTC)"),
])
def test_schedules_read_as_written(text, words):
    assert parse_schedule(text).in_words() == words


@pytest.mark.parametrize(("text", "problem"), [
    ("hourly", "not understood"),
    ("weekly on funday", "'funday' is not allowed after 'on'"),
    ("monthly on 31", "a day 1–28"),
    ("daily at 24:00", "not a time of day"),
    ("daily at 06:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ("manual at 06:00", "manual takes no day"),
])
def test_bad_schedules_are_refused_saying_why(text, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_schedule(text)


def test_moments_follow_the_zone_through_daylight_saving():
    berlin = parse_schedule("daily at 06:00 Europe/Berlin")
    assert latest_moment(berlin, utc(2025, 1, 15, 12)) == utc(2025, 1, 15, 5)   # CET +1
    assert latest_moment(berlin, utc(2025, 7, 15, 12)) == utc(2025, 7, 15, 4)   # CEST +2
    assert latest_moment(berlin, utc(2025, 7, 15, 3)) == utc(2025, 7, 14, 4)    # not yet today
    new_york = parse_schedule("weekly on monday at 06:00 America/New_York")
    assert latest_moment(new_york, utc(2025, 3, 5)) == utc(2025, 3, 3, 11)      # EST -5
    assert next_moment(new_york, utc(2025, 3, 5)) == utc(2025, 3, 10, 10)       # EDT -4
    monthly = parse_schedule("monthly on 15 at 03:00 Asia/Tokyo")
    assert latest_moment(monthly, utc(2025, 2, 10)) == utc(2025, 1, 14, 18)


def test_a_time_in_the_spring_forward_gap_runs_once_as_late_as_the_gap():
    gap = parse_schedule("daily at 02:30 Europe/Berlin")  # 02:00–03:00 does not exist 30 March
    assert latest_moment(gap, utc(2025, 3, 30, 12)) == utc(2025, 3, 30, 1, 30)  # = 03:30 CEST
    assert latest_moment(gap, utc(2025, 3, 29, 12)) == utc(2025, 3, 29, 1, 30)  # = 02:30 CET
    assert latest_moment(gap, utc(2025, 3, 31, 12)) == utc(2025, 3, 31, 0, 30)  # = 02:30 CEST


def test_a_time_repeated_at_fall_back_runs_once_at_its_first_occurrence():
    twice = parse_schedule("daily at 02:30 Europe/Berlin")  # 02:00–03:00 happens twice 26 Oct
    first = utc(2025, 10, 26, 0, 30)  # 02:30 CEST
    assert latest_moment(twice, utc(2025, 10, 26, 1, 45)) == first  # 02:45 CET, second pass
    assert not is_due(twice, utc(2025, 10, 26, 1, 45), last_started=first + timedelta(minutes=1))
    assert next_moment(twice, first) == utc(2025, 10, 27, 1, 30)  # 02:30 CET the next day


def test_missed_moments_are_caught_up_once():
    daily = parse_schedule("daily at 06:00")
    now = utc(2025, 7, 20, 9)
    five_days_ago = utc(2025, 7, 15, 6, 1)
    assert is_due(daily, now, five_days_ago)          # five moments missed: due …
    assert not is_due(daily, now, now)                # … once: the catch-up run covers them
    assert not is_due(daily, utc(2025, 7, 21, 5, 59), now)
    assert is_due(daily, utc(2025, 7, 21, 6, 0), now)  # the next moment
    assert is_due(daily, now, None)                   # never run: due
    assert not is_due(parse_schedule("manual"), now, None)


# -- with a workspace ------------------------------------------------------------------------------

INSTANCE = {
    "name": "nightly", "datasets": {"events": "events"},
    "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
    "exclusions": ["event_type = 'directMarketing.emailSent'"],
    "min_positives": 150, "min_negatives": 150, "max_anchors": 2,
    "schedule": "daily at 06:00 Europe/Berlin",
}


@pytest.fixture
def scheduled(demo_workspace: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(demo_workspace, tmp_path / "ws")
    ws = Workspace(tmp_path / "ws")
    ws.create_instance(INSTANCE)
    ws.create_instance({**INSTANCE, "name": "by-hand", "schedule": "manual"})
    return ws


def test_due_instances_and_no_overlap(scheduled):
    """Runs start on the real clock, so 'now' here is the real time and a day later."""
    ws = scheduled
    now = datetime.now(UTC)
    moment = latest_moment(parse_schedule(INSTANCE["schedule"]), now)
    assert [(i.name, m) for i, m in ws.due(now)] == [("nightly", moment)]  # never run: due
    instance = ws.instance("nightly")
    with exclusive_lock(outputs_dir(ws.path, instance.id) / ".lock", "a run elsewhere"):
        done = ws.run_due(now)  # a run holds the instance: skipped, not doubled
    assert [(e["instance"], "is busy" in e["skipped"]) for e in done] == [("nightly", True)]
    assert ws.runs("nightly") == []
    ran = ws.run_due(now)
    assert [e["run"]["status"] for e in ran] == ["success"]
    assert ws.due(now) == [] and ws.run_due(now) == []  # caught up once
    assert [i.name for i, _ in ws.due(now + timedelta(days=1))] == ["nightly"]


def test_a_manual_run_after_the_moment_counts(scheduled):
    ws = scheduled
    with ws.catalog.transaction():
        ws.catalog.insert("runs", {"id": "run-by-hand", "instance_id": ws.instance("nightly").id,
                                   "as_of": "2025-07-19", "status": "failed",
                                   "started_at": "2025-07-20T05:00:00.000000Z"})
    assert ws.due(utc(2025, 7, 20, 9)) == []  # started after 04:00 UTC: that moment is served
    assert [i.name for i, _ in ws.due(utc(2025, 7, 21, 9))] == ["nightly"]


def test_the_server_scheduler_starts_a_due_run_once(scheduled):
    ws = scheduled
    clock = [datetime.now(UTC)]
    jobs = RunJobs(ws.path)
    scheduler = Scheduler(jobs, clock=lambda: clock[0])
    assert scheduler.check() == ["nightly"]
    assert scheduler.check() == []  # still running: not started again
    wait(jobs)
    assert jobs.get("nightly").state == "success"
    assert scheduler.check() == []  # done for this moment
    clock[0] += timedelta(days=1)
    assert scheduler.check() == ["nightly"]
    wait(jobs)
    # two runs, one per moment; the data has not grown, so the second replaces the first's date
    assert [r.status for r in ws.runs("nightly")] == ["success", "superseded"]
    assert ws.runs("by-hand") == []  # manual: never started by the scheduler


def wait(jobs: RunJobs, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while jobs.get("nightly").state == "running" and time.time() < deadline:
        time.sleep(0.2)
