"""Who is asked, and what the answer was: populations that exclude, populations of profiles
without events, the rule in words, and the boundary between features and outcomes."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import ibis
import pandas as pd
import pyarrow.parquet as pq
import pytest

from likely.cli.main import main
from likely.conditions import parse_condition
from likely.config import parse_instance_config
from likely.data.profiles import Profiles
from likely.errors import ConfigError
from likely.features import build_features, feature_frame, plan_features
from likely.model.labels import Exclusion, GoalRule, PopulationRule, eligible, labelled
from likely.scoring.records import run_dir
from likely.workspace import Workspace

LAST_DAY = date(2025, 7, 19)  # the session demo data: 2025-01-01 + 200 days
CUTOFF = datetime(2025, 7, 20)
PURCHASES = "event_type = 'commerce.purchases'"
BASE = {"name": "buyers", "datasets": {"events": "events", "profiles": "profiles"},
        "goal": {"conditions": [PURCHASES], "window_days": 30},
        "static_attributes": ["loyalty_tier", "country", "signup_date"],
        "min_positives": 100, "min_negatives": 100}


@pytest.fixture
def ws(demo_workspace: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(demo_workspace, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


def scored(ws: Workspace, run) -> pd.DataFrame:
    path = run_dir(ws.path, run.instance_id, run.id) / "scores.parquet"
    return pq.read_table(path, columns=["profile_id"]).to_pandas()


def purchases_before(ws: Workspace, moment: datetime, since: datetime | None = None) -> set:
    events = ws.table("events")
    keep = (events.event_type == "commerce.purchases") & (events.timestamp < moment)
    if since is not None:
        keep &= events.timestamp >= since
    return set(events.filter(keep).profile_id.to_pyarrow().to_pylist())


def test_profiles_that_ever_met_an_exclusion_are_not_scored(ws):
    ws.create_instance({**BASE, "population": {"exclude_if": [PURCHASES]}})
    run = ws.run("buyers")
    ids = set(scored(ws, run).profile_id)
    assert ids and not ids & purchases_before(ws, CUTOFF)
    everyone = ws.create_instance({**BASE, "name": "everyone"})
    assert ws.run(everyone.name).counts["training_eligible"] > run.counts["training_eligible"]


def test_an_exclusion_with_a_lookback_only_counts_recent_events(ws):
    week = {"condition": PURCHASES, "lookback_days": 7}
    ws.create_instance({**BASE, "population": {"exclude_if": [week]}})
    ids = set(scored(ws, ws.run("buyers")).profile_id)
    assert not ids & purchases_before(ws, CUTOFF, since=CUTOFF - timedelta(days=7))
    assert ids & purchases_before(ws, CUTOFF - timedelta(days=7))  # older buyers stay


def test_a_population_of_attributes_alone_scores_profiles_without_events(ws):
    """Every profile signed up by the date, with or without events (new signups)."""
    ws.create_instance({**BASE, "population": {
        "requires_activity": False, "profile_conditions": ["signup_date IS NOT NULL"]}})
    run = ws.run("buyers")
    ids = set(scored(ws, run).profile_id)
    people = pq.read_table(Path(ws.dataset("profiles").parts[0])).to_pandas()
    signed_up = set(people[pd.to_datetime(people.signup_date) < CUTOFF].profile_id)
    assert ids == signed_up
    active = set(ws.table("events").filter(lambda t: t.timestamp < CUTOFF)
                 .profile_id.to_pyarrow().to_pylist())
    assert ids - active, "profiles with no events at all are scored too"


def test_population_rules_are_checked_and_said_in_words(ws, capsys):
    with pytest.raises(ConfigError, match=r"population\.exclude_if\[0\].*Unknown column 'evnt'"):
        ws.create_instance({**BASE, "population": {"exclude_if": ["evnt = 'x'"]}})
    with pytest.raises(ConfigError, match="requires_activity"):
        parse_instance_config({**BASE, "population": {"requires_activity": False,
                                                      "conditions": [PURCHASES]}})
    with pytest.raises(ConfigError, match=r"static_attributes: 'tierr' is not an attribute"):
        ws.create_instance({**BASE, "static_attributes": ["tierr"]})
    ws.create_instance({**BASE, "goal": {"conditions": [PURCHASES], "occurs": False,
                                         "window_days": 60},
                        "population": {"conditions": [PURCHASES], "lookback_days": 90,
                                       "profile_conditions": ["country = 'US'"],
                                       "exclude_if": ["event_type = 'account.closed'"]}})
    assert main(["instances", "show", "buyers", "-w", str(ws.path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("Who: Profiles with an event where event_type = 'commerce.purchases' in the 90 days "
            "before the date, whose attributes on the date meet country = 'US'; not those with "
            "an event where event_type = 'account.closed' ever before the date.") in out
    assert ("Goal: The profile does not have an event where event_type = 'commerce.purchases' "
            "in the 60 days after the date.") in out


def test_an_event_exactly_at_the_anchor_is_an_outcome_not_a_feature():
    anchor = datetime(2025, 6, 1)
    events = ibis.memtable(pd.DataFrame({
        "profile_id": ["a", "a", "b", "b", "c"],
        "timestamp": pd.to_datetime([anchor - timedelta(days=3), anchor, anchor - timedelta(days=2),
                                     anchor - timedelta(days=10), anchor + timedelta(days=30)])
        .astype("datetime64[us]"),
        "event_type": ["visit", "buy", "visit", "buy", "buy"]}))
    schema = events.schema()
    goal = GoalRule((parse_condition("event_type = 'buy'", schema),), "any", True, 30)
    rule = PopulationRule((), "any", 45)
    people = eligible(events, None, rule, anchor)
    labels = labelled(people, events, goal, anchor).execute().set_index("profile_id").label
    assert labels.to_dict() == {"a": 1, "b": 0}  # c's purchase at anchor + 30 days is outside
    plan = plan_features(events, None, as_of=anchor)
    frame = feature_frame(build_features(plan, events, None, people, anchor=anchor), plan)
    assert frame.set_index("profile_id")["count_30d.buy"].to_dict() == {"a": 0.0, "b": 1.0}
    excluded = PopulationRule((), "any", 45, exclusions=(
        Exclusion(parse_condition("event_type = 'buy'", schema)),))
    # a's purchase at the anchor is in the future: it does not exclude a yet; b's did
    assert set(eligible(events, None, excluded, anchor).execute().profile_id) == {"a"}


def test_profile_conditions_read_attributes_as_of_each_date():
    history = pd.DataFrame({"profile_id": ["a", "a", "b"],
                            "updated_at": pd.to_datetime(["2025-01-01", "2025-05-20",
                                                          "2025-06-10"]).astype("datetime64[us]"),
                            "tier": ["bronze", "gold", "gold"]})
    events = ibis.memtable(pd.DataFrame({
        "profile_id": ["a", "b"], "timestamp": pd.to_datetime(["2025-05-25", "2025-05-25"])
        .astype("datetime64[us]"), "event_type": ["visit", "visit"]}))
    profiles = Profiles.of(ibis.memtable(history))
    rule = PopulationRule((), "any", 45, (parse_condition("tier = 'gold'", ["tier"]),))
    assert set(eligible(events, profiles, rule, datetime(2025, 6, 1)).execute().profile_id) \
        == {"a"}  # b became gold only after the date
