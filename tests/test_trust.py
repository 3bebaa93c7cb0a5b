"""Scores you can trust on realistic inputs, judged against the demo generator's known truth.

Each simulation scores at the start of the generator's oracle window, so a run's outcome window is
exactly the one whose true probabilities (``oracle.parquet``) and realised outcomes are known:

- a CRM snapshot of pure noise stamped "last modified" by each profile's last purchase must
  change neither the holdout AUC nor the real out-of-time AUC, nor the probabilities' level;
- date-only timestamps (every event at midnight) must not lose a day of outcomes;
- a profile history with tied stamps must give identical outputs run after run;
- an attribute that knows the outcome is left out, not just noted.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from likely.data import demo
from likely.data.schema import PURCHASE
from likely.scoring.records import run_dir
from likely.workspace import Workspace

PROFILES, DAYS = 5000, 200


def instance(name: str, window: int = 30, **changes) -> dict:
    return {"name": name, "datasets": {"events": "events"},
            "goal": {"conditions": [f"event_type = '{PURCHASE}'"], "window_days": window},
            "exclusions": ["event_type = 'directMarketing.emailSent'"],
            "min_positives": 100, "min_negatives": 100, **changes}


def judged(ws: Workspace, name: str, data: demo.DemoData) -> dict:
    """Run at the oracle window's start; the run's own metrics next to the real outcome."""
    run = ws.run(name, as_of=data.oracle_anchor - timedelta(days=1))
    scores = pq.read_table(run_dir(ws.path, run.instance_id, run.id) / "scores.parquet")
    oracle = pq.read_table(data.oracle_path).to_pandas()
    joined = scores.to_pandas().merge(oracle.rename(columns={"probability": "truth"}),
                                      on="profile_id")
    assert len(joined) == scores.num_rows
    return {"run": run, "holdout_auc": run.metrics["holdout"]["auc"],
            "real_auc": roc_auc_score(joined.label, joined.probability),
            "mean_probability": joined.probability.mean(), "realised": joined.label.mean(),
            "true_rate": joined.truth.mean(), "scores": joined}


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> tuple[Workspace, demo.DemoData]:
    """Demo events plus a CRM snapshot of noise, stamped by each profile's last purchase."""
    root = tmp_path_factory.mktemp("trust")
    data = demo.generate(root / "demo", profiles=PROFILES, days=DAYS, seed=21)
    events = pq.read_table(data.events_path, columns=["profile_id", "timestamp", "event_type"])
    events = events.to_pandas()
    last_purchase = events[events.event_type == PURCHASE].groupby("profile_id").timestamp.max()
    rng = np.random.default_rng(3)
    crm = pd.DataFrame({"profile_id": [f"p{i:06d}" for i in range(PROFILES)],
                        "noise_score": rng.normal(size=PROFILES),
                        "noise_segment": rng.choice(list("ABCDE"), PROFILES)})
    crm["updated_at"] = crm.profile_id.map(last_purchase).fillna(pd.Timestamp(data.start))
    crm.to_parquet(root / "crm.parquet", index=False)
    ws = Workspace.create(root / "ws")
    ws.ingest_events([data.events_path], "events")
    ws.ingest_profiles([root / "crm.parquet"], "crm")
    assert ws.dataset("crm").quality["shape"] == "snapshot"
    return ws, data


@pytest.fixture(scope="module")
def baseline(sim) -> dict:
    ws, data = sim
    ws.create_instance(instance("base"))
    return judged(ws, "base", data)


def test_the_baseline_is_honest(baseline):
    assert 0.75 < baseline["holdout_auc"] < 0.95 and 0.75 < baseline["real_auc"] < 0.95
    assert abs(baseline["mean_probability"] / baseline["realised"] - 1) < 0.15


@pytest.mark.parametrize("changes", [
    # undeclared: the snapshot's attributes are left out, and a condition on one still works
    {"population": {"profile_conditions": ["noise_segment IS NOT NULL"]}},
    # declared time-invariant: used at every window with the snapshot's values
    {"static_attributes": ["noise_score", "noise_segment"]},
], ids=["undeclared", "static"])
def test_a_crm_snapshot_stamped_by_the_last_purchase_leaks_nothing(sim, baseline, changes):
    ws, data = sim
    name = "crm-" + "-".join(changes)
    ws.create_instance(instance(name, **changes, datasets={"events": "events",
                                                            "profiles": "crm"}))
    result = judged(ws, name, data)
    assert abs(result["holdout_auc"] - baseline["holdout_auc"]) <= 0.02, result["holdout_auc"]
    assert abs(result["real_auc"] - baseline["real_auc"]) <= 0.02, result["real_auc"]
    assert abs(result["mean_probability"] / result["realised"] - 1) < 0.15
    assert result["run"].counts["scored_profiles"] == baseline["run"].counts["scored_profiles"]
    used = {f["factor"] for f in ws.factors(name)["factors"]}
    if "static_attributes" in changes:
        assert {"attribute.noise_score", "attribute.noise_segment"} <= used
    else:
        assert not [f for f in used if "noise" in f]
        assert any("noise_score, noise_segment are left out" in n and "static_attributes" in n
                   for n in result["run"].notes)


def test_an_attribute_that_knows_the_outcome_is_left_out(sim, baseline):
    """A "last order date" declared static by mistake: at past windows it is a date not reached
    yet for everyone who bought since, so its missingness tells the outcome."""
    ws, data = sim
    crm = pq.read_table(Path(ws.dataset("crm").parts[0])).to_pandas()
    crm["last_order"] = crm.updated_at.where(crm.updated_at > pd.Timestamp(data.start))
    path = ws.path.parent / "crm-orders.parquet"
    crm.drop(columns=["updated_at"]).to_parquet(path, index=False)
    ws.ingest_profiles([path], "crm-orders")
    ws.create_instance(instance("leaky", static_attributes=["last_order"],
                                datasets={"events": "events", "profiles": "crm-orders"}))
    result = judged(ws, "leaky", data)
    assert any("'last_order' is left out" in n for n in result["run"].notes), result["run"].notes
    assert "days_since.last_order" not in {f["factor"] for f in ws.factors("leaky")["factors"]}
    assert abs(result["holdout_auc"] - baseline["holdout_auc"]) <= 0.02


def test_identical_runs_with_tied_profile_versions_give_identical_outputs(sim, tmp_path):
    """A history whose versions tie on updated_at: one version is picked, the same every time."""
    _, data = sim
    people = pq.read_table(data.profiles_path).to_pandas()
    start, rng, n = pd.Timestamp(data.start), np.random.default_rng(5), len(people)
    later = start + pd.Timedelta(days=60)
    versions = pd.concat([
        people.assign(updated_at=start, segment="new", visits=0),
        people.assign(updated_at=later, segment=rng.choice(["a", "b"], n),
                      visits=rng.poisson(3, n)),
        people.assign(updated_at=later, segment=rng.choice(["c", "d"], n),  # tied with the above
                      visits=rng.poisson(3, n)),
    ])
    path = tmp_path / "history.parquet"
    versions.sample(frac=1.0, random_state=1).to_parquet(path, index=False)
    outputs = []
    for copy in ("one", "two"):
        other = Workspace.create(tmp_path / copy)
        other.ingest_events([data.events_path], "events")
        other.ingest_profiles([path], "history")
        assert other.dataset("history").quality["shape"] == "history"
        other.create_instance(instance("tied", datasets={"events": "events",
                                                         "profiles": "history"}))
        run = other.run("tied", as_of=data.oracle_anchor - timedelta(days=1))
        scores = pq.read_table(run_dir(other.path, run.instance_id, run.id) / "scores.parquet")
        outputs.append(scores.drop(["run_id", "model_id", "instance_id"]).to_pandas())
        assert "attribute.segment" in {f["factor"] for f in other.factors("tied")["factors"]}
        shutil.rmtree(tmp_path / copy / "tmp", ignore_errors=True)
    pd.testing.assert_frame_equal(outputs[0], outputs[1])


def test_date_only_timestamps_lose_no_day_of_outcomes(tmp_path):
    """Every event at midnight of its day, a 7-day goal, scored on the newest day of the data:
    the holdout's outcome window [anchor, anchor + 7) holds 7 whole days of data (an outcome
    window (anchor, anchor + 7] held 6: its last day lies after the data). Judged against the
    generator's true probabilities for the 7 days after the data (their mean is the rate the
    realised outcomes scatter around)."""
    data = demo.generate(tmp_path / "demo", profiles=PROFILES, days=DAYS, seed=22,
                         oracle_window_days=7)
    events = pq.read_table(data.events_path).to_pandas()
    events["timestamp"] = events.timestamp.dt.floor("D")
    events = events[events.timestamp < pd.Timestamp(data.oracle_anchor)]  # the data ends there
    events.to_parquet(tmp_path / "dates.parquet", index=False)
    ws = Workspace.create(tmp_path / "ws")
    ws.ingest_events([tmp_path / "dates.parquet"], "events")
    ws.create_instance(instance("week", window=7))
    result = judged(ws, "week", data)
    assert abs(result["mean_probability"] / result["true_rate"] - 1) < 0.10, result
    assert abs(result["mean_probability"] / result["realised"] - 1) < 0.20, result
