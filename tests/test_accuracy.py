"""Accuracy against the demo generator's ground truth.

The run scores at the start of the generator's oracle window, so its goal window is exactly the
window the oracle's true probabilities describe; both are judged on the same realised labels.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from likely.data import demo
from likely.model.evaluate import evaluate
from likely.scoring.records import run_dir
from likely.workspace import Workspace

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "purchase-30d.yaml"


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    root = tmp_path_factory.mktemp("accuracy")
    data = demo.generate(root / "demo", profiles=10_000, days=200, seed=11)
    ws = Workspace.create(root / "ws")
    ws.ingest_events([data.events_path], "demo-events")
    ws.ingest_profiles([data.profiles_path], "demo-profiles")
    ws.create_instance(yaml.safe_load(EXAMPLE.read_text()))
    run = ws.run("purchase-30d", as_of=data.oracle_anchor - timedelta(days=1))
    scores = pq.read_table(run_dir(ws.path, run.instance_id, run.id) / "scores.parquet")
    oracle = pq.read_table(data.oracle_path).rename_columns(
        ["profile_id", "true_probability", "label"])
    joined = scores.to_pandas().merge(oracle.to_pandas(), on="profile_id")
    assert len(joined) == scores.num_rows > 3000
    return ws, run, joined


def test_auc_is_within_003_of_the_oracle_on_the_same_labels(judged):
    _, _, joined = judged
    model_auc = roc_auc_score(joined.label, joined.probability)
    oracle_auc = roc_auc_score(joined.label, joined.true_probability)
    assert model_auc >= oracle_auc - 0.03, (model_auc, oracle_auc)


def test_probabilities_are_calibrated(judged):
    _, run, joined = judged
    assert run.metrics["holdout"]["ece"] < 0.03
    realised = evaluate(joined.label.to_numpy(), joined.probability.to_numpy()).to_dict()
    assert realised["ece"] < 0.03
    assert abs(joined.probability.mean() - joined.label.mean()) < 0.02


def test_planted_drivers_lead_the_global_factors(judged):
    """Durable planted drivers rank in the top 5; the short-lived cart signal in the top 10.

    The generator's cart and product-view effects last 7-14 days, so over a 30-day outcome window
    much of their credit goes to the activity features that proxy the latent engagement level.
    """
    ws, _, _ = judged
    ranked = [f["factor"] for f in ws.factors("purchase-30d")["factors"]]
    assert {"days_since_last.commerce_purchases", "attribute.loyalty_tier"} <= set(ranked[:5])
    assert any(f.endswith("commerce_productlistadds") for f in ranked[:10])


def test_scores_rank_the_true_probabilities(judged):
    _, _, joined = judged
    top = joined.nlargest(len(joined) // 10, "probability")
    rest = joined.drop(top.index)
    assert top.true_probability.mean() > 3 * rest.true_probability.mean()
    assert np.corrcoef(joined.probability, joined.true_probability)[0, 1] > 0.8
