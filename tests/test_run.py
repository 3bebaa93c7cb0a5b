"""End-to-end runs on small demo data: outputs, exactness, re-runs, failures, every coded error.

Each test works on its own copy of the session's demo workspace, so runs in one test never see
another's outputs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import scored_features
from likely.errors import BusyError, ConfigError, NotFoundError, RunError
from likely.model.explain import contributions
from likely.model.store import load_model
from likely.scoring.records import SUCCESS, SUPERSEDED, TRAINING_ISSUE, run_dir
from likely.scoring.scores import percentiles
from likely.workspace import Workspace

LAST_DAY = date(2025, 7, 19)  # demo data: 2025-01-01 + 200 days

BASE = {
    "name": "buyers",
    "datasets": {"events": "events", "profiles": "profiles"},
    "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
    "custom_events": {"abandoned checkout": "event_type = 'commerce.checkouts'"},
    "exclusions": ["event_type = 'directMarketing.emailSent'"],
    "min_positives": 150, "min_negatives": 150,
}


def config(**changes) -> dict:
    """BASE with nested keys replaced: config(goal={"window_days": 14})."""
    merged = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


@pytest.fixture
def ws(demo_workspace: Path, tmp_path: Path) -> Workspace:
    shutil.copytree(demo_workspace, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


@pytest.fixture(scope="module")
def first_run(demo_workspace: Path, tmp_path_factory):
    """One successful run, shared by the read-only tests."""
    path = tmp_path_factory.mktemp("run") / "ws"
    shutil.copytree(demo_workspace, path)
    ws = Workspace(path)
    ws.create_instance(config())
    return ws, ws.run("buyers")


def folder_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_run_records_its_stages_counts_and_metrics(first_run):
    ws, run = first_run
    assert run.status == SUCCESS and run.as_of == LAST_DAY.isoformat()
    assert {"prepare", "features", "training", "scoring", "explanations"} <= set(run.timings)
    holdout = run.metrics["holdout"]
    assert 0.65 <= holdout["auc"] <= 1 and 0 < holdout["brier"] < 0.25
    assert len(holdout["lift"]) == 10 and holdout["calibration"]
    model = run.metrics["model"]
    assert model["calibration"]["chosen"] in ("sigmoid", "isotonic") and model["num_leaves"]
    assert run.counts["anchors"] == 3  # 200 days: 30, 60, 90 days back (90+ days of data each)
    assert run.counts["scored_profiles"] == sum(run.counts["buckets"].values()) > 0
    assert run.counts["events_after_exclusions"] < run.counts["events"]
    assert ws.get_run("buyers").id == run.id == ws.runs("buyers")[0].id


def test_scores_have_every_contract_column(first_run):
    ws, run = first_run
    folder = run_dir(ws.path, run.instance_id, run.id)
    scores = pq.read_table(folder / "scores.parquet")
    assert scores.column_names == [
        "profile_id", "score_date", "probability", "score", "percentile", "bucket",
        "influential_factors", "model_id", "run_id", "instance_id"]
    rows = scores.to_pylist()
    assert len(rows) == run.counts["scored_profiles"]
    assert len({r["profile_id"] for r in rows}) == len(rows)
    for r in rows:
        assert 0 <= r["probability"] <= 1 and 0 <= r["score"] <= 100
        assert 1 <= r["percentile"] <= 100 and r["bucket"] in ("Low", "Medium", "High")
        assert r["score_date"] == LAST_DAY and r["run_id"] == run.id
        assert r["model_id"] == run.model_id
        factors = r["influential_factors"]
        assert 1 <= len(factors) <= 5
        magnitudes = [abs(f["contribution"]) for f in factors]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert all(f["direction"] == ("+" if f["contribution"] > 0 else "-") for f in factors
                   if f["contribution"] != 0)
        assert {f["importance"] for f in factors} <= {"low", "medium", "high"}
    # higher probability never means a lower score, percentile or bucket
    by_p = sorted(rows, key=lambda r: r["probability"])
    assert all(a["score"] <= b["score"] and a["percentile"] <= b["percentile"]
               for a, b in itertools.pairwise(by_p))
    profile = pq.read_table(folder / "profile_scores.parquet")
    assert profile.column_names == scores.column_names
    assert profile.num_rows == scores.num_rows


@pytest.fixture(scope="module")
def explained(first_run):
    """The first run's plan, stored scores and TreeSHAP recomputed on its features.parquet."""
    ws, run = first_run
    folder = run_dir(ws.path, run.instance_id, run.id)
    model, plan, features, frame = scored_features(folder)
    stored = {r["profile_id"]: r for r in pq.read_table(folder / "scores.parquet").to_pylist()}
    ids = features.column("profile_id").to_pylist()
    # each behaviour's contribution per profile, summed here from the plan's sources
    contrib = contributions(model, frame)
    sources = sorted({f.source for f in plan.features})
    members = {s: [i for i, f in enumerate(plan.features) if f.source == s] for s in sources}
    sums = {s: contrib[:, members[s]].sum(axis=1) for s in sources}
    return SimpleNamespace(model=model, plan=plan, frame=frame, contrib=contrib, ids=ids,
                           stored=stored, members=members, sums=sums, run=run, ws=ws)


def test_reason_codes_and_base_value_sum_to_the_raw_model_output(explained):
    e = explained
    model, frame, contrib = e.model, e.frame, e.contrib
    raw = model.predict_raw(frame)
    np.testing.assert_allclose(contrib.sum(axis=1), raw, atol=1e-6)
    np.testing.assert_allclose(sum(e.sums.values()) + contrib[:, -1], raw, atol=1e-6)
    stored = e.stored
    for row in (0, len(e.ids) // 2, len(e.ids) - 1):
        assert stored[e.ids[row]]["probability"] == pytest.approx(
            float(model.predict_proba(frame.iloc[[row]])[0]))
    # percentiles rank the model's raw output over everyone scored
    assert [stored[i]["percentile"] for i in e.ids] == percentiles(raw).tolist()


def test_reasons_are_the_largest_distinct_behaviours_each_the_sum_of_its_features(explained):
    e = explained
    by_id = {f.id: (i, f) for i, f in enumerate(e.plan.features)}
    fewer = 0
    for row, profile in enumerate(e.ids):
        reasons = e.stored[profile]["influential_factors"]
        sources = [by_id[r["factor"]][1].source for r in reasons]
        assert len(set(sources)) == len(sources)  # distinct behaviours
        for reason, source in zip(reasons, sources, strict=True):
            index, feature = by_id[reason["factor"]]
            assert reason["behaviour"] == feature.behaviour
            assert reason["contribution"] == pytest.approx(e.sums[source][row], abs=1e-9)
            assert abs(reason["contribution"]) >= 1e-12  # zero is no reason
            assert reason["direction"] == ("+" if reason["contribution"] > 0 else "-")
            # told through the behaviour's strongest feature for this profile, with its value
            strongest = np.abs(e.contrib[row, e.members[source]]).max()
            assert abs(reason["factor_contribution"]) == pytest.approx(strongest, abs=1e-12)
            assert reason["factor_contribution"] == pytest.approx(e.contrib[row, index])
            value = e.frame.iloc[row, index]
            if pd.isna(value):
                assert reason["value"] is None
            elif feature.kind == "numeric":
                assert float(reason["value"]) == pytest.approx(value, rel=1e-3)
            else:
                assert reason["value"] == str(value)
        # and they are the largest behaviours, strongest first
        everything = sorted((abs(s[row]) for s in e.sums.values()), reverse=True)
        expected = [m for m in everything[:5] if m >= 1e-12]
        np.testing.assert_allclose([abs(r["contribution"]) for r in reasons], expected,
                                   atol=1e-9)
        fewer += len(reasons) < 5
    assert fewer < len(e.ids)


def test_importance_labels_use_one_yardstick_monotone_in_every_profile(explained):
    e = explained
    reference = max(np.abs(s).mean() for s in e.sums.values())
    assert e.run.metrics["importance_reference"] == pytest.approx(reference)
    rank = {"low": 0, "medium": 1, "high": 2}
    seen = set()
    for profile in e.ids:
        reasons = e.stored[profile]["influential_factors"]
        for reason in reasons:
            ratio = abs(reason["contribution"]) / reference
            if min(abs(ratio - 0.5), abs(ratio - 0.1)) > 1e-9:  # not on a cut-off
                expected = "high" if ratio >= 0.5 else "medium" if ratio >= 0.1 else "low"
                assert reason["importance"] == expected
            seen.add(reason["importance"])
        labels = [rank[r["importance"]] for r in reasons]
        assert labels == sorted(labels, reverse=True)  # never above a stronger reason
    assert {"high", "medium"} <= seen


def test_model_file_carries_config_features_and_hash(first_run):
    ws, run = first_run
    folder = run_dir(ws.path, run.instance_id, run.id)
    meta = json.loads((folder / "model").read_text())["meta"]
    assert meta["config"]["instance"]["name"] == "buyers"
    assert meta["feature_names"] and meta["run_id"] == run.id
    assert meta["lightgbm_version"] and meta["likely_version"]
    row = ws.catalog.query_one("SELECT * FROM models WHERE id = ?", (run.model_id,))
    assert row["sha256"] == json.loads((folder / "model").read_text())["content_sha256"]
    assert load_model(folder / "model", expected_sha256=row["sha256"]).feature_names_
    evaluation = json.loads((folder / "evaluation.json").read_text())
    assert evaluation["holdout"]["auc"] == pytest.approx(run.metrics["holdout"]["auc"])
    assert json.loads((folder / "run.json").read_text())["id"] == run.id


def test_global_factors_rank_by_mean_abs_shap_with_bucket_distributions(first_run):
    ws, _ = first_run
    factors = ws.factors("buyers")["factors"]
    means = [f["mean_abs_shap"] for f in factors]
    assert means == sorted(means, reverse=True)
    top = factors[0]
    assert set(top["by_bucket"]["buckets"]) <= {"Low", "Medium", "High"}
    for bucket in top["by_bucket"]["buckets"].values():
        assert 0 <= bucket["coverage_pct"] <= 100
    assert all("by_bucket" in f for f in factors[:10])
    assert not any("by_bucket" in f for f in factors[10:])
    assert sum(s["factors"] for s in ws.factors("buyers")["sources"]) == len(factors)


def test_behaviour_weights_are_the_mean_absolute_sum_of_their_features(explained):
    e = explained
    document = e.ws.factors("buyers")
    sources = document["sources"]
    weight = {s: float(np.abs(v).mean()) for s, v in e.sums.items()}
    assert [s["source"] for s in sources] == sorted(weight, key=lambda s: -weight[s])
    feature_weight = {f["factor"]: f["mean_abs_shap"] for f in document["factors"]}
    behaviour = {f.source: f.behaviour for f in e.plan.features}
    for entry in sources:
        source = entry["source"]
        assert entry["mean_abs_shap"] == pytest.approx(weight[source], rel=1e-9, abs=1e-12)
        assert entry["name"] == behaviour[source]
        assert entry["factors"] == len(e.members[source])
        assert entry["share_pct"] == pytest.approx(100 * weight[source] / sum(weight.values()),
                                                   abs=0.01)
        ids = [e.plan.features[i].id for i in e.members[source]]
        ranked = sorted(ids, key=lambda i: -feature_weight[i])
        assert [feature_weight[i] for i in entry["top_factors"]] == [
            feature_weight[i] for i in ranked[:5]]
        # |sum| never exceeds the sum of |parts|: the old per-feature total overstated
        assert entry["mean_abs_shap"] <= sum(feature_weight[i] for i in ids) + 1e-12
    assert sum(s["share_pct"] for s in sources) == pytest.approx(100, abs=0.1)


def test_explain_and_scores_read_the_current_run(first_run):
    ws, run = first_run
    top = ws.scores("buyers", top=3).to_pylist()
    assert len(top) == 3 and top[0]["probability"] >= top[-1]["probability"]
    explained = ws.explain("buyers", top[0]["profile_id"])
    assert explained["profile"]["influential_factors"] == top[0]["influential_factors"]
    assert [h["run_id"] for h in explained["history"]] == [run.id]
    with pytest.raises(NotFoundError, match="no score"):
        ws.explain("buyers", "nobody")


def test_export_writes_every_format(first_run, tmp_path):
    ws, run = first_run
    n = run.counts["scored_profiles"]
    assert pq.read_table(ws.export("buyers", tmp_path / "s.parquet")).num_rows == n
    lines = ws.export("buyers", tmp_path / "s.jsonl", format="jsonl").read_text().splitlines()
    assert len(lines) == n and json.loads(lines[0])["influential_factors"]
    csv = ws.export("buyers", tmp_path / "s.csv", format="csv").read_text().splitlines()
    assert len(csv) == n + 1 and csv[0].startswith("profile_id,")


def test_rerunning_a_score_date_replaces_its_outputs(ws):
    ws.create_instance(config())
    first = ws.run("buyers", as_of=LAST_DAY)
    second = ws.run("buyers", as_of=LAST_DAY)
    assert ws.get_run("buyers", first.id).status == SUPERSEDED
    assert not run_dir(ws.path, first.instance_id, first.id).exists()
    history = ws.score_history("buyers").to_pyarrow()
    assert set(history.column("run_id").to_pylist()) == {second.id}
    assert history.num_rows == second.counts["scored_profiles"]


def test_a_later_run_keeps_profiles_it_did_not_score_in_the_profile_table(ws):
    ws.create_instance(config())
    early = ws.run("buyers", as_of=LAST_DAY - timedelta(days=21))
    late = ws.run("buyers", as_of=LAST_DAY)
    profile = ws.scores("buyers").to_pandas()
    old_only = profile[profile.run_id == early.id]
    assert len(old_only) > 0 and (old_only.score_date == LAST_DAY - timedelta(days=21)).all()
    assert (profile.run_id == late.id).sum() == late.counts["scored_profiles"]
    assert profile.profile_id.is_unique
    history = ws.score_history("buyers").to_pyarrow()
    assert history.num_rows == early.counts["scored_profiles"] + late.counts["scored_profiles"]


def test_rerunning_a_score_date_keeps_the_profiles_carried_from_older_dates(ws):
    ws.create_instance(config())
    early = ws.run("buyers", as_of=LAST_DAY - timedelta(days=21))
    ws.run("buyers", as_of=LAST_DAY)
    carried = set(ws.scores("buyers").to_pandas().query("run_id == @early.id").profile_id)
    assert carried
    again = ws.run("buyers", as_of=LAST_DAY)
    profile = ws.scores("buyers").to_pandas()
    assert carried <= set(profile.profile_id)
    assert set(profile[profile.run_id == early.id].profile_id) == carried
    assert (profile.run_id == again.id).sum() == again.counts["scored_profiles"]


def test_a_failed_run_leaves_the_previous_outputs_byte_identical(ws):
    ws.create_instance(config())
    good = ws.run("buyers")
    folder = run_dir(ws.path, good.instance_id, good.id)
    before = folder_digest(folder)
    with pytest.raises(RunError) as failed:
        ws.run("buyers", as_of=LAST_DAY - timedelta(days=190))
    assert failed.value.code == 407
    ws.delete_dataset("profiles", force=True)  # the same score date now cannot be rebuilt
    with pytest.raises(NotFoundError):
        ws.run("buyers", as_of=LAST_DAY)
    assert folder_digest(folder) == before
    runs = ws.runs("buyers")
    assert [r.status for r in runs] == ["failed", "failed", SUCCESS]
    assert "profiles" in runs[0].error and runs[1].error_code == 407
    for r in runs[:2]:
        assert not run_dir(ws.path, r.instance_id, r.id).exists()
    assert ws.scores("buyers").num_rows == good.counts["scored_profiles"]


def test_a_model_below_min_auc_is_a_training_issue_and_writes_nothing(ws):
    ws.create_instance(config(min_auc=0.999))
    with pytest.raises(RunError) as err:
        ws.run("buyers")
    assert err.value.code == 402 and "AUC" in err.value.message
    run = ws.runs("buyers")[0]
    assert run.status == TRAINING_ISSUE and run.error_code == 402
    assert run.metrics["holdout"]["auc"] < 0.999
    assert not run_dir(ws.path, run.instance_id, run.id).exists()
    with pytest.raises(NotFoundError, match="no successful run"):
        ws.scores("buyers")


REQUIREMENTS = {
    # code: (config changes, as_of, words the message must contain)
    400: ({"min_positives": 3000, "min_negatives": 1}, None, "Too few examples"),
    401: ({"min_positives": 100_000}, None, "100,150 needed"),
    405: ({"population": {"conditions": ["timestamp < TIMESTAMP '2025-06-05 00:00:00'"]}},
          None, "Nobody is eligible to score on 2025-07-19"),
    407: ({}, date(2025, 2, 15), "Not enough history"),
    408: ({}, date(2024, 12, 1), "No events before"),
    409: ({"goal": {"conditions": ["event_type = 'no.such.event'"]}}, None,
          "Nobody meets the goal"),
    410: ({"population": {"conditions": ["channel = 'fax'"]}}, None, "Nobody is eligible"),
    411: ({"exclusions": ["profile_id IS NOT NULL"]}, None, "No events left"),
}


@pytest.mark.parametrize("code", sorted(REQUIREMENTS))
def test_each_requirement_fails_with_its_code_and_numbers(ws, code):
    changes, as_of, words = REQUIREMENTS[code]
    ws.create_instance(config(**changes))
    with pytest.raises(RunError) as err:
        ws.run("buyers", as_of=as_of)
    assert err.value.code == code and words in err.value.message
    run = ws.runs("buyers")[0]
    assert run.status == "failed" and run.error_code == code and words in run.error
    assert not run_dir(ws.path, run.instance_id, run.id).exists()


def test_an_as_of_after_the_data_ends_is_refused(ws):
    ws.create_instance(config())
    with pytest.raises(RunError, match="after the data ends") as err:
        ws.run("buyers", as_of=LAST_DAY + timedelta(days=1))
    assert err.value.code == 408


def test_one_class_only_is_refused(tmp_path, write):
    """Everyone active every day and the goal is any visit: every example is positive."""
    start = date(2025, 1, 1)
    lines = ["profile_id,timestamp,event_type"] + [
        f"p{p},{start + timedelta(days=d)}T12:00:00,visit" for p in range(50) for d in range(120)]
    ws = Workspace.create(tmp_path / "ws")
    ws.ingest_events([write("visits.csv", "\n".join(lines) + "\n")], "events")
    ws.create_instance({"name": "visitors", "datasets": {"events": "events"},
                        "goal": {"conditions": ["event_type = 'visit'"], "window_days": 14},
                        "min_positives": 10, "min_negatives": 10})
    with pytest.raises(RunError) as err:
        ws.run("visitors")
    assert err.value.code == 413 and "Every example is positive" in err.value.message


def test_a_second_run_of_the_same_instance_is_refused_while_one_holds_it(ws):
    instance = ws.create_instance(config())
    lock = ws.path / "runs" / instance.id / ".lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from likely.storage import exclusive_lock\n"
         "with exclusive_lock(sys.argv[1], 'x'):\n print('held', flush=True); time.sleep(30)",
         str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError, match="Instance 'buyers' is busy"):
            ws.run("buyers")
    finally:
        holder.kill()
        holder.wait()
    assert ws.runs("buyers") == []  # refused before anything was recorded


def test_only_name_description_and_schedule_can_be_edited(ws):
    ws.create_instance(config())
    with pytest.raises(ConfigError, match="Clone the instance instead"):
        ws.edit_instance("buyers", goal={"window_days": 7})
    renamed = ws.edit_instance("buyers", name="buyers-eu", schedule="daily")
    assert ws.instance("buyers-eu").id == renamed.id and renamed.config.schedule == "daily"
    assert renamed.config.goal.window_days == 30


def test_a_run_killed_mid_way_is_closed_as_failed_by_the_next_run(ws):
    instance = ws.create_instance(config())
    run_id = "run-killed00000"
    with ws.catalog.transaction():
        ws.catalog.insert("runs", {"id": run_id, "instance_id": instance.id,
                                   "as_of": LAST_DAY.isoformat(), "status": "running",
                                   "started_at": "2026-01-01T00:00:00Z"})
    half = run_dir(ws.path, instance.id, run_id)
    half.mkdir(parents=True)
    (half / "features.parquet").write_bytes(b"half a file")
    good = ws.run("buyers")
    killed = ws.get_run("buyers", run_id)
    assert killed.status == "failed" and "Interrupted" in killed.error
    assert not half.exists() and good.status == SUCCESS


def test_a_profile_table_written_before_reasons_gained_fields_still_merges(ws):
    """Profile tables from an earlier version carry 6-field reasons; the next run reads them."""
    import pyarrow as pa

    ws.create_instance(config())
    early = ws.run("buyers", as_of=LAST_DAY - timedelta(days=21))
    path = run_dir(ws.path, early.instance_id, early.id) / "profile_scores.parquet"
    table = pq.read_table(path)
    old_fields = [f for f in table.schema.field("influential_factors").type.value_type
                  if f.name not in ("behaviour", "factor_contribution")]
    old_type = pa.list_(pa.struct(old_fields))
    reasons = pa.array([[{f.name: r[f.name] for f in old_fields} for r in row] if row else row
                        for row in table.column("influential_factors").to_pylist()], old_type)
    pq.write_table(table.set_column(table.schema.get_field_index("influential_factors"),
                                    "influential_factors", reasons), path)
    late = ws.run("buyers", as_of=LAST_DAY)
    carried = ws.scores("buyers").to_pandas().query("run_id == @early.id")
    assert len(carried) > 0 and late.status == SUCCESS
    reason = carried.influential_factors.iloc[0][0]
    assert reason["behaviour"] is None and reason["factor"]
