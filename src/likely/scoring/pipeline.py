"""The stages of a run after its windows are placed: training set, model, scores, explanations.

Training set: at each anchor, the eligible profiles with their features (events strictly before
the anchor) and their label (the outcome window after it). The newest anchor is the time-based
holdout: early stopping, calibration and every reported metric use it; the older anchors train.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from likely.data.schema import PROFILE_ID, TIMESTAMP
from likely.errors import RunError
from likely.features import FeaturePlan, build_features, feature_frame, plan_features
from likely.model.evaluate import evaluate
from likely.model.labels import LABEL, eligible, labelled
from likely.scoring import outputs
from likely.scoring.windows import RunWindows

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from likely.scoring.run import RunContext, RunInputs

HOLDOUT_SHARE_SINGLE_ANCHOR = 0.2
ATTRIBUTE_LEAK_AUC = 0.98
SAMPLE_BUCKETS = 10_000


@dataclass(frozen=True)
class TrainingSet:
    features: pd.DataFrame  # one row per profile per anchor
    labels: np.ndarray
    holdout: np.ndarray     # bool mask: rows of the newest anchor


def train_and_score(ctx: RunContext, inputs: RunInputs, windows: RunWindows) -> str:
    """Run every stage after the windows; returns the new model's id."""
    from likely.scoring import modelling

    with ctx.stage("features"):
        history = inputs.events.filter(inputs.events[TIMESTAMP] < windows.cutoff)
        plan = plan_features(history, inputs.profiles, as_of=windows.cutoff,
                             custom_events=inputs.custom_events,
                             profile_attributes=ctx.config.profile_attributes)
        data = training_set(ctx, inputs, windows, plan)
    with ctx.stage("training"):
        model, model_id = modelling.train(ctx, plan, data)
    with ctx.stage("scoring"):
        population = eligible(inputs.events, inputs.profiles, inputs.population, windows.cutoff)
        scored = int(population.count().execute())
        ctx.counts["scored_profiles"] = scored
        if scored == 0:
            raise RunError(405, f"Nobody is eligible to score on {windows.as_of}: no profile "
                                f"has qualifying events in the {inputs.population.lookback_days} "
                                "days before it. Make sure the dataset is updated.")
        features = build_features(plan, inputs.events, inputs.profiles, population,
                                  anchor=windows.cutoff)
        outputs.write_features(ctx, features)
    outputs.score_and_explain(ctx, plan, model, model_id, windows)
    return model_id


def training_set(
    ctx: RunContext, inputs: RunInputs, windows: RunWindows, plan: FeaturePlan
) -> TrainingSet:
    labelled_anchors = [
        labelled(eligible(inputs.events, inputs.profiles, inputs.population, a),
                 inputs.events, inputs.goal, a)
        for a in windows.anchors
    ]
    per_anchor = [_label_counts(t) for t in labelled_anchors]
    _check_requirements(ctx, windows, per_anchor)
    total = sum(n for n, _ in per_anchor)
    rate = min(1.0, ctx.config.max_training_rows / total)
    if rate < 1.0:
        ctx.notes.append(
            f"Training rows capped at {ctx.config.max_training_rows:,}: sampled {rate:.1%} of "
            f"profiles ({total:,} rows before sampling), positives and negatives alike.")
    frames, labels, holdout = [], [], []
    for i, (anchor, table) in enumerate(zip(windows.anchors, labelled_anchors)):
        ctx.report("features per anchor", i, len(windows.anchors))
        frame, y = _anchor_frame(plan, inputs, _sample(table, rate), anchor)
        frames.append(frame)
        labels.append(y)
        holdout.append(np.full(len(y), i == 0))
    data = TrainingSet(pd.concat(frames, ignore_index=True), np.concatenate(labels),
                       np.concatenate(holdout))
    if len(windows.anchors) == 1:
        data = _split_single_anchor(ctx, data)
    ctx.counts["training_rows"] = int((~data.holdout).sum())
    ctx.counts["holdout_rows"] = int(data.holdout.sum())
    ctx.counts["features"] = len(plan.features)
    return data


def _label_counts(table: ir.Table) -> tuple[int, int]:
    row = table.aggregate(n=table.count(), positives=table[LABEL].sum()).execute().iloc[0]
    return int(row["n"]), int(row["positives"] or 0)


def _check_requirements(
    ctx: RunContext, windows: RunWindows, per_anchor: list[tuple[int, int]]
) -> None:
    cfg = ctx.config
    eligible_n = sum(n for n, _ in per_anchor)
    positives = sum(p for _, p in per_anchor)
    negatives = eligible_n - positives
    ctx.counts.update({"training_eligible": eligible_n, "training_positives": positives,
                       "training_negatives": negatives, "anchors": len(per_anchor)})
    span = (f"{len(per_anchor)} training window(s) from {windows.anchors[-1]:%Y-%m-%d} to "
            f"{windows.anchors[0]:%Y-%m-%d}, outcome window {windows.window_days} days")
    met = positives if cfg.goal.occurs else negatives
    detail = {"eligible": eligible_n, "positives": positives, "negatives": negatives,
              "anchors": [a.isoformat() for a in windows.anchors]}
    if eligible_n == 0:
        raise RunError(410, f"Nobody is eligible in the {span}. Change the population.",
                       detail=detail)
    needed = cfg.min_positives + cfg.min_negatives
    if eligible_n < needed:
        raise RunError(401, f"Only {eligible_n:,} eligible profile-windows in the {span}; "
                            f"{needed:,} needed. Widen the population or its lookback.",
                       detail=detail)
    if met == 0:
        raise RunError(409, f"Nobody meets the goal in the {span}. Check the goal conditions.",
                       detail=detail)
    if positives == 0 or negatives == 0:
        which = "positive" if negatives == 0 else "negative"
        raise RunError(413, f"Every example is {which} in the {span}: the model needs both. "
                            "Change the goal or the population so both outcomes occur.",
                       detail=detail)
    if positives < cfg.min_positives or negatives < cfg.min_negatives:
        raise RunError(
            400, f"Too few examples in the {span}: {positives:,} positive (need "
                 f"{cfg.min_positives:,}) and {negatives:,} negative (need "
                 f"{cfg.min_negatives:,}). Check the data, shorten the outcome window or "
                 "broaden the goal.", detail=detail)


def _sample(table: ir.Table, rate: float) -> ir.Table:
    """Keep a stable share of profiles (the same profiles at every anchor)."""
    if rate >= 1.0:
        return table
    bucket = table[PROFILE_ID].hash().abs() % SAMPLE_BUCKETS
    return table.filter(bucket < int(rate * SAMPLE_BUCKETS))


def _anchor_frame(
    plan: FeaturePlan, inputs: RunInputs, table: ir.Table, anchor: datetime
) -> tuple[pd.DataFrame, np.ndarray]:
    features = build_features(plan, inputs.events, inputs.profiles,
                              table.select(PROFILE_ID), anchor=anchor)
    joined = features.join(table, PROFILE_ID).order_by(PROFILE_ID)
    frame = feature_frame(joined, plan)
    y = frame.pop(LABEL).to_numpy(dtype=np.int8)
    return frame.drop(columns=[PROFILE_ID]), y


def _split_single_anchor(ctx: RunContext, data: TrainingSet) -> TrainingSet:
    rng = np.random.default_rng(0)
    holdout = rng.random(len(data.labels)) < HOLDOUT_SHARE_SINGLE_ANCHOR
    ctx.notes.append("Only one training window fits the history, so the holdout is a random "
                     f"{HOLDOUT_SHARE_SINGLE_ANCHOR:.0%} of its profiles instead of a later "
                     "window.")
    return TrainingSet(data.features, data.labels, holdout)


def attribute_leaks(plan: FeaturePlan, data: TrainingSet) -> list[str]:
    """Profile attributes that alone separate the classes almost perfectly (likely leakage)."""
    from sklearn.metrics import roc_auc_score

    leaks = []
    for feature in plan.features:
        if feature.family != "attribute" or feature.kind != "numeric":
            continue
        column = data.features[feature.id].to_numpy(dtype=float)
        known = ~np.isnan(column)
        if known.sum() < 10 or len(np.unique(data.labels[known])) < 2:
            continue
        auc = roc_auc_score(data.labels[known], column[known])
        if max(auc, 1 - auc) >= ATTRIBUTE_LEAK_AUC:
            leaks.append(f"Profile attribute '{feature.source}' alone predicts the label with "
                         f"AUC {max(auc, 1 - auc):.3f}: it may be set by the goal itself "
                         "(leakage). Consider removing it from profile_attributes.")
    return leaks


def holdout_metrics(y: np.ndarray, probability: np.ndarray) -> dict[str, Any]:
    return evaluate(y, probability).to_dict()
