"""A lifetime-value run (``type: clv``): what each customer will spend over the horizon.

The run shares everything up to the model with propensity (windows, population, features,
training windows; the target is each profile's net spend in the window instead of a 0/1 label),
then fits two models and keeps the better one on the holdout:

- trees (:class:`likely.model.value.ValueModel`, Tweedie loss) on the behavioural features,
  early-stopped on a share of the training rows;
- the buy-till-you-die baseline (BG/NBD × Gamma-Gamma) fitted on purchase history before the
  holdout window starts (it reads no outcome).

Both are judged on the holdout's actual spend, which neither was fitted on: normalised Gini (the
choice), Spearman, decile MAPE, top-decile capture and total predicted against actual. Scoring
writes ``predicted_value`` from the chosen model, and ``expected_purchases`` and
``probability_active`` from the baseline refitted on all history before the score date.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import ibis
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from likely.catalog import utcnow
from likely.conditions import combine
from likely.data.schema import PROFILE_ID, TIMESTAMP, VALUE
from likely.errors import ConfigError, DataError, RunError
from likely.features import FeaturePlan
from likely.model import clv_metrics
from likely.model.value import (
    BuyTillYouDie,
    ValueModel,
    ValueModels,
    ValueParams,
    rfm_columns,
    save_value_model,
)
from likely.scoring import outputs, pipeline, retraining
from likely.storage import write_json

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from likely.scoring.run import RunContext, RunInputs
    from likely.scoring.windows import RunWindows

MIN_GINI = 0.0  # a chosen model that orders customers no better than chance is refused (402)


def train_and_score(ctx: RunContext, inputs: RunInputs, windows: RunWindows) -> str:
    """Every stage after the windows; returns the new model's id."""
    check_value_column(ctx, inputs)
    with ctx.stage("features"):
        plan = pipeline.plan_for_run(ctx, inputs, windows)
        data = pipeline.training_set(ctx, inputs, windows, plan)
        population = pipeline.scoring_population(ctx, inputs, windows)
    with ctx.stage("training"):
        plan, data = pipeline.screen_attributes(ctx, inputs, windows, plan, data, population)
        models, model_id, rfm = _train(ctx, inputs, windows, plan, data, population)
    _score(ctx, inputs, windows, plan, models, model_id, population, rfm)
    return model_id


def rescore(ctx: RunContext, inputs: RunInputs, windows: RunWindows, models: ValueModels,
            model_id: str, plan: FeaturePlan) -> str:
    """Score with the models of an earlier run (no training windows are built)."""
    check_value_column(ctx, inputs)
    with ctx.stage("features"):
        population = pipeline.scoring_population(ctx, inputs, windows)
    _score(ctx, inputs, windows, plan, models, model_id, population)
    return model_id


def check_value_column(ctx: RunContext, inputs: RunInputs) -> None:
    column = ctx.config.value_column
    schema = inputs.events.schema()
    if column not in schema:
        raise ConfigError(f"value_column '{column}' is not a column of events dataset "
                          f"'{ctx.config.datasets.events}'. Columns: {', '.join(schema.names)}.")
    if not schema[column].is_numeric():
        raise ConfigError(f"value_column '{column}' of events dataset "
                          f"'{ctx.config.datasets.events}' is {schema[column]}, not a number.")


def purchases(ctx: RunContext, inputs: RunInputs) -> ir.Table:
    """The goal's events with their value, as the baseline reads them."""
    events, goal = inputs.events, inputs.goal
    hits = events.filter(combine(list(goal.conditions), goal.match, events).fill_null(False))
    return hits.select(PROFILE_ID, TIMESTAMP, **{VALUE: hits[ctx.config.value_column]
                                                 .cast("float64")})


# -- training -------------------------------------------------------------------------------------


def _train(ctx: RunContext, inputs: RunInputs, windows: RunWindows, plan: FeaturePlan,
           data: pipeline.TrainingSet, population: ir.Table
           ) -> tuple[ValueModels, str, dict[str, Any]]:
    """Fit both models, judge them on the holdout, keep the better; also returns the scored
    population's purchase summary at the cutoff, which the baseline was refitted on and
    scoring reads again."""
    train_rows, holdout_rows = ~data.holdout, data.holdout
    trees = ValueModel(ValueParams(num_threads=ctx.threads)).fit(
        data.features[train_rows], data.labels[train_rows])
    actual = data.labels[holdout_rows]
    bought = purchases(ctx, inputs)
    holdout_ids = ibis.memtable({PROFILE_ID: data.profiles[holdout_rows]})
    rfm = _aligned(rfm_columns(bought, holdout_ids, windows.anchors[0]),
                   data.profiles[holdout_rows])
    baseline_then = _fit_baseline(rfm, windows.anchors[0])
    predicted = {"trees": trees.predict(data.features[holdout_rows]),
                 "btyd": baseline_then.predict(rfm, windows.window_days)["predicted_value"]}
    judged = {name: clv_metrics.value_metrics(actual, values)
              for name, values in predicted.items()}
    chosen = max(judged, key=lambda name: judged[name]["gini"])
    evaluation = {**judged[chosen], "model": chosen, "rows": int(actual.size),
                  "buyers": int((actual > 0).sum()), "out_of_time": len(windows.anchors) > 1}
    ctx.metrics["holdout"] = evaluation
    ctx.metrics["value_models"] = {"chosen": chosen, "compared_on": "holdout", **judged,
                                   "btyd_at_holdout": baseline_then.to_dict()}
    ctx.metrics["model"] = trees.summary()
    if evaluation["gini"] <= MIN_GINI:
        raise RunError(402, f"Model quality too low: the better model ({chosen}) orders the "
                            f"holdout's spend with a normalised Gini of {evaluation['gini']:.3f}"
                            ", no better than chance. The previous scores stay in place.",
                       status="training_issue", detail={"gini": evaluation["gini"]})
    rfm_now = rfm_columns(bought, population, windows.cutoff)
    baseline = _fit_baseline(rfm_now, windows.cutoff)
    ctx.notes.append(
        f"Lifetime value: {_words(chosen)} chosen, normalised Gini {judged[chosen]['gini']:.3f} "
        f"on the holdout against {judged[_other(chosen)]['gini']:.3f} for "
        f"{_words(_other(chosen))}.")
    models = ValueModels(trees, baseline, chosen, windows.window_days)
    return models, _save(ctx, plan, models, data, evaluation, predicted[chosen]), rfm_now


def _fit_baseline(rfm: dict[str, Any], cutoff: Any) -> BuyTillYouDie:
    """BG/NBD × Gamma-Gamma on a purchase summary at ``cutoff`` (profiles that never bought
    are left out)."""
    known = ~np.isnan(rfm["T"])
    try:
        return BuyTillYouDie.fit({k: v[known] for k, v in rfm.items() if k != PROFILE_ID})
    except DataError as exc:
        raise RunError(415, f"The buy-till-you-die baseline cannot be fitted on the purchases "
                            f"before {cutoff:%Y-%m-%d}: {exc.message} It needs customers who "
                            "buy again: widen the population, or ingest a longer history."
                       ) from None


def _aligned(rfm: dict[str, Any], ids: np.ndarray) -> dict[str, np.ndarray]:
    """Summary columns in the order of ``ids`` (the engine sorts; the training set has its own)."""
    frame = pd.DataFrame({k: v for k, v in rfm.items() if k != PROFILE_ID},
                         index=rfm[PROFILE_ID].to_pandas())
    frame = frame.reindex(pd.Index(ids))
    return {c: frame[c].to_numpy(dtype=float) for c in frame.columns}


def _words(choice: str) -> str:
    return "the trees on behaviour" if choice == "trees" else "the BG/NBD × Gamma-Gamma baseline"


def _other(choice: str) -> str:
    return "btyd" if choice == "trees" else "trees"


def _save(ctx: RunContext, plan: FeaturePlan, models: ValueModels,
          data: pipeline.TrainingSet, evaluation: dict[str, Any], holdout_values: np.ndarray
          ) -> str:
    model_id = f"model-{uuid.uuid4().hex[:12]}"
    folder = ctx.folder / retraining.MODEL_FILE
    digest = save_value_model(models, folder, config={"instance": ctx.config.to_dict(),
                                                      "plan": plan.to_dict()},
                              instance_id=ctx.instance.id, run_id=ctx.run_id)
    write_json({"holdout": evaluation, "model": ctx.metrics["model"],
                "value_models": ctx.metrics["value_models"]},
               ctx.folder / retraining.EVALUATION_FILE)
    retraining.write_reference(ctx.folder, models.trees, plan, data.features[data.holdout],
                               holdout_values)
    with ctx.catalog.transaction():
        ctx.catalog.insert("models", {
            "id": model_id, "instance_id": ctx.instance.id, "run_id": ctx.run_id,
            "path": str(folder.relative_to(ctx.root)), "sha256": digest,
            "created_at": utcnow(), "metrics": evaluation})
    return model_id


# -- scoring --------------------------------------------------------------------------------------


def _score(ctx: RunContext, inputs: RunInputs, windows: RunWindows, plan: FeaturePlan,
           models: ValueModels, model_id: str, population: ir.Table,
           rfm: dict[str, Any] | None = None) -> None:
    """Features, baseline and scores at the cutoff; ``rfm`` is the population's purchase
    summary there when training already computed it."""
    with ctx.stage("scoring"):
        path = pipeline.scoring_features(ctx, inputs, windows, plan, population)
        scored = pq.read_table(path, columns=[PROFILE_ID]).column(PROFILE_ID).to_numpy(
            zero_copy_only=False)
        if rfm is None:
            rfm = rfm_columns(purchases(ctx, inputs), population, windows.cutoff)
        baseline = models.baseline.predict(_aligned(rfm, scored), models.horizon_days)
    table = outputs.score_and_explain_value(ctx, plan, models, model_id, windows, baseline)
    predicted = table.column("predicted_value").to_numpy()
    ctx.metrics["expected"] = {"scored_profiles": int(predicted.size),
                               "predicted_value_total": float(predicted.sum()),
                               "expected_purchases_total": float(
                                   baseline["expected_purchases"].sum())}
    pipeline.after_scoring(ctx, inputs, windows, predicted, path)
