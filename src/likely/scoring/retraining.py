"""Retraining: whether a run trains a new model or re-scores with the current one, and drift.

A run re-scores with the model of the instance's newest successful run on or before its score
date, unless retraining is due:

- there is no such model (the first run, or every earlier run scored a later date);
- the model is ``retrain_days`` or more older than the score date;
- the run before it was marked *drift* (see :mod:`likely.model.drift`);
- the caller asks for it (``likely run --retrain``).

A model is only ever reused for a score date on or after the date it was trained at, so no
score sees data from after its date. A re-scoring run copies the model, its evaluation and its
drift reference into its own folder, so every run folder stays complete on its own.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq

from likely.catalog import Catalog
from likely.features import FeaturePlan
from likely.model import drift
from likely.model.store import load_model
from likely.scoring import records
from likely.scoring.instances import Instance
from likely.storage import write_json

if TYPE_CHECKING:
    import pandas as pd

    from likely.model.train import PropensityModel
    from likely.model.value import ValueModels
    from likely.scoring.run import RunContext

MODEL_FILE = "model"
EVALUATION_FILE = "evaluation.json"
DRIFT_FILE = "drift_reference.json"
DRIFT_FEATURES = 10  # the model's most important features watched for drift


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    base: records.RunRecord | None = None  # the run whose model is reused

    def to_dict(self) -> dict[str, Any]:
        return {"retrained": self.retrain, "reason": self.reason,
                "model_run_id": self.base.id if self.base else None}


def decide(catalog: Catalog, instance: Instance, as_of: date, *, force: bool = False
           ) -> Decision:
    """Train or re-score at ``as_of``, and why (in words, for the run's notes)."""
    if force:
        return Decision(True, "retraining was asked for")
    earlier = [r for r in records.successful_runs(catalog, instance.id)
               if date.fromisoformat(r.as_of) <= as_of and r.model_id]
    if not earlier:
        return Decision(True, "there is no model trained on or before this date yet")
    base = earlier[-1]
    trained = model_trained_as_of(base)
    age = (as_of - trained).days
    if age >= instance.config.retrain_days:
        return Decision(True, f"the model (trained as of {trained}) is {age} days old; "
                              f"retrain_days is {instance.config.retrain_days}")
    if base.metrics.get("drift", {}).get("drifted"):
        return Decision(True, f"the run of {base.as_of} found drift")
    return Decision(False, f"the model trained as of {trained} is {age} days old (retraining "
                           f"after {instance.config.retrain_days}, or on drift)", base)


def model_trained_as_of(run: records.RunRecord) -> date:
    """The score date of the run that trained ``run``'s model."""
    trained = run.metrics.get("retraining", {}).get("model_trained_as_of")
    return date.fromisoformat(trained or run.as_of)


def reuse(ctx: RunContext, base: records.RunRecord
          ) -> tuple[PropensityModel | ValueModels, str, FeaturePlan]:
    """Load the base run's model and feature plan, copy its files here, and carry over what
    describes the model (holdout metrics, training windows) into this run's record."""
    source = records.run_dir(ctx.root, ctx.instance.id, base.id)
    row = ctx.catalog.query_one("SELECT sha256 FROM models WHERE id = ?", (base.model_id,))
    from likely.model.value import load_value_model

    load = load_value_model if ctx.config.type == "clv" else load_model
    model = load(source / MODEL_FILE, expected_sha256=row["sha256"] if row else None)
    document = _model_document(source / MODEL_FILE)
    plan = FeaturePlan.from_dict(document["meta"]["config"]["plan"])
    ctx.folder.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_FILE, EVALUATION_FILE, DRIFT_FILE):
        if (source / name).exists():
            shutil.copyfile(source / name, ctx.folder / name)
    for key in ("holdout", "model", "training_windows", "value_models"):
        if key in base.metrics:
            ctx.metrics[key] = base.metrics[key]
    for key in ("anchors", "training_rows", "holdout_rows", "features", "training_positives",
                "training_negatives", "holdout_positives", "holdout_negatives"):
        if key in base.counts:
            ctx.counts[key] = base.counts[key]
    return model, base.model_id, plan


def record(ctx: RunContext, decision: Decision, as_of: date) -> None:
    """Say in the run's record whether it trained, and with which model it scored."""
    trained = as_of if decision.retrain else model_trained_as_of(decision.base)
    ctx.metrics["retraining"] = {**decision.to_dict(),
                                 "model_trained_as_of": trained.isoformat()}
    if decision.retrain:
        ctx.notes.append(f"Trained a new model: {decision.reason}.")
    else:
        ctx.notes.append(f"Re-scored with the current model (from the run of "
                         f"{decision.base.as_of}): {decision.reason}.")


# -- drift --------------------------------------------------------------------------------------


def write_reference(folder: Path, model: PropensityModel, plan: FeaturePlan,
                    features: pd.DataFrame, holdout_probability: np.ndarray) -> None:
    """Keep the training data's distributions: the holdout's probabilities and the model's most
    important features, over the holdout (the newest training window: the training data
    nearest the score date, so older windows' shorter history does not read as drift)."""
    gains = model.fitted_booster().feature_importance("gain")
    order = np.argsort(-gains)[:DRIFT_FEATURES]
    watched = [model.feature_names_[i] for i in order if gains[i] > 0]
    values = {drift.SCORE: holdout_probability, **{f: features[f] for f in watched}}
    write_json({"features": watched, "reference": drift.reference(values)},
               folder / DRIFT_FILE)


def measure(ctx: RunContext, probability: np.ndarray, features_file: Path) -> None:
    """PSI of this run's scores and watched features against the model's training data; a run
    above the instance's ``drift_threshold`` is marked drift, and the next run retrains."""
    path = ctx.folder / DRIFT_FILE
    if not path.exists():  # a model trained before drift was measured
        return
    saved = json.loads(path.read_text())
    reference = saved["reference"]
    scored = pq.read_table(features_file, columns=saved["features"]).to_pandas()
    found = {drift.SCORE: drift.psi(reference[drift.SCORE], probability),
             **{f: drift.psi(reference[f], scored[f]) for f in saved["features"]}}
    threshold = ctx.config.drift_threshold
    features = sorted(({"factor": f, "psi": round(v, 4)} for f, v in found.items()
                       if f != drift.SCORE), key=lambda e: -e["psi"])
    drifted = [name for name, value in found.items() if value > threshold]
    ctx.metrics["drift"] = {"score_psi": round(found[drift.SCORE], 4), "features": features,
                            "threshold": threshold, "drifted": bool(drifted),
                            "over_threshold": drifted}
    if drifted:
        ctx.notes.append(
            f"Drift: the population stability index of {', '.join(drifted)} is above "
            f"{threshold} against the model's training data; the next run retrains.")


def _model_document(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
