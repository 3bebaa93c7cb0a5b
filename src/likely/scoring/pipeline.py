"""The stages of a run after its windows are placed: training set, model, scores, explanations.

Training set: at each anchor, the eligible profiles with their features (events strictly before
the anchor) and their label (the outcome window from it: the goal met or not, or for a clv
instance the net spend, whose models live in :mod:`likely.scoring.lifetime_value`). The newest
anchor is the time-based holdout: early stopping, calibration and every reported metric use it;
the older anchors train.
Before training, profile attributes that could only know the future are left out (see
:func:`screen_attributes`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from likely.data.schema import PROFILE_ID, TIMESTAMP
from likely.errors import RunError
from likely.features import FeaturePlan, build_features, feature_frame, feature_specs, plan_features
from likely.model.labels import LABEL, eligible, labelled, valued
from likely.model.leakage import LEAK_AUC, separation_auc
from likely.scoring import outputs
from likely.scoring.outcomes import track_outcomes
from likely.scoring.summary import build_summary, write_summary
from likely.scoring.windows import RunWindows

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from likely.model.train import PropensityModel
    from likely.scoring.run import RunContext, RunInputs

HOLDOUT_SHARE_SINGLE_ANCHOR = 0.2
HOLDOUT_MIN_ROWS = 50_000  # a sampled holdout keeps at least this many rows when there are
SAMPLE_BUCKETS = 10_000
MISSING_SKEW = 0.10  # attribute missing this much more often in training than at scoring: out
RATE_SPREAD_RATIO = 1.5  # goal rates across training windows this far apart are noted


@dataclass(frozen=True)
class TrainingSet:
    features: pd.DataFrame  # one row per profile per anchor
    labels: np.ndarray      # 0/1 (propensity), or net spend in the window (clv)
    holdout: np.ndarray     # bool mask: rows of the newest anchor
    profiles: np.ndarray    # each row's profile id

    def without(self, columns: list[str]) -> TrainingSet:
        return replace(self, features=self.features.drop(columns=columns))


def train_and_score(ctx: RunContext, inputs: RunInputs, windows: RunWindows) -> str:
    """Run every stage after the windows; returns the new model's id."""
    from likely.scoring import modelling

    with ctx.stage("features"):
        plan = plan_for_run(ctx, inputs, windows)
        data = training_set(ctx, inputs, windows, plan)
        population = scoring_population(ctx, inputs, windows)
    with ctx.stage("training"):
        plan, data = screen_attributes(ctx, inputs, windows, plan, data, population)
        model, model_id = modelling.train(ctx, plan, data)
    _score(ctx, inputs, windows, plan, model, model_id, population)
    return model_id


def rescore(ctx: RunContext, inputs: RunInputs, windows: RunWindows, model: PropensityModel,
            model_id: str, plan: FeaturePlan) -> str:
    """Score and explain with an existing model (no training windows are built)."""
    with ctx.stage("features"):
        population = scoring_population(ctx, inputs, windows)
    _score(ctx, inputs, windows, plan, model, model_id, population)
    return model_id


def _score(ctx: RunContext, inputs: RunInputs, windows: RunWindows, plan: FeaturePlan,
           model: PropensityModel, model_id: str, population: ir.Table) -> None:
    """Features at the cutoff, scores and reasons, drift, summary, outcomes of earlier runs."""
    with ctx.stage("scoring"):
        path = scoring_features(ctx, inputs, windows, plan, population)
    scores = outputs.score_and_explain(ctx, plan, model, model_id, windows)
    probability = scores.column("probability").to_numpy()
    _expected_versus_last_window(ctx, probability)
    after_scoring(ctx, inputs, windows, probability, path)


def after_scoring(ctx: RunContext, inputs: RunInputs, windows: RunWindows, scored: np.ndarray,
                  features: Path) -> None:
    """Drift of ``scored`` (probabilities, or predicted values) and the features, the summary,
    and the outcomes of earlier runs whose window has closed: the same for every kind of run."""
    from likely.scoring import retraining

    with ctx.stage("drift"):
        retraining.measure(ctx, scored, features)
    with ctx.stage("summary"):
        write_summary(build_summary(ctx.con, outputs.run_files(ctx.folder), run_id=ctx.run_id,
                                    kind=ctx.config.type, cutoffs=ctx.config.buckets), ctx.folder)
    with ctx.stage("outcomes"):
        track_outcomes(ctx, inputs, windows)


def scoring_features(ctx: RunContext, inputs: RunInputs, windows: RunWindows,
                     plan: FeaturePlan, population: ir.Table) -> Path:
    """The scored profiles' features at the cutoff, written to the run's features file."""
    features = build_features(plan, inputs.events, inputs.profiles, population,
                              anchor=windows.cutoff)
    return outputs.write_features(ctx, features)


def plan_for_run(ctx: RunContext, inputs: RunInputs, windows: RunWindows) -> FeaturePlan:
    """Decide the features from history before the cutoff, within what every anchor can see."""
    history = inputs.events.filter(inputs.events[TIMESTAMP] < windows.cutoff)
    plan = plan_features(history, inputs.profiles, as_of=windows.cutoff,
                         custom_events=inputs.custom_events,
                         profile_attributes=ctx.config.profile_attributes,
                         history_days=windows.feature_reach_days,
                         calendar=windows.seasonal_anchor is not None)
    ctx.notes.extend(_snapshot_notes(ctx, inputs))
    ctx.notes.extend(f"Custom event '{name}' selects exactly the events of type {kind}: its "
                     "features stand for both (the event type's own copies are left out)."
                     for kind, name in plan.merged)
    return plan


def _snapshot_notes(ctx: RunContext, inputs: RunInputs) -> list[str]:
    """Say which attributes a snapshot cannot describe the past with, and how to include them."""
    profiles, cfg = inputs.profiles, ctx.config
    if profiles is None or profiles.shape != "snapshot":
        return []
    notes = []
    asked = cfg.profile_attributes if cfg.profile_attributes is not None else profiles.attributes
    left_out = [c for c in asked if not profiles.describes_the_past(c)]
    if left_out:
        notes.append(
            f"Profile attributes {', '.join(left_out)} are left out of the model: profiles "
            f"dataset '{cfg.datasets.profiles}' is a snapshot (one row per profile), so their "
            "values at the past training windows are unknown, and today's values would carry "
            "what customers did since. Declare the ones that never change in static_attributes "
            f"(e.g. static_attributes: [{left_out[0]}]); for ones that change, ingest a history "
            "(one row per profile per change, stamped updated_at).")
    conditioned = sorted({c for cond in inputs.population.profile_conditions
                          for c in cond.columns if not profiles.describes_the_past(c)})
    if conditioned:
        notes.append(
            f"population.profile_conditions read {', '.join(conditioned)} from a snapshot: at "
            "the past training windows, today's values decide who is in the population.")
    return notes


def scoring_population(ctx: RunContext, inputs: RunInputs, windows: RunWindows) -> ir.Table:
    """Who is scored at the cutoff, computed once (cached in the engine) for every later use."""
    population = eligible(inputs.events, inputs.profiles, inputs.population,
                          windows.cutoff).cache()
    scored = int(population.count().execute())
    ctx.counts["scored_profiles"] = scored
    if scored == 0:
        raise RunError(405, f"Nobody is eligible to score on {windows.as_of}: no profile meets "
                            f"the population rule on that date ({ctx.config.population.in_words()})"
                            " Make sure the dataset is updated.")
    return population


def training_set(
    ctx: RunContext, inputs: RunInputs, windows: RunWindows, plan: FeaturePlan
) -> TrainingSet:
    labelled_anchors = [  # cached: counted, then sampled and featurised, from one scan each
        _outcome(ctx, inputs, eligible(inputs.events, inputs.profiles, inputs.population, a),
                 a).cache()
        for a in windows.anchors
    ]
    per_anchor = [_label_counts(t) for t in labelled_anchors]
    _check_requirements(ctx, windows, per_anchor)
    _record_goal_rates(ctx, windows, per_anchor)
    total = sum(n for n, _ in per_anchor)
    rate = min(1.0, ctx.config.max_training_rows / total)
    if rate < 1.0:
        ctx.notes.append(
            f"Training rows capped at {ctx.config.max_training_rows:,}: sampled {rate:.1%} of "
            f"profiles ({total:,} rows before sampling), positives and negatives alike.")
    frames, labels, holdout, ids = [], [], [], []
    for i, (anchor, table) in enumerate(zip(windows.anchors, labelled_anchors)):
        ctx.report("features per anchor", i, len(windows.anchors))
        share = max(rate, min(1.0, HOLDOUT_MIN_ROWS / max(per_anchor[0][0], 1))) if i == 0 \
            else rate  # the holdout keeps enough rows to measure and calibrate on
        frame, y = _anchor_frame(plan, inputs, _sample(table, share), anchor)
        ids.append(frame.pop(PROFILE_ID).to_numpy(dtype=object))
        frames.append(frame)
        labels.append(y)
        holdout.append(np.full(len(y), i == 0))
    data = TrainingSet(pd.concat(frames, ignore_index=True), np.concatenate(labels),
                       np.concatenate(holdout), np.concatenate(ids))
    if len(windows.anchors) == 1:
        data = _split_single_anchor(ctx, data)
    _check_holdout(ctx, windows, data)
    ctx.counts["training_rows"] = int((~data.holdout).sum())
    ctx.counts["holdout_rows"] = int(data.holdout.sum())
    ctx.counts["features"] = len(plan.features)
    return data


def _outcome(ctx: RunContext, inputs: RunInputs, population: ir.Table,
             anchor: datetime) -> ir.Table:
    """The population's ``label`` at ``anchor``: the goal (0/1), or net spend for clv."""
    if ctx.config.type == "clv":
        return valued(population, inputs.events, inputs.goal, anchor, ctx.config.value_column)
    return labelled(population, inputs.events, inputs.goal, anchor)


def _label_counts(table: ir.Table) -> tuple[int, int]:
    """Rows, and positives (profiles that met the goal; for clv, that spent)."""
    row = table.aggregate(n=table.count(),
                          positives=(table[LABEL] > 0).sum()).execute().iloc[0]
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


def _check_holdout(ctx: RunContext, windows: RunWindows, data: TrainingSet) -> None:
    """The holdout needs both outcomes: every metric and the calibration are measured on it."""
    y = data.labels[data.holdout]
    positives, rows = int((y > 0).sum()), int(y.size)
    ctx.counts.update({"holdout_positives": positives, "holdout_negatives": rows - positives})
    if 0 < positives < rows:
        return
    which = "positive" if positives else "negative"
    where = (f"the holdout window (from {windows.anchors[0]:%Y-%m-%d}, the newest)"
             if len(windows.anchors) > 1 else "the holdout (a random share of the only window)")
    outcome = (f"Every one of the {rows:,} examples in {where} is {which}"
               if ctx.config.type != "clv" else
               f"In {where} nobody spent anything" if not positives else
               f"In {where} every one of the {rows:,} profiles spent")
    raise RunError(413, f"{outcome}: the model cannot be measured or calibrated. Change the "
                        "goal or the population, or pick another --as-of.",
                   detail={"holdout_rows": rows, "holdout_positives": positives})


def _record_goal_rates(
    ctx: RunContext, windows: RunWindows, per_anchor: list[tuple[int, int]]
) -> None:
    """The goal rate of each training window, and a note when they differ widely."""
    rates = [{"anchor": a.isoformat(), "rows": n, "positives": p, "rate": p / n if n else None}
             for a, (n, p) in zip(windows.anchors, per_anchor)]
    ctx.metrics["training_windows"] = rates
    known = [r for r in rates if r["rate"] is not None]
    if len(known) < 2:
        return
    low = min(known, key=lambda r: r["rate"])
    high = max(known, key=lambda r: r["rate"])
    if high["rate"] < RATE_SPREAD_RATIO * low["rate"]:
        return
    season = ("" if windows.seasonal_anchor else " With 13 months of history the window a year "
              "before the score date would be used too, so the model could learn the season.")
    ctx.notes.append(
        f"Goal rates differ widely between training windows: {low['rate']:.1%} (from "
        f"{low['anchor'][:10]}) to {high['rate']:.1%} (from {high['anchor'][:10]}); the holdout "
        f"window had {known[0]['rate']:.1%}. Probabilities are levelled on the holdout window: "
        "if the goal is seasonal, compare the expected count with what happens." + season)


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
    label = frame.pop(LABEL)
    y = label.to_numpy(dtype=np.int8 if label.dtype.kind in "biu" else np.float64)
    return frame, y


def _split_single_anchor(ctx: RunContext, data: TrainingSet) -> TrainingSet:
    rng = np.random.default_rng(0)
    holdout = rng.random(len(data.labels)) < HOLDOUT_SHARE_SINGLE_ANCHOR
    ctx.notes.append("Only one training window fits the history, so the holdout is a random "
                     f"{HOLDOUT_SHARE_SINGLE_ANCHOR:.0%} of its profiles instead of a later "
                     "window.")
    return replace(data, holdout=holdout)


def screen_attributes(
    ctx: RunContext, inputs: RunInputs, windows: RunWindows, plan: FeaturePlan,
    data: TrainingSet, population: ir.Table,
) -> tuple[FeaturePlan, TrainingSet]:
    """Leave out profile attributes that could only know the future, and say why.

    An attribute goes when, on its own, its value or its missingness separates the classes at
    the training windows (single-feature AUC ≥ ``LEAK_AUC``), or when it is missing much more
    often at the training windows than at the score date (its values were written after them).
    """
    attributes = [f for f in plan.features if f.family == "attribute"]
    if not attributes:
        return plan, data
    missing_now = _missing_at_cutoff(inputs, windows, population, attributes)
    dropped = []
    for feature in attributes:
        column = data.features[feature.id]
        auc = separation_auc(column, data.labels > 0)
        missing_then = float(column.isna().mean())
        if auc >= LEAK_AUC:
            dropped.append(feature.source)
            ctx.notes.append(
                f"Profile attribute '{feature.source}' is left out: on its own it predicts the "
                f"goal with AUC {auc:.3f} at the training windows (its value or whether it is "
                "missing), so it is most likely set by the goal itself or written after it.")
        elif missing_then - missing_now[feature.source] > MISSING_SKEW:
            dropped.append(feature.source)
            ctx.notes.append(
                f"Profile attribute '{feature.source}' is left out: it is missing for "
                f"{missing_then:.0%} of the training examples but {missing_now[feature.source]:.0%}"
                " of the profiles scored now, so its values were mostly written after the "
                "training windows and its missingness would stand for the future.")
    if not dropped:
        return plan, data
    kept = replace(plan, attributes=tuple(a for a in plan.attributes if a.column not in dropped))
    kept = replace(kept, features=tuple(s.feature for s in feature_specs(kept)))
    gone = [f.id for f in plan.features if f.id not in set(kept.ids)]
    ctx.counts["features"] = len(kept.features)
    return kept, data.without(gone)


def _missing_at_cutoff(
    inputs: RunInputs, windows: RunWindows, population: ir.Table, attributes: list
) -> dict[str, float]:
    """Share of the scored profiles with each attribute missing at the cutoff."""
    current = inputs.profiles.at(windows.cutoff)
    joined = population.left_join(current, PROFILE_ID)
    counts = joined.aggregate(
        _n=joined.count(),
        **{f"m{i}": joined[f.source].isnull().sum() for i, f in enumerate(attributes)},
    ).execute().iloc[0]
    rows = max(int(counts["_n"]), 1)
    return {f.source: int(counts[f"m{i}"]) / rows for i, f in enumerate(attributes)}


def _expected_versus_last_window(ctx: RunContext, probability: np.ndarray) -> None:
    """Expected goal count over the scored profiles next to the holdout window's actual count."""
    expected = float(probability.sum())
    last = ctx.metrics.get("training_windows", [{}])[0]
    ctx.metrics["expected"] = {
        "scored_profiles": int(probability.size),
        "expected_goal_profiles": expected,
        "expected_rate": expected / max(int(probability.size), 1),
        "last_window": {"anchor": last.get("anchor"), "rows": last.get("rows"),
                        "goal_profiles": last.get("positives"), "rate": last.get("rate")},
    }
