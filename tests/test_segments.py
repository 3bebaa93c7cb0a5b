"""Segments over real run outputs: rules over scores, reasons and point-in-time attributes,
published memberships across three runs, automatic segments, exports and the CLI.

One workspace per module: 'buyers' runs at three score dates, 'churn-60d' (a name that needs
quoting) once at the newest. Every size is recomputed with pandas from the runs' scores.parquet
and the profiles file.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pandas as pd
import pytest

from likely.cli.main import main
from likely.errors import ConditionError, ConfigError, LikelyError
from likely.scoring.records import run_dir
from likely.workspace import Workspace

DATES = (date(2025, 5, 15), date(2025, 6, 15), date(2025, 7, 19))
BUYERS = {
    "name": "buyers", "datasets": {"events": "events", "profiles": "profiles"},
    "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
    "min_positives": 150, "min_negatives": 150, "max_anchors": 2,
}
CHURN = {**BUYERS, "name": "churn-60d", "type": "churn",
         "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 60,
                  "occurs": False}}
WATCH = "buyers.bucket = 'High' AND loyalty_tier IN ('gold', 'platinum')"


@pytest.fixture(scope="module")
def seg(demo_workspace: Path, tmp_path_factory) -> SimpleNamespace:
    path = tmp_path_factory.mktemp("segments") / "ws"
    shutil.copytree(demo_workspace, path)
    ws = Workspace(path)
    ws.create_instance(BUYERS)
    ws.create_instance(CHURN)
    watch = ws.create_segment("gold watch", WATCH, description="published before any run")
    assert ws.segment_history(watch.name) == []  # no scores yet: nothing published
    runs = [ws.run("buyers", as_of=d) for d in DATES]
    churn = ws.run("churn-60d", as_of=DATES[-1])
    assert all(r.status == "success" for r in [*runs, churn])
    profiles = pd.read_parquet(ws.dataset("profiles").parts[0].parent)
    return SimpleNamespace(ws=ws, runs=runs, churn=churn, profiles=profiles)


def scores(ws: Workspace, run) -> pd.DataFrame:
    frame = pd.read_parquet(run_dir(ws.path, run.instance_id, run.id) / "scores.parquet")
    frame["top_reason"] = [f[0]["behaviour"] if len(f) else None
                           for f in frame["influential_factors"]]
    frame["reasons"] = [[r["behaviour"] for r in f] for f in frame["influential_factors"]]
    return frame


def attributes_at(seg, day: date) -> pd.DataFrame:
    """The snapshot's attributes as known at the end of ``day``: later dates read as null."""
    known = seg.profiles.copy()
    moment = pd.Timestamp(datetime.combine(day + timedelta(days=1), datetime.min.time()))
    signup = pd.to_datetime(known["signup_date"])
    known["signup_date"] = signup.where(signup < moment)
    return known


def ids(frame: pd.DataFrame, mask) -> set[str]:
    return set(frame.loc[mask.fillna(False).astype(bool), "profile_id"])


# -- rules ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "token", "words"), [
    ("nosuch.bucket = 'High'", "nosuch.bucket", "Unknown column"),
    ("buyers.bukcet = 'High'", "buyers.bukcet", "Did you mean 'buyers.bucket'"),
    ("\"churn60d\".score < 40", "churn60d.score", "Did you mean 'churn-60d.score'"),
    ("loyalty_teir = 'gold' AND buyers.score > 1", "loyalty_teir", "Did you mean 'loyalty_tier'"),
    ("buyers.score = 'High'", "buyers.score = 'High'", "'High' is not a number"),
    ("buyers.bucket > 5", "buyers.bucket > 5", "not comparable"),
    ("'cart adds' IN buyers.top_reason", "'cart adds' IN buyers.top_reason", "not a list"),
    ("buyers.reasons = 'cart adds'", "buyers.reasons = 'cart adds'", "Types do not match"),
    ("signup_date > 'last week' AND buyers.score > 1", "signup_date > 'last week' AND "
     "buyers.score > 1", "not a date"),
    ("loyalty_tier = 'gold'", "loyalty_tier = 'gold'", "reads no instance"),
    ("buyers.bucket = 'High'; DELETE FROM segments", ";", "one expression only"),
    ("buyers.bucket = 'High' /* all */", "/*", "comment"),
    ("buyers.bucket IN (SELECT bucket FROM segments)", None, "literal values"),
    ("read_parquet('/etc/passwd') IS NULL AND buyers.score > 0", "read_parquet", "not allowed"),
    ("buyers.bucket = 'High", "'", "unclosed"),
])
def test_rules_are_refused_naming_the_token_and_nothing_is_saved(seg, rule, token, words):
    before = seg.ws.catalog.query("SELECT id FROM segments ORDER BY id")
    with pytest.raises(ConditionError) as err:
        seg.ws.create_segment("refused", rule)
    assert words in err.value.message
    if token is not None:
        assert err.value.token == token
    with pytest.raises(ConditionError):
        seg.ws.preview_segment(rule)
    assert seg.ws.catalog.query("SELECT id FROM segments ORDER BY id") == before


def test_sizes_equal_a_pandas_count_over_the_run_outputs(seg):
    ws, latest = seg.ws, seg.runs[-1]
    buyers = scores(ws, latest).add_prefix("b.").rename(columns={"b.profile_id": "profile_id"})
    churn = scores(ws, seg.churn).add_prefix("c.").rename(columns={"c.profile_id": "profile_id"})
    both = buyers.merge(churn, on="profile_id", how="outer").merge(
        attributes_at(seg, DATES[-1]), on="profile_id", how="left")
    top = buyers["b.top_reason"].value_counts().index[0]
    second = buyers["b.reasons"].explode().value_counts().index[1]
    rules = {  # one instance, two, attributes, reasons
        "buyers.percentile >= 80": both["b.percentile"] >= 80,
        "buyers.bucket = 'High' AND buyers.score > 80": (both["b.bucket"] == "High")
        & (both["b.score"] > 80),
        "buyers.bucket = 'High' AND \"churn-60d\".score < 40":
            (both["b.bucket"] == "High") & (both["c.score"] < 40),
        "buyers.bucket IN ('High', 'Medium') OR \"churn-60d\".bucket = 'Low'":
            both["b.bucket"].isin(["High", "Medium"]) | (both["c.bucket"] == "Low"),
        "\"churn-60d\".percentile > 50 AND loyalty_tier IN ('gold')":
            (both["c.percentile"] > 50) & (both["loyalty_tier"] == "gold"),
        "buyers.score >= 5 AND signup_date >= '2025-03-01' AND email_opt_in":
            (both["b.score"] >= 5) & (both["signup_date"] >= "2025-03-01")
            & (both["email_opt_in"] == True),  # noqa: E712 — a pandas mask
        f"buyers.top_reason = '{top}'": both["b.top_reason"] == top,
        f"'{second}' IN buyers.reasons AND NOT buyers.bucket = 'Low'":
            both["b.reasons"].apply(lambda r: isinstance(r, list) and second in r)
            & both["b.bucket"].notna() & (both["b.bucket"] != "Low"),
    }
    answers = []
    for rule, mask in rules.items():
        expected = ids(both, mask)
        preview = ws.preview_segment(rule, sample=5)
        assert preview["profiles"] == len(expected), rule
        assert preview["score_date"] == DATES[-1].isoformat()
        assert {r["profile_id"] for r in preview["sample"]} <= expected
        answers.append(len(expected))
    assert min(answers) > 0 and len(set(answers)) == len(answers)  # every rule a new answer


def test_attributes_are_read_as_known_at_the_score_date(seg):
    """A signup after the score date had not happened then: it reads as null."""
    ws, first = seg.ws, seg.runs[0]
    rule = "buyers.score >= 0 AND signup_date IS NULL"
    early = scores(ws, first).merge(attributes_at(seg, DATES[0]), on="profile_id", how="left")
    expected = ids(early, early["signup_date"].isna())
    members = ws.export_segment(ws.create_segment("no signup yet", rule, published=False).name,
                                ws.path / "no-signup.parquet", format="parquet",
                                as_of=DATES[0])
    got = set(pd.read_parquet(members)["profile_id"])
    assert got == expected and len(got) > 0
    later = seg.profiles["signup_date"].notna() & (
        pd.to_datetime(seg.profiles["signup_date"]) > pd.Timestamp(DATES[0]))
    assert len(got & set(seg.profiles.loc[later, "profile_id"])) > 0  # nulls from the future


# -- publishing -----------------------------------------------------------------------------------


def test_membership_history_across_three_runs(seg):
    ws = seg.ws
    kept = ws.segment_history("gold watch")
    assert [m["score_date"] for m in kept] == [d.isoformat() for d in DATES]
    previous: set[str] | None = None
    for run, membership in zip(seg.runs, kept, strict=True):
        frame = scores(ws, run).merge(attributes_at(seg, date.fromisoformat(run.as_of)),
                                      on="profile_id", how="left")
        expected = ids(frame, (frame["bucket"] == "High")
                       & frame["loyalty_tier"].isin(["gold", "platinum"]))
        stored = set(pd.read_parquet(ws.path / membership["path"])["profile_id"])
        assert stored == expected and membership["profiles"] == len(expected)
        assert membership["run_ids"] == {"buyers": run.id}
        if previous is None:
            assert membership["entered"] is None and membership["left"] is None
        else:
            assert membership["entered"] == len(expected - previous)
            assert membership["left"] == len(previous - expected)
        as_of = date.fromisoformat(run.as_of) + timedelta(days=3)  # between runs
        assert set(ws.segment_members("gold watch", as_of=as_of).to_pandas()["profile_id"]) \
            == expected
        previous = expected
    shown = ws.show_segment("gold watch")
    assert shown["entered"] == kept[-1]["entered"] and shown["left"] == kept[-1]["left"]
    assert {r["profile_id"] for r in shown["entered_sample"]} <= previous
    assert shown["in_words"] == "buyers bucket is High and loyalty_tier is one of gold, platinum"


def test_a_failed_run_leaves_the_membership_in_place(seg):
    ws = seg.ws
    before = ws.segment_history("gold watch")
    files = sorted(p.name for p in (ws.path / "segments").rglob("*.parquet"))
    with pytest.raises(LikelyError):
        ws.run("buyers", as_of=date(2024, 1, 1))  # before any data: the run fails
    assert ws.segment_history("gold watch") == before
    assert sorted(p.name for p in (ws.path / "segments").rglob("*.parquet")) == files


def test_a_new_segment_starts_with_a_history_and_a_new_rule_restarts_it(seg):
    ws = seg.ws
    made = ws.create_segment("top fifth", "buyers.percentile >= 80")
    history = ws.segment_history(made.name)
    assert [m["score_date"] for m in history] == [d.isoformat() for d in DATES]
    edited = ws.edit_segment(made.name, rule="buyers.percentile >= 90", new_name="top tenth")
    assert edited.id == made.id and edited.name == "top tenth"
    again = ws.segment_history("top tenth")
    assert [m["score_date"] for m in again] == [d.isoformat() for d in DATES]
    assert again[-1]["profiles"] < history[-1]["profiles"]
    assert not any((ws.path / m["path"]).exists() for m in history)  # old files removed
    ws.delete_segment("top tenth")
    assert not (ws.path / "segments" / made.id).exists()


def test_an_unpublished_segment_computes_its_history_on_request(seg):
    ws = seg.ws
    ws.create_segment("live only", "buyers.bucket = 'Medium'", published=False)
    live = ws.segment_history("live only")
    assert [m["score_date"] for m in live] == [d.isoformat() for d in DATES]
    medium = [ids(f, f["bucket"] == "Medium") for f in (scores(ws, r) for r in seg.runs)]
    assert [m["profiles"] for m in live] == [len(m) for m in medium]
    assert live[1]["entered"] == len(medium[1] - medium[0])
    assert live[2]["left"] == len(medium[1] - medium[2])
    assert not (ws.path / "segments" / ws.segment("live only").id).exists()


def test_automatic_segments_follow_each_run_and_stay_hidden_when_hidden(seg):
    ws, latest = seg.ws, seg.runs[-1]
    frame = scores(ws, latest)
    automatic = {s.name: s for s in ws.segments() if s.automatic}
    for bucket in ("High", "Medium", "Low"):
        segment = automatic[f"buyers — {bucket}"]
        assert segment.published and segment.rule == f"buyers.bucket = '{bucket}'"
        assert ws.segment_size(segment.name)["profiles"] == int((frame.bucket == bucket).sum())
        assert len(ws.segment_history(segment.name)) == 3
    high = frame[frame.bucket == "High"]
    common = high["top_reason"].value_counts()
    common = common[common >= 0.05 * len(high)].head(3)
    reasons = sorted(n.split(" — ")[-1] for n in automatic
                     if n.startswith("buyers — High — "))
    assert reasons == sorted(common.index) and reasons
    first = f"buyers — High — {common.index[0]}"
    assert ws.segment_size(first)["profiles"] == int(common.iloc[0])
    assert any(n.startswith("churn-60d — ") for n in automatic)
    ws.edit_segment(first, hidden=True)
    assert first not in [s.name for s in ws.segments()]
    assert first in [s.name for s in ws.segments(hidden=True)]
    ws.publish_after_run("buyers")  # what every run does: hidden stays hidden
    assert ws.segment(first).hidden and ws.segment(first).automatic
    with pytest.raises(ConfigError, match="automatic"):
        ws.edit_segment(first, rule="buyers.bucket = 'Low'")
    assert ws.segment(first).rule == automatic[first].rule


# -- exports and the CLI --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_exports_read_back_by_pandas_and_duckdb(seg, tmp_path, fmt):
    ws = seg.ws
    out = ws.export_segment("gold watch", tmp_path / f"members.{fmt}", format=fmt)
    readers = {"csv": pd.read_csv, "parquet": pd.read_parquet,
               "jsonl": lambda p: pd.read_json(p, lines=True)}
    frame = readers[fmt](out)
    expected = ws.segment_members("gold watch").to_pandas()
    assert list(frame["profile_id"]) == list(expected["profile_id"]) and len(frame) > 0
    assert list(frame.columns) == list(expected.columns)
    assert frame["buyers.score"].round(6).tolist() == expected["buyers.score"].round(6).tolist()
    source = {"csv": "read_csv_auto", "parquet": "read_parquet", "jsonl": "read_json_auto"}[fmt]
    count, = duckdb.sql(f"SELECT count(*) FROM {source}('{out}')").fetchone()
    assert count == len(expected)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


def test_cli_segments(seg, tmp_path, capsys):
    ws = str(seg.ws.path)
    rule = "buyers.percentile >= 95 AND country = 'US'"
    assert main(["segments", "preview", rule, "-w", ws, "--json"]) == 0
    preview = json.loads(capsys.readouterr().out)
    assert main(["segments", "create", "--name", "cli top us", "--rule", rule, "-w", ws]) == 0
    capsys.readouterr()
    assert main(["segments", "show", "cli top us", "-w", ws, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["profiles"] == preview["profiles"] > 0
    assert len(shown["history"]) == 3
    out = tmp_path / "top.csv"
    assert main(["segments", "export", "cli top us", "--out", str(out), "-w", ws]) == 0
    assert len(pd.read_csv(out)) == preview["profiles"]
    spec = tmp_path / "segment.yaml"
    spec.write_text("name: from file\nrule: buyers.bucket = 'Low'\ndescription: yaml\n")
    assert main(["segments", "create", "-f", str(spec), "-w", ws]) == 0
    assert seg.ws.segment("from file").description == "yaml"
    capsys.readouterr()
    assert main(["segments", "create", "--name", "bad", "--rule", "buyers.bukcet = 'x'",
                 "-w", ws]) != 0
    assert "Did you mean 'buyers.bucket'" in capsys.readouterr().err
    assert main(["segments", "members", "cli top us", "--as-of", "2025-05-20", "--limit", "0",
                 "-w", ws, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert {r["profile_id"] for r in first} == set(
        seg.ws.segment_members("cli top us", as_of=date(2025, 5, 20)).to_pandas()["profile_id"])
    folder = tmp_path / "drop"
    assert main(["destinations", "add", "--name", "drop", "--kind", "folder",
                 "--set", f"path={folder}", "-w", ws]) == 0
    assert main(["segments", "activate", "cli top us", "--destination", "drop", "-w", ws,
                 "--json"]) == 0
    done = json.loads(capsys.readouterr().out.split("\n", 1)[1])  # after the "Added" line
    log = seg.ws.activations("cli top us")
    assert log[0].id == done["id"] and log[0].status == "success"
    assert log[0].sent == preview["profiles"]
    assert len(pd.read_csv(log[0].detail["file"])) == preview["profiles"]
