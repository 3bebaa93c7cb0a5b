"""Outcome tracking of past runs, and segments over the latest scores of several instances.

One workspace per module: 'purchase-30d' runs at a score date whose outcome window closes exactly
at the data's end, at the day after (still open), and at the newest day; 'checkouts' runs once.
Outcomes and segment sizes are recomputed here with pandas from the events and the run files.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from likely.errors import AlreadyExistsError, ConditionError, ConfigError, NotFoundError, RunError
from likely.scoring.outcomes import window_end
from likely.scoring.records import SUCCESS, run_dir
from likely.workspace import Workspace

LAST_DAY = date(2025, 7, 19)  # demo data: 2025-01-01 + 200 days
WINDOW = 30
CLOSED = LAST_DAY - timedelta(days=WINDOW)  # window [Jun 20, Jul 20): ends with the data
OPEN = CLOSED + timedelta(days=1)  # one day later: its window runs past the data
BUYERS = "purchase-30d"  # sorts after 'checkouts': joined second, it has profiles of its own


def config(name: str, event_type: str, **population) -> dict:
    return {"name": name, "datasets": {"events": "events", "profiles": "profiles"},
            "goal": {"conditions": [f"event_type = '{event_type}'"], "window_days": WINDOW},
            "population": population, "min_positives": 150, "min_negatives": 150,
            "max_anchors": 2}


@pytest.fixture(scope="module")
def history(demo_workspace: Path, tmp_path_factory):
    path = tmp_path_factory.mktemp("outcomes") / "ws"
    shutil.copytree(demo_workspace, path)
    ws = Workspace(path)
    # two populations that overlap without either holding the other
    ws.create_instance(config(BUYERS, "commerce.purchases", lookback_days=30))
    ws.create_instance(config("checkouts", "commerce.checkouts", lookback_days=60,
                              conditions=["event_type = 'commerce.productViews'"]))
    closed = ws.run(BUYERS, as_of=CLOSED)
    still_open = ws.run(BUYERS, as_of=OPEN)
    latest = ws.run(BUYERS)
    other = ws.run("checkouts")
    events = pd.concat([pd.read_parquet(p, columns=["profile_id", "timestamp", "event_type"])
                        for p in ws.dataset("events").parts])
    return SimpleNamespace(ws=ws, closed=closed, open=still_open, latest=latest, other=other,
                           events=events)


def folder(ws: Workspace, run) -> Path:
    return run_dir(ws.path, run.instance_id, run.id)


def scored(ws: Workspace, run, file: str = "scores.parquet") -> pd.DataFrame:
    return pd.read_parquet(folder(ws, run) / file,
                           columns=["profile_id", "bucket", "score", "percentile", "probability"])


# -- outcomes -------------------------------------------------------------------------------------


def test_window_end_is_midnight_after_the_score_date_plus_the_window():
    assert window_end("2025-06-19", 30) == datetime(2025, 7, 20)
    assert window_end(date(2025, 6, 19), 0) == datetime(2025, 6, 20)
    assert window_end("2024-02-28", 1) == datetime(2024, 3, 1)  # leap day inside


def test_only_the_run_whose_window_closed_gets_an_outcome(history):
    ws = history.ws
    assert [r.status for r in (history.closed, history.open, history.latest)] == [SUCCESS] * 3
    assert history.closed.as_of == CLOSED.isoformat() and history.latest.as_of == "2025-07-19"
    outcome = json.loads((folder(ws, history.closed) / "outcome.json").read_text())
    assert outcome["run_id"] == history.closed.id
    assert outcome["measured_by"] == history.latest.id
    assert history.latest.counts["outcomes_measured"] == 1
    assert "outcomes_measured" not in history.open.counts
    assert not (folder(ws, history.open) / "outcome.json").exists()
    assert not (folder(ws, history.latest) / "outcome.json").exists()
    assert not (folder(ws, history.other) / "outcome.json").exists()


def test_outcome_rates_equal_pandas_over_the_events(history):
    ws, run = history.ws, history.closed
    outcome = json.loads((folder(ws, run) / "outcome.json").read_text())
    cutoff = datetime.combine(CLOSED + timedelta(days=1), datetime.min.time())
    end = cutoff + timedelta(days=WINDOW)
    events = history.events
    goal = events[(events.event_type == "commerce.purchases") & (events.timestamp >= cutoff)
                  & (events.timestamp < end)]
    scores = pq.read_table(folder(ws, run) / "scores.parquet",
                           columns=["profile_id", "bucket", "probability"]).to_pandas()
    scores["y"] = scores.profile_id.isin(set(goal.profile_id)).astype(int)
    assert 0 < scores.y.sum() < len(scores)
    assert outcome["score_date"] == CLOSED.isoformat() and outcome["window_days"] == WINDOW
    assert outcome["window_end"] == end.isoformat() == "2025-07-20T00:00:00"
    assert outcome["profiles"] == len(scores) == run.counts["scored_profiles"]
    assert outcome["expected_rate"] == pytest.approx(scores.probability.mean(), rel=1e-9)
    assert outcome["actual_rate"] == pytest.approx(scores.y.mean(), rel=1e-12)
    assert outcome["auc"] == pytest.approx(roc_auc_score(scores.y, scores.probability),
                                           rel=1e-9)
    assert [b["bucket"] for b in outcome["buckets"]] == ["High", "Medium", "Low"]
    for entry in outcome["buckets"]:
        part = scores[scores.bucket == entry["bucket"]]
        assert len(part) > 0
        assert entry["profiles"] == len(part)
        assert entry["goal_profiles"] == part.y.sum()
        assert entry["actual_rate"] == pytest.approx(part.y.mean(), rel=1e-12)
        assert entry["expected_rate"] == pytest.approx(part.probability.mean(), rel=1e-9)
    rates = {b["bucket"]: b["actual_rate"] for b in outcome["buckets"]}
    assert rates["High"] > rates["Medium"] > rates["Low"]  # the scores did rank


def test_performance_lists_measured_runs_and_pending_ones_newest_first(history):
    ws = history.ws
    performance = ws.performance(BUYERS)
    assert performance["instance"] == BUYERS and performance["window_days"] == WINDOW
    stored = json.loads((folder(ws, history.closed) / "outcome.json").read_text())
    assert performance["runs"] == [stored]
    assert performance["pending"] == [
        {"run_id": history.latest.id, "score_date": "2025-07-19",
         "window_closes": (LAST_DAY + timedelta(days=1 + WINDOW)).isoformat()},
        {"run_id": history.open.id, "score_date": OPEN.isoformat(),
         "window_closes": (OPEN + timedelta(days=1 + WINDOW)).isoformat()},
    ]
    assert performance["pending"][1]["window_closes"] == "2025-07-21"
    other = ws.performance("checkouts")
    assert other["runs"] == [] and [p["run_id"] for p in other["pending"]] == [history.other.id]


def test_overview_lines_say_what_each_instance_scored(history):
    ws = history.ws
    ws.create_instance(config("idle", "commerce.checkouts"))
    with pytest.raises(RunError):
        ws.run("checkouts", as_of=date(2025, 2, 15))  # not enough history: fails early
    lines = {line["name"]: line for line in ws.overview()}
    buyers = lines[BUYERS]
    assert buyers["status"] == SUCCESS and buyers["last_run"]["id"] == history.latest.id
    assert buyers["score_date"] == "2025-07-19" and buyers["type"] == "conversion"
    assert buyers["profiles_scored"] == history.latest.counts["scored_profiles"]
    assert buyers["auc"] == history.latest.metrics["holdout"]["auc"]
    this_year = [r for r in (history.closed, history.open, history.latest)
                 if r.finished_at[:4] == str(datetime.now(UTC).year)]
    assert buyers["profiles_scored_this_year"] == sum(
        r.counts["scored_profiles"] for r in this_year) > buyers["profiles_scored"]
    checkouts = lines["checkouts"]
    assert checkouts["status"] == "failed" and checkouts["last_run"]["error_code"] == 407
    assert checkouts["score_date"] == "2025-07-19"  # the failed run leaves the scores current
    assert checkouts["profiles_scored"] == history.other.counts["scored_profiles"]
    idle = lines["idle"]
    assert idle["status"] == "never_run" and idle["last_run"] is None
    assert idle["score_date"] is None and idle["profiles_scored"] == 0 and idle["auc"] is None


# -- segments ------------------------------------------------------------------------------------


def test_a_bucket_segment_is_the_bucket_of_the_summary(history):
    ws = history.ws
    for name, run in (("checkouts", history.other), (BUYERS, history.latest)):
        counts = {b["bucket"]: b["profiles"] for b in ws.summary(name)["buckets"]}
        assert sum(counts.values()) == run.counts["scored_profiles"]
        for bucket in ("High", "Medium", "Low"):
            segment = ws.create_bucket_segment(f"{name} {bucket}", name, bucket,
                                               description="from the card")
            quoted = name if name.isidentifier() else f'"{name}"'  # quoted only when needed
            assert segment.rule == f"{quoted}.bucket = '{bucket}'"
            assert segment.instance_ids == [run.instance_id]
            assert segment.description == "from the card" and segment.published is True
            size = ws.segment_size(segment.name)
            assert size["profiles"] == counts[bucket] and size["score_date"] == "2025-07-19"
            assert size["runs"] == {name: run.id}
    with pytest.raises(ConfigError, match="Unknown bucket"):
        ws.create_bucket_segment("nope", "checkouts", "high")
    with pytest.raises(NotFoundError, match="No instance named"):
        ws.create_bucket_segment("nope", "chekouts", "High")


def test_a_segment_leaves_out_profiles_only_an_older_run_scored(history):
    """The profile table still carries profiles earlier runs scored and the current one did
    not (no longer in the population); a segment selects from the current run only."""
    ws = history.ws
    carried = scored(ws, history.latest, "profile_scores.parquet")
    now = scored(ws, history.latest)
    assert len(carried) > len(now) == history.latest.counts["scored_profiles"]
    ws.create_segment("every purchase score", "\"purchase-30d\".score >= 0")
    assert ws.segment_size("every purchase score")["profiles"] == len(now)


def _both(history) -> pd.DataFrame:
    buyers = scored(history.ws, history.latest).add_prefix("buyers.")
    checkouts = scored(history.ws, history.other).add_prefix("checkouts.")
    return buyers.merge(checkouts, left_on="buyers.profile_id",
                        right_on="checkouts.profile_id", how="outer")


def test_a_rule_over_two_instances_counts_the_outer_join_of_their_scores(history):
    ws = history.ws
    both = _both(history)
    # each instance scored profiles the other did not: an inner, left or right join loses some
    assert both["checkouts.profile_id"].isna().sum() > 0
    assert both["buyers.profile_id"].isna().sum() > 0
    rules = {
        "\"purchase-30d\".bucket = 'High' OR \"checkouts\".score >= 50":
            (both["buyers.bucket"] == "High") | (both["checkouts.score"] >= 50),
        "\"purchase-30d\".percentile >= 80 AND \"checkouts\".bucket IN ('Low')":
            (both["buyers.percentile"] >= 80) & (both["checkouts.bucket"] == "Low"),
        "\"checkouts\".bucket IS NULL AND \"purchase-30d\".bucket = 'Low'":
            both["checkouts.bucket"].isna() & (both["buyers.bucket"] == "Low"),
        "\"purchase-30d\".score IS NULL AND checkouts.score < 50":
            both["buyers.score"].isna() & (both["checkouts.score"] < 50),
        "\"purchase-30d\".probability > 0.2 OR NOT (checkouts.probability < 0.3)":
            (both["buyers.probability"] > 0.2) | (both["checkouts.probability"] >= 0.3),
    }
    for i, (rule, mask) in enumerate(rules.items()):
        segment = ws.create_segment(f"pair {i}", rule)
        assert sorted(segment.instance_ids) == sorted(
            [history.latest.instance_id, history.other.instance_id])
        size = ws.segment_size(segment.name)
        assert size["profiles"] == int(mask.sum()), rule
        assert size["runs"] == {BUYERS: history.latest.id, "checkouts": history.other.id}
    answers = [int(m.sum()) for m in rules.values()]
    assert min(answers) > 0 and len(set(answers)) == len(answers)  # all different answers


def test_rules_naming_unknown_columns_are_refused_with_a_suggestion(history):
    ws = history.ws
    before = [s.name for s in ws.segments()]
    typos = (("\"purchse-30d\".bucket = 'High'", "purchse-30d.bucket", "purchase-30d.bucket"),
             ("\"purchase-30d\".buckt = 'High'", "purchase-30d.buckt", "purchase-30d.bucket"),
             ("\"checkouts\".scor > 5", "checkouts.scor", "checkouts.score"))
    for rule, token, near in typos:
        with pytest.raises(ConditionError) as err:
            ws.create_segment("typo", rule)
        assert err.value.token == token
        assert token in err.value.message and f"Did you mean '{near}'?" in err.value.message
    assert [s.name for s in ws.segments()] == before


@pytest.mark.parametrize("rule", [
    "\"purchase-30d\".bucket = 'High'; DROP TABLE segments",
    "1=1 OR (SELECT 1)",
    "\"purchase-30d\".bucket = 'High' -- everyone",
    "\"purchase-30d\".bucket IN (SELECT bucket FROM segments)",
    "\"purchase-30d\".score",
    "",
])
def test_rules_that_are_not_plain_conditions_are_refused(history, rule):
    ws = history.ws
    before = [s.name for s in ws.segments()]
    with pytest.raises(ConditionError):
        ws.create_segment("sneaky", rule)
    assert [s.name for s in ws.segments()] == before
    assert ws.catalog.query_one("SELECT count(*) AS n FROM segments")["n"] == len(before)


def test_segment_names_must_be_present_short_and_unique(history):
    ws = history.ws
    rule = "\"purchase-30d\".bucket = 'Medium'"
    for name in ("", "   ", "tab\there", "x" * 81):
        with pytest.raises(ConfigError, match="segment name"):
            ws.create_segment(name, rule)
    assert ws.create_segment("x" * 80, rule).name == "x" * 80
    first = ws.create_segment("  medium buyers ", rule)
    assert first.name == "medium buyers"
    with pytest.raises(AlreadyExistsError, match="already exists"):
        ws.create_segment("medium buyers", "\"checkouts\".bucket = 'Low'")
    assert ws.segment("medium buyers").id == first.id
    assert ws.segment(first.id).name == "medium buyers"


def test_deleting_a_segment_and_asking_for_unknown_ones(history):
    ws = history.ws
    made = ws.create_segment("to delete", "\"checkouts\".score >= 90")
    assert ws.segment_size("to delete")["profiles"] > 0
    gone = ws.delete_segment("to delete")
    assert gone.id == made.id
    assert "to delete" not in [s.name for s in ws.segments()]
    for ask in (ws.segment, ws.segment_size, ws.delete_segment):
        with pytest.raises(NotFoundError, match="No segment named 'to delete'"):
            ask("to delete")
    ws.create_segment("loyal buyers", "\"purchase-30d\".score >= 60")
    with pytest.raises(NotFoundError, match="Did you mean 'loyal buyers'"):
        ws.segment("loyal buyer")
    names = [s.name for s in ws.segments()]
    saved = [s.name for s in ws.segments() if not s.automatic]
    assert names[:len(saved)] == sorted(saved) and "loyal buyers" in saved  # saved ones first
