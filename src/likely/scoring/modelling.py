"""Train the model on the training anchors, gate it on the holdout, save it."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from likely.catalog import utcnow
from likely.errors import RunError
from likely.features import FeaturePlan
from likely.model.evaluate import evaluate
from likely.model.store import save_model
from likely.model.train import PropensityModel
from likely.scoring.pipeline import TrainingSet, attribute_leaks
from likely.storage import write_json

if TYPE_CHECKING:
    from likely.scoring.run import RunContext


def train(ctx: RunContext, plan: FeaturePlan, data: TrainingSet) -> tuple[PropensityModel, str]:
    """Fit, evaluate on the holdout, refuse a model under ``min_auc`` (code 402), save."""
    train_rows, holdout_rows = ~data.holdout, data.holdout
    model = PropensityModel().fit(
        data.features[train_rows], data.labels[train_rows],
        data.features[holdout_rows], data.labels[holdout_rows],
        progress=lambda done, total: ctx.report("training tree shapes", done, total),
    )
    probability = model.predict_proba(data.features[holdout_rows])
    evaluation = evaluate(data.labels[holdout_rows], probability).to_dict()
    ctx.metrics["holdout"] = evaluation
    ctx.metrics["model"] = model.summary()
    ctx.notes.extend(attribute_leaks(plan, data))
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
               ctx.folder / "evaluation.json")
    with ctx.catalog.transaction():
        ctx.catalog.insert("models", {
            "id": model_id, "instance_id": ctx.instance.id, "run_id": ctx.run_id,
            "path": str(folder.relative_to(ctx.root)), "sha256": digest,
            "created_at": utcnow(), "metrics": evaluation})
    return model, model_id

