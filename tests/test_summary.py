"""The run summary the dashboard reads, checked against brute-force pandas over the run's files.

One small run per module (two training windows); every number in ``summary.json`` and every
targeting answer is recomputed here from ``scores.parquet`` and ``features.parquet``. The value
distribution's awkward inputs (nulls, a constant column, a bucket nobody is in) are built in
memory.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from likely.errors import ConfigError, NotFoundError, RunError
from likely.model.evaluate import grade
from likely.scoring.records import SUCCESS, run_dir
from likely.scoring.summary import (
    RunFiles,
    bin_labels,
    build_summary,
    headline,
    target,
    value_distribution,
)
from likely.workspace import Workspace

LAST_DAY = date(2025, 7, 19)  # demo data: 2025-01-01 + 200 days
NAME = "buyers"
CONFIG = {
    "name": NAME,
    "datasets": {"events": "events", "profiles": "profiles"},
    "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
    "min_positives": 150, "min_negatives": 150, "max_anchors": 2,
}
ORDER = ["High", "Medium", "Low"]


@pytest.fixture(scope="module")
def run(demo_workspace: Path, tmp_path_factory):
    """One successful run and its files, read with pandas."""
    path = tmp_path_factory.mktemp("summary") / "ws"
    shutil.copytree(demo_workspace, path)
    ws = Workspace(path)
    ws.create_instance(CONFIG)
    record = ws.run(NAME)
    folder = run_dir(ws.path, record.instance_id, record.id)
    rows = pq.read_table(folder / "scores.parquet").to_pylist()
    scores = pd.DataFrame({"profile_id": [r["profile_id"] for r in rows],
                           "probability": [r["probability"] for r in rows],
                           "score": [r["score"] for r in rows],
                           "bucket": [r["bucket"] for r in rows]})
    ranked = scores.sort_values(["score", "probability"], ascending=False, kind="stable")
    features = pd.read_parquet(folder / "features.parquet")
    factors = json.loads((folder / "factors.json").read_text())["factors"]
    return SimpleNamespace(ws=ws, record=record, folder=folder, rows=rows, scores=scores,
                           ranked=ranked, features=features, factors=factors,
                           summary=json.loads((folder / "summary.json").read_text()))


def test_the_run_writes_its_summary_with_its_identity(run):
    s = run.summary
    assert run.record.status == SUCCESS and "summary" in run.record.timings
    assert s["run_id"] == run.record.id and s["type"] == "conversion" and s["version"] == 1
    assert s["bucket_cutoffs"] == [25.0, 75.0]
    assert s["scored_profiles"] == len(run.scores) == run.record.counts["scored_profiles"]
    assert s["expected_goal_profiles"] == pytest.approx(run.scores.probability.sum(), rel=1e-9)
    shown = run.ws.summary(NAME)
    assert shown["instance"] == NAME and shown["score_date"] == LAST_DAY.isoformat()
    assert {k: v for k, v in shown.items() if k not in ("instance", "score_date")} == s


def test_bucket_counts_and_expected_goal_profiles_equal_pandas(run):
    buckets = run.summary["buckets"]
    assert [b["bucket"] for b in buckets] == ORDER
    n = len(run.scores)
    for entry in buckets:
        part = run.scores[run.scores.bucket == entry["bucket"]]
        assert len(part) > 0  # every bucket is populated in this run, so each line is checked
        assert entry["profiles"] == len(part) == run.record.counts["buckets"][entry["bucket"]]
        assert entry["share_pct"] == pytest.approx(100 * len(part) / n, abs=0.005)
        assert entry["expected_goal_profiles"] == pytest.approx(part.probability.sum(), rel=1e-9)
        assert entry["mean_probability"] == pytest.approx(part.probability.mean(), rel=1e-9)
        assert (entry["score_min"], entry["score_max"]) == (part.score.min(), part.score.max())
    assert buckets[0]["score_min"] >= 75 > buckets[1]["score_max"]
    assert buckets[1]["score_min"] >= 25 > buckets[2]["score_max"]


def test_histogram_counts_scores_in_two_point_bins_per_bucket(run):
    histogram = run.summary["histogram"]
    assert histogram["edges"] == [2.0 * i for i in range(51)]
    for name in ORDER:
        part = run.scores[run.scores.bucket == name]
        counts = histogram["counts"][name]
        assert sum(counts) == len(part)
        # bin i holds [2i, 2i + 2); the last bin also holds 100
        index = np.minimum(np.floor(part.score.to_numpy() / 2).astype(int), 49)
        assert counts == np.bincount(index, minlength=50).tolist()


def _brute(run, size: int) -> dict:
    """Targeting the top ``size`` by score, then probability: computed from the scores."""
    top = run.ranked.head(max(size, 0))
    total = run.scores.probability.sum()
    return {"profiles": len(top), "expected": top.probability.sum(),
            "captured": 100 * top.probability.sum() / total,
            "lowest": top.score.min() if len(top) else None}


def _inside_a_tie(run) -> list[int]:
    """Audience sizes that cut through runs of tied scores (the top tie and the largest one)."""
    scores = run.ranked.score.to_numpy()
    counts = run.ranked.score.value_counts()
    sizes = []
    for value in (scores[0], counts.idxmax()):
        start = int(np.argmax(scores == value))
        tied = int(counts[value])
        assert tied >= 3, f"no tie at {value} to cut through"
        sizes.append(start + tied // 2)
    return sizes


def test_targeting_a_size_buys_the_top_probabilities(run):
    n = len(run.scores)
    total = run.scores.probability.sum()
    sizes = [0, 1, 2, 7, 50, 333, n // 2, n - 1, n, n + 500, *_inside_a_tie(run)]
    for size in sizes:
        got = run.ws.targeting(NAME, size=size)
        want = _brute(run, size)
        assert got["profiles"] == want["profiles"], size
        assert got["expected_goal_profiles"] == pytest.approx(want["expected"], abs=0.05), size
        assert got["scored_profiles"] == n and got["run_id"] == run.record.id
        assert got["total_expected_goal_profiles"] == pytest.approx(total, abs=0.006)
        assert got["share_of_scored_pct"] == pytest.approx(100 * want["profiles"] / n, abs=0.006)
        assert got["captured_pct"] == pytest.approx(
            100 * got["expected_goal_profiles"] / total, abs=0.01)
        assert got["captured_pct"] == pytest.approx(want["captured"], abs=0.05)
        if want["profiles"]:
            assert got["expected_precision"] == pytest.approx(
                want["expected"] / want["profiles"], abs=0.05 / want["profiles"] + 1e-4)
        else:
            assert got["expected_goal_profiles"] == 0 and got["expected_precision"] is None
            assert got["lowest_score"] is None and got["captured_pct"] == 0
    everyone = run.ws.targeting(NAME, size=n + 500)
    assert everyone["profiles"] == n and everyone["captured_pct"] == 100
    # the top of the list is worth more per profile than the rest
    top, rest = run.ws.targeting(NAME, size=50), run.ws.targeting(NAME, size=n)
    assert top["expected_precision"] > 2 * rest["expected_precision"]


def test_targeting_a_threshold_takes_everyone_at_or_above_it(run):
    scores = run.scores
    total = scores.probability.sum()
    seen = set()
    for threshold in np.arange(0.0, 100.5, 0.5):
        got = run.ws.targeting(NAME, threshold=float(threshold))
        chosen = scores[scores.score >= threshold]
        assert got["profiles"] == len(chosen), threshold
        assert got["expected_goal_profiles"] == pytest.approx(chosen.probability.sum(),
                                                              abs=0.006)
        assert got["captured_pct"] == pytest.approx(100 * chosen.probability.sum() / total,
                                                    abs=0.01)
        if len(chosen):
            assert got["lowest_score"] == chosen.score.min()
            assert got["expected_precision"] == pytest.approx(chosen.probability.mean(),
                                                              abs=1e-4)
        seen.add(len(chosen))
    assert len(seen) > 50  # the grid really walks down the list


def test_targeting_refuses_unclear_audiences(run):
    for ask in ({}, {"size": 5, "threshold": 50.0}, {"threshold": 100.5},
                {"threshold": -1.0}, {"size": -1}):
        with pytest.raises(ConfigError):
            run.ws.targeting(NAME, **ask)


def test_target_interpolates_a_hand_made_curve():
    curve = {"profiles": [0, 10, 20], "expected": [0.0, 5.0, 7.0], "score": [100.0, 80.0, 60.0],
             "total_expected": 7.0}
    half = target(curve, size=15)
    assert half["expected_goal_profiles"] == 6.0 and half["lowest_score"] == 70.0
    assert half["expected_precision"] == 0.4 and half["captured_pct"] == pytest.approx(85.71)
    assert target(curve, threshold=80.0)["profiles"] == 10
    assert target(curve, threshold=59.0)["profiles"] == 20
    assert target(curve, threshold=100.0)["profiles"] == 0


def _reasons(run) -> pd.DataFrame:
    return pd.DataFrame([
        {"profile_id": r["profile_id"], "bucket": r["bucket"], "behaviour": f["behaviour"],
         "factor": f["factor"], "contribution": f["contribution"]}
        for r in run.rows for f in r["influential_factors"]])


def test_bucket_factors_equal_pandas_over_the_reasons(run):
    reasons = _reasons(run)
    assert reasons.behaviour.notna().all()
    names = {f["factor"]: f["name"] for f in run.factors}
    truncated = False
    for bucket in ORDER:
        size = int((run.scores.bucket == bucket).sum())
        part = reasons[reasons.bucket == bucket]
        per = part.groupby("behaviour").agg(
            profiles=("profile_id", "nunique"), total=("contribution", "sum"),
            sum_abs=("contribution", lambda c: c.abs().sum()))
        per["weight"] = per.sum_abs / size
        per = per.reset_index().sort_values(["weight", "behaviour"], ascending=[False, True])
        truncated |= len(per) > 10
        expected = per.head(10)
        got = run.summary["bucket_factors"][bucket]
        assert 0 < len(got) <= 10
        assert [g["behaviour"] for g in got] == expected.behaviour.tolist()
        weights = [g["weight"] for g in got]
        assert weights == sorted(weights, reverse=True)
        for entry, (_, want) in zip(got, expected.iterrows(), strict=True):
            shared = part[part.behaviour == entry["behaviour"]]
            assert entry["reason_share_pct"] == pytest.approx(
                100 * shared.profile_id.nunique() / size, abs=0.005)
            assert entry["weight"] == pytest.approx(want.weight, rel=1e-9)
            assert entry["mean_contribution"] == pytest.approx(want.total / len(shared),
                                                               rel=1e-9)
            assert entry["direction"] == ("+" if want.total >= 0 else "-")
            # told through the factor that most often stands for it here (ties: larger id)
            counts = shared.factor.value_counts()
            assert entry["factor"] == max(counts.index, key=lambda f: (counts[f], f))
            assert entry["name"] == names[entry["factor"]]
            assert entry["headline"] == run.summary["distributions"][entry["factor"]]["headline"]
    assert truncated  # some bucket had more than ten behaviours, so the cap was exercised
    assert run.summary["bucket_factors"]["High"][0]["direction"] == "+"


def test_value_distributions_equal_pandas_over_the_features(run):
    joined = run.features.merge(run.scores[["profile_id", "bucket"]], on="profile_id")
    wanted = {e["factor"] for es in run.summary["bucket_factors"].values() for e in es}
    distributions = run.summary["distributions"]
    assert set(distributions) == wanted
    names = {f["factor"]: f["name"] for f in run.factors}
    partial = []
    for factor, dist in distributions.items():
        assert dist["type"] == "numeric" and dist["name"] == names[factor]
        values = joined[factor]
        known = values.dropna().to_numpy()
        edges = sorted({round(float(q), 4) for q in np.quantile(known, np.linspace(0, 1, 11))})
        assert dist["edges"] == pytest.approx(edges, abs=1e-4)
        assert dist["labels"] == bin_labels(dist["edges"])
        bins = max(len(dist["edges"]) - 1, 1)
        for bucket, part in joined.groupby("bucket"):
            rows = len(part)
            coverage = 100 * part[factor].notna().sum() / rows
            assert dist["buckets"][bucket] == {"rows": rows,
                                               "coverage_pct": pytest.approx(coverage, abs=0.005)}
            present = part[factor].dropna().to_numpy()
            index = np.searchsorted(dist["edges"][1:-1], present, side="right")
            want = 100 * np.bincount(index, minlength=bins) / rows
            shares = dist["shares_pct"].get(bucket, [0.0] * bins)
            assert shares == pytest.approx(want.tolist(), abs=0.005)
            # the shares and the missing share make the whole bucket
            assert sum(shares) + (100 - dist["buckets"][bucket]["coverage_pct"]) == \
                pytest.approx(100, abs=0.06)
            if coverage < 60:
                partial.append((factor, bucket))
    assert partial  # some factor is missing for most of a bucket (e.g. never purchased)


def test_bin_labels_read_whole_numbers_as_counts_and_others_as_ranges():
    assert bin_labels([0, 1, 2, 5, 30]) == ["0", "1", "2–4", "5–30"]
    assert bin_labels([0.0, 1000.0, 2500.0]) == ["0–999", "1,000–2,500"]
    assert bin_labels([0, 1]) == ["0–1"]
    assert bin_labels([3.0]) == ["3"]
    assert bin_labels([0, 0.5, 2.25, 10]) == ["0–0.5", "0.5–2.25", "2.25–10"]
    assert bin_labels([1.23456, 2, 3]) == ["1.235–2", "2–3"]  # one fractional edge: ranges


def test_headline_picks_the_cut_where_high_and_low_differ_most():
    rising = {"type": "numeric", "name": "Visits", "edges": [0, 1, 2, 5, 30],
              "shares_pct": {"High": [5.0, 10.0, 25.0, 60.0], "Low": [60.0, 25.0, 10.0, 5.0]}}
    # cuts: ≥ 1 (95 vs 40), ≥ 2 (85 vs 15), ≥ 5 (60 vs 5): the middle one differs most
    assert headline(rising) == "Visits ≥ 2: 85% of High, 15% of Low"
    falling = {"type": "numeric", "name": "Days", "edges": [0, 3, 7, 20],
               "shares_pct": {"High": [80.0, 15.0, 5.0], "Low": [20.0, 30.0, 50.0]}}
    assert headline(falling) == "Days ≤ 2: 80% of High, 20% of Low"
    fractional = {"type": "numeric", "name": "Value", "edges": [0, 0.5, 1.5, 3],
                  "shares_pct": {"High": [70.0, 20.0, 10.0], "Low": [10.0, 30.0, 60.0]}}
    assert headline(fractional) == "Value < 0.5: 70% of High, 10% of Low"
    tiers = {"type": "categorical", "name": "Tier",
             "shares_pct": {"High": {"gold": 50.0, "silver": 30.0, "(missing)": 20.0},
                            "Low": {"gold": 10.0, "silver": 40.0, "bronze": 50.0}}}
    assert headline(tiers) == "Tier bronze: 0% of High, 50% of Low"
    assert headline({**rising, "shares_pct": {"Low": [1.0] * 4, "Medium": [1.0] * 4}}) is None
    assert headline({"type": "numeric", "edges": [3.0],
                     "shares_pct": {"High": [90.0], "Low": [80.0]}}) is None


def _awkward() -> ibis.Table:
    """Low and Medium only (nobody is High), nulls, a constant column, a column of nulls."""
    return ibis.memtable(pa.table({
        "bucket": ["Low"] * 6 + ["Medium"] * 4,
        "x": pa.array([0, 1, 2, None, None, 5, 5, None, 7, 9], pa.float64()),
        "c": pa.array([3, 3, None, 3, 3, 3, 3, 3, 3, None], pa.float64()),
        "cat": ["a", "b", None, "a", "a", "b", "b", None, "b", "c"],
        "empty": pa.array([None] * 10, pa.float64()),
    }))


def test_value_distribution_with_nulls_and_no_high_bucket():
    dist = value_distribution(_awkward(), "x", "numeric")
    assert dist["buckets"] == {"Low": {"rows": 6, "coverage_pct": 66.67},
                               "Medium": {"rows": 4, "coverage_pct": 75.0}}
    # deciles of 0, 1, 2, 5, 5, 7, 9 (linear interpolation), repeated fives merged
    assert dist["edges"] == pytest.approx([0, 0.6, 1.2, 1.8, 3.2, 5, 5.4, 6.6, 7.8, 9])
    assert dist["labels"][0] == "0–0.6" and dist["labels"][-1] == "7.8–9"
    third = 16.67
    assert dist["shares_pct"] == {
        "Low": [third, third, 0.0, third, 0.0, third, 0.0, 0.0, 0.0],
        "Medium": [0.0, 0.0, 0.0, 0.0, 0.0, 25.0, 0.0, 25.0, 25.0]}  # 9 sits in the top bin
    for bucket, shares in dist["shares_pct"].items():
        assert sum(shares) == pytest.approx(dist["buckets"][bucket]["coverage_pct"], abs=0.05)
    assert "High" not in dist["buckets"] and headline(dist) is None


def test_value_distribution_of_a_constant_a_category_and_nothing_at_all():
    constant = value_distribution(_awkward(), "c", "numeric")
    assert constant["edges"] == [3.0] and constant["labels"] == ["3"]
    assert constant["shares_pct"] == {"Low": [83.33], "Medium": [75.0]}
    assert constant["buckets"]["Low"]["coverage_pct"] == 83.33
    assert headline(constant) is None
    category = value_distribution(_awkward(), "cat", "categorical")
    assert category["type"] == "categorical"
    assert category["shares_pct"] == {"Low": {"a": 50.0, "b": 33.33, "(missing)": 16.67},
                                      "Medium": {"b": 50.0, "(missing)": 25.0, "c": 25.0}}
    for shares in category["shares_pct"].values():
        assert sum(shares.values()) == pytest.approx(100, abs=0.02)
    empty = value_distribution(_awkward(), "empty", "numeric")
    assert empty["edges"] == [] and empty["labels"] == [] and empty["shares_pct"] == {}
    assert empty["buckets"]["Low"] == {"rows": 6, "coverage_pct": 0.0}


def test_value_distribution_of_whole_counts_gives_a_readable_headline():
    table = ibis.memtable(pa.table({
        "bucket": ["High"] * 5 + ["Low"] * 7,
        "visits": pa.array([10, 10, 20, 30, 40, 0, 0, 0, 1, 1, 2, None], pa.float64()),
    }))
    dist = value_distribution(table, "visits", "numeric")
    assert dist["edges"] == [0, 1, 2, 10, 20, 30, 40]
    assert dist["labels"] == ["0", "1", "2–9", "10–19", "20–29", "30–40"]
    assert dist["shares_pct"] == {"High": [0.0, 0.0, 0.0, 40.0, 20.0, 40.0],
                                  "Low": [42.86, 28.57, 14.29, 0.0, 0.0, 0.0]}
    assert dist["buckets"]["Low"]["coverage_pct"] == 85.71
    assert headline({**dist, "name": "Visits"}) == "Visits ≥ 10: 100% of High, 0% of Low"


def test_a_summary_of_scores_where_nobody_is_high(run, tmp_path):
    """Built from the run's files with its High profiles left out of the scores."""
    table = pq.read_table(run.folder / "scores.parquet")
    keep = [b != "High" for b in table.column("bucket").to_pylist()]
    pq.write_table(table.filter(pa.array(keep)), tmp_path / "scores.parquet")
    files = RunFiles(tmp_path, tmp_path / "scores.parquet", run.folder / "features.parquet",
                     run.folder / "factors.json")
    summary = build_summary(run.ws.con, files, run_id="run-nohigh", kind="conversion",
                            cutoffs=(25.0, 75.0))
    rest = run.scores[run.scores.bucket != "High"]
    assert summary["scored_profiles"] == len(rest) == sum(keep)
    high = summary["buckets"][0]
    assert high == {"bucket": "High", "profiles": 0, "share_pct": 0.0, "mean_probability": None,
                    "expected_goal_profiles": 0.0, "score_min": None, "score_max": None}
    assert summary["buckets"][1]["profiles"] == int((rest.bucket == "Medium").sum())
    assert summary["histogram"]["counts"]["High"] == [0] * 50
    assert summary["bucket_factors"]["High"] == []
    assert summary["bucket_factors"]["Low"] and summary["distributions"]
    for dist in summary["distributions"].values():
        assert "High" not in dist["buckets"] and "High" not in dist["shares_pct"]
        assert dist["headline"] is None  # nothing to compare Low with
    assert all(e["headline"] is None for es in summary["bucket_factors"].values() for e in es)
    assert target(summary["targeting"], size=10**6)["profiles"] == len(rest)
    assert summary["targeting"]["total_expected"] == pytest.approx(rest.probability.sum())


def assert_same(got, want, where: str = "summary") -> None:
    """Equal structure and values; floats to 1e-12 (DuckDB's threads may sum in another
    order, changing the last bit of per-bucket factor weights)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), where
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), where
    else:
        assert got == want and type(got) is type(want), where


def test_a_deleted_summary_is_rebuilt_identically_on_first_request(run):
    path = run.folder / "summary.json"
    original = json.loads(path.read_text())
    path.unlink()
    rebuilt = run.ws.summary(NAME)
    assert path.exists()
    assert_same(json.loads(path.read_text()), original)
    assert_same({k: v for k, v in rebuilt.items() if k not in ("instance", "score_date")},
                original)
    # a summary of an older version is rebuilt too
    path.write_text(json.dumps({"version": 0, "run_id": run.record.id}))
    assert run.ws.summary(NAME, run.record.id)["buckets"] == original["buckets"]
    assert_same(json.loads(path.read_text()), original)


def test_a_failed_run_has_no_summary_and_the_current_one_stays(run):
    with pytest.raises(RunError):
        run.ws.run(NAME, as_of=date(2025, 2, 15))  # not enough history: fails while preparing
    failed = run.ws.runs(NAME)[0]
    assert failed.status == "failed"
    with pytest.raises(NotFoundError, match="status 'failed'"):
        run.ws.summary(NAME, failed.id)
    assert run.ws.summary(NAME)["run_id"] == run.record.id
    assert run.ws.targeting(NAME, size=10)["run_id"] == run.record.id
    evaluation = run.ws.evaluation(NAME, failed.id)
    assert evaluation["status"] == "failed" and evaluation["grade"] is None
    assert evaluation["holdout"] == {} and evaluation["optimistic"] is False  # nothing claimed
    with pytest.raises(NotFoundError):
        run.ws.summary(NAME, "run-nosuchrun000")


def test_grades_follow_the_auc_bands():
    expected = {0.9: "Excellent", 0.85: "Excellent", 0.8: "Good", 0.75: "Good", 0.7: "Fair",
                0.65: "Fair", 0.6499: "Poor", 0.5: "Poor", 0.0: "Poor"}
    for auc, name in expected.items():
        graded = grade(auc)
        assert graded["grade"] == name and graded["auc"] == auc, auc
        assert [b["grade"] for b in graded["bands"]] == ["Excellent", "Good", "Fair", "Poor"]
    assert grade(None) is None


def test_evaluation_grades_the_current_run_out_of_time(run):
    evaluation = run.ws.evaluation(NAME)
    holdout = run.record.metrics["holdout"]
    assert evaluation["run_id"] == run.record.id and evaluation["status"] == SUCCESS
    assert evaluation["score_date"] == LAST_DAY.isoformat()
    assert evaluation["holdout"] == holdout
    assert evaluation["grade"] == grade(holdout["auc"]) and evaluation["grade"] is not None
    assert len(evaluation["training_windows"]) == run.record.counts["anchors"] == 2
    assert holdout["out_of_time"] is True and evaluation["optimistic"] is False
    assert evaluation["expected"]["expected_goal_profiles"] == pytest.approx(
        run.scores.probability.sum())
    stored = json.loads((run.folder / "evaluation.json").read_text())["holdout"]
    assert stored["auc"] == evaluation["holdout"]["auc"]
