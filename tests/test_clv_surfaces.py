"""Lifetime value wherever scores are: segment rules, the CLI and the API.

One workspace ('buyers', a conversion instance, and 'clv_90d', a clv one, run once each; see
``_clv_workspace``). Segment sizes over the CLV fields are recounted with pandas from the run's
scores.parquet; the CLI prints the clv holdout metrics, not AUC; the API's Lifetime value card
agrees with the scores file and the run record; no page fails for a clv instance.
"""

from __future__ import annotations

import json
import shutil
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd
import pytest

from _clv_workspace import VALUE_COLUMNS, clv_workspace, scores_file
from conftest import LiveServer
from likely.cli.main import main
from likely.errors import ConditionError
from likely.scoring.records import run_dir
from likely.segments import SCORE_FIELDS
from likely.workspace import Workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    return Workspace(clv_workspace(tmp_path_factory))


@pytest.fixture(scope="module")
def both(ws) -> pd.DataFrame:
    """Every profile either run scored: buyers' columns as ``b.*``, clv_90d's as ``v.*``, and
    the profile attributes (a snapshot: as the rules read them)."""
    buyers = scores_file(ws, "buyers").add_prefix("b.").rename(columns={"b.profile_id":
                                                                         "profile_id"})
    value = scores_file(ws, "clv_90d").add_prefix("v.").rename(columns={"v.profile_id":
                                                                         "profile_id"})
    profiles = pd.read_parquet(ws.dataset("profiles").parts[0].parent)
    return buyers.merge(value, on="profile_id", how="outer").merge(
        profiles, on="profile_id", how="left")


@pytest.fixture(scope="module")
def api(ws):
    from likely.web import create_app

    with LiveServer(create_app(ws.path)) as server, httpx.Client(
            base_url=server.url, timeout=60, headers={"Origin": server.url}) as client:
        yield client


def words(text: str) -> str:
    """Rich wraps long lines at the terminal's width: compare text with spaces collapsed."""
    return " ".join(text.replace("│", " ").split())


# -- segments -------------------------------------------------------------------------------------


def test_rule_fields_depend_on_the_instance_type(ws):
    fields = {i["name"]: {f["name"]: f for f in i["fields"]}
              for i in ws.segment_fields()["instances"]}
    assert list(fields["buyers"]) == list(SCORE_FIELDS)
    assert set(VALUE_COLUMNS) | set(SCORE_FIELDS) == set(fields["clv_90d"])
    assert fields["clv_90d"]["probability"]["meaning"] == "probability the customer is still active"
    assert "90 days" in fields["clv_90d"]["predicted_value"]["meaning"]
    assert fields["clv_90d"]["value_percentile"]["type"] == "int16"
    with pytest.raises(ConditionError) as err:  # a propensity instance predicts no value
        ws.preview_segment("buyers.predicted_value > 10")
    assert err.value.token == "buyers.predicted_value"
    with pytest.raises(ConditionError, match="not a number"):
        ws.preview_segment("clv_90d.predicted_value > 'a lot'")


def test_clv_rule_sizes_equal_a_pandas_count_over_the_scores_file(ws, both):
    rules = {
        "clv_90d.predicted_value > 50": both["v.predicted_value"] > 50,
        "clv_90d.value_bucket = 'top 10%'": both["v.value_bucket"] == "top 10%",
        "buyers.bucket = 'High' AND clv_90d.predicted_value > 20":
            (both["b.bucket"] == "High") & (both["v.predicted_value"] > 20),
        "clv_90d.probability_active < 0.5 AND clv_90d.expected_purchases >= 0.5":
            (both["v.probability_active"] < 0.5) & (both["v.expected_purchases"] >= 0.5),
        "clv_90d.probability_active IS NULL AND clv_90d.bucket = 'Low'":
            both["v.probability_active"].isna() & (both["v.bucket"] == "Low"),
        "clv_90d.value_percentile >= 90 AND loyalty_tier IN ('gold', 'platinum')":
            (both["v.value_percentile"] >= 90)
            & both["loyalty_tier"].isin(["gold", "platinum"]),
        "buyers.bucket = 'High' OR clv_90d.value_bucket = 'next 30%'":
            (both["b.bucket"] == "High") | (both["v.value_bucket"] == "next 30%"),
        "clv_90d.probability < 0.9 AND clv_90d.score >= 50":
            (both["v.probability"] < 0.9) & (both["v.score"] >= 50),
    }
    answers = []
    for rule, mask in rules.items():
        expected = set(both.loc[mask.fillna(False).astype(bool), "profile_id"])
        preview = ws.preview_segment(rule, sample=5)
        assert preview["profiles"] == len(expected), rule
        assert {r["profile_id"] for r in preview["sample"]} <= expected, rule
        answers.append(len(expected))
    assert min(answers) > 0 and len(set(answers)) == len(answers)  # every rule a new answer


def test_members_carry_the_value_fields_and_publishing_keeps_them(ws, both, tmp_path):
    rule = "buyers.bucket = 'High' AND clv_90d.predicted_value > 20"
    sample = ws.preview_segment(rule, sample=3)["sample"]
    shown = {f"clv_90d.{c}" for c in ("predicted_value", "value_bucket", "expected_purchases",
                                      "probability_active", "bucket", "score")}
    assert shown <= set(sample[0]) and "buyers.probability" in sample[0]
    assert "clv_90d.probability" not in sample[0]  # it is probability_active, shown once
    row = both.set_index("profile_id").loc[sample[0]["profile_id"]]
    assert sample[0]["clv_90d.predicted_value"] == pytest.approx(row["v.predicted_value"])
    assert sample[0]["clv_90d.value_bucket"] == row["v.value_bucket"]
    assert "buyers.predicted_value" not in sample[0]

    segment = ws.create_segment("valuable buyers", rule)
    expected = int(((both["b.bucket"] == "High") & (both["v.predicted_value"] > 20)).sum())
    assert ws.segment_size(segment.name)["profiles"] == expected
    published = ws.publish_segment(segment.name)
    members = pd.read_parquet(ws.path / published["path"])
    assert len(members) == expected
    assert {"clv_90d.predicted_value", "clv_90d.probability_active"} <= set(members.columns)
    out = ws.export_segment(segment.name, tmp_path / "valuable.csv")
    assert len(pd.read_csv(out)) == expected
    shown = ws.show_segment(segment.name)
    assert shown["in_words"] == "buyers bucket is High and clv_90d predicted value above 20"
    assert shown["instances"] == ["buyers", "clv_90d"]


def test_automatic_segments_of_a_clv_instance_are_its_value_buckets(ws, both):
    sizes = {s.name: ws.segment_size(s.name)["profiles"]
             for s in ws.segments(hidden=True) if s.automatic and s.name.startswith("clv_90d")}
    for bucket, words in (("High", "top 10%"), ("Medium", "next 30%"), ("Low", "rest")):
        assert sizes[f"clv_90d — {bucket}"] == int((both["v.value_bucket"] == words).sum())


# -- the CLI --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    """A wide console, so table headers and cells read whole."""
    from likely.cli.common import console

    monkeypatch.setattr(console, "_width", 240)


def run(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out + err


def test_the_cli_shows_value_metrics_instead_of_auc(ws, capsys):
    path = str(ws.path)
    record = ws.get_run("clv_90d")
    holdout, models = record.metrics["holdout"], record.metrics["value_models"]
    other = "btyd" if holdout["model"] == "trees" else "trees"

    code, out = run(capsys, "runs", "show", "clv_90d", "-w", path)
    text = words(out)
    assert code == 0 and "auc" not in text.lower() and "calibration" not in text
    for label, key in (("normalised Gini", "gini"), ("Spearman", "spearman"),
                       ("decile MAPE", "decile_mape")):
        assert f"holdout {label} {holdout[key]:.4f}" in text
        assert f"{models[other][key]:.4f})" in text  # the other model's, next to it
    assert f"holdout top-decile capture {holdout['top_decile_capture']:.1%}" in text
    assert f"holdout predicted total {holdout['predicted_total']:,.2f}" in text
    assert f"holdout actual total {holdout['actual_total']:,.2f}" in text
    assert "chosen over" in text and "objective tweedie" in text
    expected = record.metrics["expected"]
    assert f"predicted value {expected['predicted_value_total']:,.0f} over" in text

    code, out = run(capsys, "runs", "list", "clv_90d", "-w", path)
    assert code == 0 and "Gini" in out and f"{holdout['gini']:.3f}" in out and "AUC" not in out
    code, out = run(capsys, "runs", "list", "buyers", "-w", path)
    assert code == 0 and "AUC" in out and "Gini" not in out


def test_the_cli_lists_scores_most_valuable_first_with_the_value_fields(ws, capsys):
    path = str(ws.path)
    scores = scores_file(ws, "clv_90d").sort_values(["predicted_value", "profile_id"],
                                                    ascending=[False, True])
    code, out = run(capsys, "scores", "clv_90d", "--top", "5", "-w", path, "--json")
    top = json.loads(out)
    assert code == 0 and [r["profile_id"] for r in top] == list(scores["profile_id"][:5])
    assert set(VALUE_COLUMNS) <= set(top[0])
    code, out = run(capsys, "scores", "clv_90d", "--top", "3", "-w", path)
    text = words(out)
    assert code == 0 and "predicted value" in text and "value bucket" in text
    assert "expected purchases" in text and "probability active" in text
    first = top[0]
    assert f"{first['predicted_value']:,.2f}" in text and first["value_bucket"] in text

    never = scores[scores["probability_active"].isna()].iloc[0]
    code, out = run(capsys, "explain", "clv_90d", never["profile_id"], "-w", path)
    text = words(out)
    assert code == 0 and f"predicted value {never['predicted_value']:,.2f} over the next 90 " \
                         f"days ({never['value_bucket']}, {never['bucket']})" in text
    assert "never bought" in text and "None" not in text

    code, out = run(capsys, "target", "clv_90d", "--size", "100", "-w", path, "--json")
    audience = json.loads(out)  # the summary's targeting curve: sums of predicted value
    total = scores["predicted_value"][:100].sum()
    assert audience["expected_goal_profiles"] == pytest.approx(total, rel=1e-3)
    code, out = run(capsys, "target", "clv_90d", "--size", "100", "-w", path)
    assert code == 0 and f"predicted value {audience['expected_goal_profiles']:,.0f}, " \
                         f"{audience['expected_precision']:,.2f} per profile" in words(out)
    assert "precision" not in out and "expected to meet the goal" not in out


def test_exports_carry_every_value_column(ws, tmp_path, capsys):
    out = tmp_path / "clv.csv"
    code, _ = run(capsys, "export", "clv_90d", "--format", "csv", "--out", str(out), "-w",
                  str(ws.path))
    exported = pd.read_csv(out)
    profile_scores = pd.read_parquet(
        run_dir(ws.path, ws.get_run("clv_90d").instance_id, ws.get_run("clv_90d").id)
        / "profile_scores.parquet")
    assert code == 0 and set(VALUE_COLUMNS) <= set(exported.columns)
    assert len(exported) == len(profile_scores)
    assert exported["predicted_value"].sum() == pytest.approx(
        profile_scores["predicted_value"].sum())


def test_a_clv_run_prints_its_holdout_comparison(ws, tmp_path, capsys):
    copy = tmp_path / "ws"
    shutil.copytree(ws.path, copy)  # a new run changes the current scores: not the shared ones
    code, out = run(capsys, "run", "clv_90d", "-w", str(copy))
    text = words(out)
    assert code == 0 and "success" in text and "AUC" not in text and "ECE" not in text
    assert "holdout: trees chosen: normalised Gini" in text or \
           "holdout: BG/NBD x Gamma-Gamma chosen: normalised Gini" in text
    assert "top-decile capture" in text and "in log-value" in text


# -- the API and the pages ------------------------------------------------------------------------


def test_the_lifetime_value_card_agrees_with_the_scores_file(ws, api):
    card = api.get("/api/instances/clv_90d/value").raise_for_status().json()
    scores = scores_file(ws, "clv_90d")
    record = ws.get_run("clv_90d")
    value = scores["predicted_value"]
    assert card["run_id"] == record.id and card["horizon_days"] == 90
    assert card["scored_profiles"] == len(scores)
    assert card["predicted_value_total"] == pytest.approx(value.sum())
    assert card["predicted_value_mean"] == pytest.approx(value.mean())

    for line in card["buckets"]:
        inside = scores[scores["bucket"] == line["bucket"]]
        assert line["profiles"] == len(inside)
        assert {line["value_bucket"]} == set(inside["value_bucket"])
        assert line["predicted_value_total"] == pytest.approx(inside["predicted_value"].sum())
        assert line["predicted_value_mean"] == pytest.approx(inside["predicted_value"].mean())
        assert line["share_pct"] == pytest.approx(100 * len(inside) / len(scores), abs=0.01)
        assert line["value_share_pct"] == pytest.approx(
            100 * inside["predicted_value"].sum() / value.sum(), abs=0.01)
        assert line["probability_active_mean"] == pytest.approx(
            inside["probability_active"].mean())
    assert [b["value_bucket"] for b in card["buckets"]] == ["top 10%", "next 30%", "rest"]

    dist = card["distribution"]
    edges = np.asarray(dist["edges"])
    assert np.all(np.diff(edges) > 0) and len(dist["labels"]) == len(edges) - 1
    assert edges[-1] == pytest.approx(value.max())
    assert edges[0] == pytest.approx(value.quantile(0.01), rel=5e-3)  # 3 significant figures
    index = np.searchsorted(edges[1:-1], value.to_numpy(), side="right")
    for bucket, counts in dist["counts"].items():
        mine = index[(scores["bucket"] == bucket).to_numpy()]
        assert counts == np.bincount(mine, minlength=len(edges) - 1).tolist(), bucket
    assert sum(dist["value"]) == pytest.approx(value.sum(), rel=1e-6)
    assert np.all(np.diff(edges[1:-1]) / edges[1:-2] > 0)  # log-spaced: ratios, not steps
    ratios = edges[2:-1] / edges[1:-2]
    assert ratios.max() / ratios.min() < 1.1

    models = card["models"]
    assert models["chosen"] == record.metrics["value_models"]["chosen"]
    for row in models["metrics"]:
        for name in ("trees", "btyd"):
            assert row[name] == record.metrics["value_models"][name][row["metric"]]
    assert [m["model"] for m in models["models"]] == ["trees", "btyd"]
    assert models["actual_total"] == record.metrics["holdout"]["actual_total"]
    factors = ws.factors("clv_90d")
    if models["chosen"] == "trees":
        assert [b["behaviour"] for b in card["behaviours"]] == \
               [s["name"] for s in factors["sources"][:len(card["behaviours"])]]


def test_the_latest_scores_of_a_clv_instance_carry_the_card(api):
    scores = api.get("/api/instances/clv_90d/scores").raise_for_status().json()
    card = api.get("/api/instances/clv_90d/value").json()
    assert scores["type"] == "clv" and scores["measure"] == "predicted_value"
    assert scores["lifetime_value"] == card
    assert "lifetime_value" not in api.get("/api/instances/buyers/scores").json()
    refused = api.get("/api/instances/buyers/value")
    assert refused.status_code == 422 and "only a clv" in refused.json()["error"]


def test_evaluation_and_runs_of_a_clv_instance_say_gini(ws, api):
    record = ws.get_run("clv_90d")
    evaluation = api.get("/api/instances/clv_90d/evaluation").raise_for_status().json()
    assert evaluation["type"] == "clv" and evaluation["grade"] is None
    assert evaluation["models"]["chosen"] == record.metrics["value_models"]["chosen"]
    runs = api.get("/api/instances/clv_90d/runs").json()
    assert runs[0]["gini"] == record.metrics["holdout"]["gini"] and runs[0]["auc"] is None
    page = api.get("/instances/clv_90d/evaluation")
    assert page.status_code == 200 and "Normalised Gini" in page.text and "AUC" not in page.text
    page = api.get("/instances/clv_90d/runs")
    assert f"{record.metrics['holdout']['gini']:.3f}" in page.text


@pytest.mark.parametrize("instance", ["clv_90d", "buyers"])
def test_every_page_renders_for_both_types(ws, api, instance):
    profile = quote(scores_file(ws, instance)["profile_id"].iloc[0])
    never = scores_file(ws, "clv_90d").query("probability_active.isna()")["profile_id"].iloc[0]
    for path in ("/", f"/instances/{instance}", f"/instances/{instance}/evaluation",
                 f"/instances/{instance}/performance", f"/instances/{instance}/analytics",
                 f"/instances/{instance}/runs", f"/instances/{instance}/profiles?id={profile}",
                 f"/instances/clv_90d/profiles?id={never}", "/segments", "/segments/new"):
        response = api.get(path)
        assert response.status_code == 200, (path, response.text[:300])
    for kind in ("trend", "distribution", "reasons", "overlap", "outcomes"):
        response = api.get(f"/api/instances/{instance}/analytics/{kind}")
        assert response.status_code == 200, (kind, response.text[:300])
    builder = api.get("/segments/new").text
    assert "clv_90d.predicted_value" in builder and "clv_90d.value_bucket" in builder


def test_a_segment_over_value_fields_from_the_api(ws, both, api):
    rule = "clv_90d.value_bucket = 'top 10%' AND buyers.bucket != 'High'"
    preview = api.post("/api/segments/preview", json={"rule": rule, "sample": 2}).json()
    expected = int(((both["v.value_bucket"] == "top 10%") & both["b.bucket"].notna()
                    & (both["b.bucket"] != "High")).sum())
    assert preview["profiles"] == expected > 0
    assert "clv_90d.predicted_value" in preview["sample"][0]
