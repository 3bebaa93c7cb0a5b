"""Train the model on the training anchors, gate it on the holdout, save it."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from likely.catalog import utcnow
from likely.errors import RunError
from likely.features import FeaturePlan
from likely.model.evaluate import evaluate
from likely.model.store import save_model
from likely.model.train import PropensityModel, TrainParams
from likely.scoring import retraining
from likely.scoring.pipeline import TrainingSet
from likely.storage import write_json

if TYPE_CHECKING:
    from likely.scoring.run import RunContext


def train(ctx: RunContext, plan: FeaturePlan, data: TrainingSet) -> tuple[PropensityModel, str]:
    """Fit, evaluate on the holdout, refuse a model under ``min_auc`` (code 402), save.

    Ranking metrics (AUC, PR-AUC, lift) use the holdout's raw model output; calibration metrics
    use its cross-fitted probabilities, never the rows a calibration map was fitted on.
    """
    train_rows, holdout_rows = ~data.holdout, data.holdout
    model = PropensityModel(TrainParams(num_threads=ctx.threads)).fit(
        data.features[train_rows], data.labels[train_rows],
        data.features[holdout_rows], data.labels[holdout_rows],
        progress=lambda done, total: ctx.report("training tree shapes", done, total),
    )
    evaluation = evaluate(data.labels[holdout_rows], model.holdout_probability_,
                          ranking=model.holdout_raw_).to_dict()
    out_of_time = int(ctx.counts.get("anchors", 0)) > 1
    evaluation.update(
        out_of_time=out_of_time,
        calibration_measured_on="cross-fitted" if model.holdout_cross_fitted_ else "in-sample")
    if not out_of_time:
        ctx.notes.append("Metrics are optimistic: the holdout is a random share of the only "
                         "training window, not a later window. Ingest more history for an "
                         "out-of-time holdout.")
    ctx.metrics["holdout"] = evaluation
    ctx.metrics["model"] = model.summary()
    auc, gate = evaluation["auc"], ctx.config.min_auc
    if auc < gate:
        raise RunError(
            402, f"Model quality too low: holdout AUC {auc:.3f} is below {gate:.2f}. The "
                 "previous scores stay in place. Add data sources, custom events or profile "
                 "attributes, or broaden the population.",
            status="training_issue", detail={"auc": auc, "min_auc": gate})
    model_id = f"model-{uuid.uuid4().hex[:12]}"
    folder = ctx.folder / "model"
    digest = save_model(model, folder, config={"instance": ctx.config.to_dict(),
                                               "plan": plan.to_dict()},
                        feature_names=[f.id for f in plan.features],
                        instance_id=ctx.instance.id, run_id=ctx.run_id)
    write_json({"holdout": evaluation, "model": ctx.metrics["model"]},
               ctx.folder / retraining.EVALUATION_FILE)
    retraining.write_reference(ctx.folder, model, plan, data.features[holdout_rows],
                               model.holdout_probability_)
    with ctx.catalog.transaction():
        ctx.catalog.insert("models", {
            "id": model_id, "instance_id": ctx.instance.id, "run_id": ctx.run_id,
            "path": str(folder.relative_to(ctx.root)), "sha256": digest,
            "created_at": utcnow(), "metrics": evaluation})
    return model, model_id

