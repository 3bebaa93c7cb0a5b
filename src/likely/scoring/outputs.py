"""Writing a run's outputs: scores (event and profile format), reason codes, global factors.

Scoring streams the feature table in Arrow batches, so memory stays bounded by the batch, not by
the population. All files go into the run's own folder (see :mod:`likely.scoring.records`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from likely.data.schema import PROFILE_ID
from likely.engine import read_parquet
from likely.features import FeaturePlan, arrow_frame
from likely.model.explain import ShapAccumulator, contributions
from likely.scoring import records
from likely.scoring.scores import (
    BUCKETS,
    FACTOR_TYPE,
    TOP_FACTORS,
    Behaviours,
    ImportanceScale,
    Reasons,
    buckets,
    percentiles,
    reason_codes,
    relative_scores,
    top_reasons,
)
from likely.scoring.summary import RunFiles, value_distributions
from likely.scoring.windows import RunWindows
from likely.storage import write_expr, write_json, write_table

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from likely.model.train import PropensityModel, TreeModel
    from likely.model.value import ValueModels
    from likely.scoring.run import RunContext

BATCH_ROWS = 100_000
TOP_GLOBAL = 10

SCORES_FILE = "scores.parquet"
PROFILE_SCORES_FILE = "profile_scores.parquet"
FEATURES_FILE = "features.parquet"
FACTORS_FILE = "factors.json"


def write_features(ctx: RunContext, features: ir.Table) -> Path:
    return write_expr(features.order_by(PROFILE_ID), ctx.folder / FEATURES_FILE)


def score_and_explain(
    ctx: RunContext, plan: FeaturePlan, model: PropensityModel, model_id: str,
    windows: RunWindows,
) -> pa.Table:
    """Predict and explain every scored profile, write scores, profile table, factors; return the
    scores table."""
    batches = explain_batches(ctx, plan, model)
    probability = model.probability_from_raw(batches.raw)
    score, reference = relative_scores(probability)
    ctx.metrics["score_reference_probability"] = reference
    columns = {"probability": pa.array(probability, pa.float64()),
               "score": pa.array(score, pa.float64()),
               "percentile": pa.array(percentiles(batches.raw), pa.int16()),
               "bucket": pa.array(buckets(score, ctx.config.buckets), pa.string())}
    return _write_outputs(ctx, plan, batches, columns, model_id, windows)


def score_and_explain_value(
    ctx: RunContext, plan: FeaturePlan, models: ValueModels, model_id: str,
    windows: RunWindows, baseline: dict[str, np.ndarray],
) -> pa.Table:
    """A clv run's scores: predicted value from the chosen model, the baseline's expected
    purchases and probability active, value percentile and bucket, the trees' reasons."""
    from likely.model.value import value_from_raw

    batches = explain_batches(ctx, plan, models.trees, explain=models.chosen == "trees")
    value = (value_from_raw(batches.raw) if models.chosen == "trees"
             else baseline["predicted_value"])
    percentile = percentiles(value)
    score = value_scores(value)
    bucket = buckets(score, ctx.config.buckets)
    active = pa.array(baseline["probability_active"], pa.float64(),
                      from_pandas=True)  # NaN (never bought) is null
    columns = {"predicted_value": pa.array(value, pa.float64()),
               "value_percentile": pa.array(percentile, pa.int16()),
               "value_bucket": pa.array(value_buckets(bucket, ctx.config.buckets), pa.string()),
               "expected_purchases": pa.array(baseline["expected_purchases"], pa.float64()),
               "probability_active": active, "probability": active,
               "score": pa.array(score, pa.float64()),
               "percentile": pa.array(percentile, pa.int16()),
               "bucket": pa.array(bucket, pa.string())}
    if models.chosen != "trees":
        ctx.notes.append("Reasons are left out: the BG/NBD × Gamma-Gamma baseline was chosen, "
                         "and it reads only purchase counts, timing and spend.")
    return _write_outputs(ctx, plan, batches, columns, model_id, windows)


@dataclass
class Batches:
    """What the streaming pass over the features collects: ids, raw outputs, reasons."""

    ids: list
    raw: np.ndarray
    reasons: pa.Array | None
    weights: BehaviourWeights


def explain_batches(ctx: RunContext, plan: FeaturePlan, model: TreeModel, *,
                    explain: bool = True) -> Batches:
    """Predict (raw) and explain every scored profile, batch by batch.

    Importance labels need the run's yardstick (the strongest behaviour's mean |contribution|),
    known only after the last batch: batches keep their top reasons as small arrays, labelled
    together at the end.
    """
    behaviours = Behaviours.from_features(plan.features)
    ids, raws, reasons = [], [], []
    weights = BehaviourWeights(behaviours)
    source = pq.ParquetFile(ctx.folder / FEATURES_FILE)
    total, done = source.metadata.num_rows, 0
    with ctx.stage("explanations"):
        for batch in source.iter_batches(batch_size=BATCH_ROWS):
            frame = arrow_frame(batch, plan)
            ids.append(batch.column(PROFILE_ID))
            raws.append(model.predict_raw(frame))
            if explain:
                try:
                    contrib = contributions(model, frame)[:, :-1]
                    weights.update(contrib)
                    values = [frame[c].to_numpy() for c in behaviours.ids]  # no copies
                    reasons.append(top_reasons(contrib, values, behaviours))
                except Exception as exc:  # scores stay useful without reasons (code 414)
                    explain = False
                    ctx.notes.append(f"[414] Explanations could not be computed: {exc}")
            done += batch.num_rows
            ctx.report("scoring and explaining", done, total)
    codes = None
    if explain:
        scale = ImportanceScale.from_mean_abs(weights.behaviour_mean_abs())
        ctx.metrics["importance_reference"] = scale.reference
        codes = reason_codes(Reasons.concat(reasons), behaviours, scale)
    raw = np.concatenate(raws) if raws else np.zeros(0)
    return Batches(ids, raw, codes, weights)


def _write_outputs(ctx: RunContext, plan: FeaturePlan, batches: Batches,
                   columns: dict[str, pa.Array], model_id: str, windows: RunWindows) -> pa.Table:
    """scores.parquet, profile_scores.parquet and factors.json; returns the scores table."""
    table = _scores_table(ctx, batches, columns, model_id, windows)
    write_table(table, ctx.folder / SCORES_FILE)
    _write_profile_scores(ctx, windows)
    write_json(global_factors(ctx, plan, batches.weights), ctx.folder / FACTORS_FILE)
    ctx.counts["buckets"] = {b: int((table["bucket"].to_numpy(zero_copy_only=False) == b).sum())
                             for b in BUCKETS}
    return table


def value_scores(value: np.ndarray) -> np.ndarray:
    """0-100: the share of the scored population predicted to be worth less (ties share one)."""
    n = len(value)
    if n == 0:
        return np.zeros(0)
    below = np.searchsorted(np.sort(value), value, side="left")
    return (100.0 * below / n).round(2)


def value_buckets(bucket: np.ndarray, cutoffs: tuple[float, float]) -> np.ndarray:
    """The value bucket in words: "top 10%" / "next 30%" / "rest" for cut-offs (60, 90)."""
    low, high = cutoffs
    words = {"High": f"top {100 - high:g}%", "Medium": f"next {high - low:g}%", "Low": "rest"}
    return np.asarray([words[b] for b in bucket], dtype=object)


class BehaviourWeights:
    """Running sums of |contribution| per feature (a :class:`ShapAccumulator`) and of |summed
    contribution| per behaviour over the scored profiles: global weights and the importance
    yardstick, in one streaming pass. Zeros until a batch is added (explanations may fail)."""

    def __init__(self, behaviours: Behaviours) -> None:
        self.behaviours = behaviours
        self.features = ShapAccumulator(len(behaviours.ids))
        self.behaviour_abs = np.zeros(len(behaviours))

    def update(self, contrib: np.ndarray) -> None:
        """Add a ``(rows, features)`` contribution matrix (no base column)."""
        self.features.update(contrib)
        self.behaviour_abs += np.abs(self.behaviours.sums(contrib)).sum(axis=0)

    def feature_mean_abs(self) -> np.ndarray:
        return self.features.sum_abs / max(self.features.rows, 1)

    def behaviour_mean_abs(self) -> np.ndarray:
        return self.behaviour_abs / max(self.features.rows, 1)


def _scores_table(ctx: RunContext, batches: Batches, columns: dict[str, pa.Array],
                  model_id: str, windows: RunWindows) -> pa.Table:
    n = len(batches.raw)
    factors = (batches.reasons if batches.reasons is not None
               else pa.nulls(n, pa.list_(FACTOR_TYPE)))
    return pa.table({
        PROFILE_ID: pa.concat_arrays(batches.ids) if batches.ids else pa.array([], pa.string()),
        "score_date": pa.array([windows.as_of] * n, pa.date32()),
        **columns,
        "influential_factors": factors,
        "model_id": pa.array([model_id] * n, pa.string()),
        "run_id": pa.array([ctx.run_id] * n, pa.string()),
        "instance_id": pa.array([ctx.instance.id] * n, pa.string()),
    })


def _write_profile_scores(ctx: RunContext, windows: RunWindows) -> None:
    """Latest score per profile: this run's scores over those carried by the previous profile
    table (the newest successful run at or before this score date, re-runs of it included),
    so profiles not scored today keep their last score."""
    import ibis

    new = read_parquet(ctx.con, [ctx.folder / SCORES_FILE])
    as_of = windows.as_of.isoformat()
    earlier = [r for r in records.successful_runs(ctx.catalog, ctx.instance.id) if r.as_of <= as_of]
    table = new
    old_path = (records.run_dir(ctx.root, ctx.instance.id, earlier[-1].id) / PROFILE_SCORES_FILE
                if earlier else None)
    if old_path is not None and old_path.exists():
        old = read_parquet(ctx.con, [old_path])
        old = old.anti_join(new, PROFILE_ID)
        old = old.filter(old.score_date < windows.as_of)
        # tables written before reasons gained fields: the new fields read null there
        old = old.mutate(influential_factors=old.influential_factors.cast(
            new.schema()["influential_factors"]))
        table = ibis.union(new, old.select(*new.columns))
    write_expr(table.order_by(PROFILE_ID), ctx.folder / PROFILE_SCORES_FILE)


def global_factors(ctx: RunContext, plan: FeaturePlan, weights: BehaviourWeights,
                   ) -> dict[str, Any]:
    """Mean |SHAP| per factor over the scored population, and for the top factors the
    distribution of their values in each bucket (histogram, category shares, coverage %);
    ``sources`` weighs each behaviour as its reasons do (mean |Σφ| of its features)."""
    mean_abs = weights.feature_mean_abs()
    order = np.argsort(-mean_abs, kind="stable")
    factors = [{"factor": plan.features[i].id, "name": plan.features[i].name,
                "kind": plan.features[i].kind, "mean_abs_shap": float(mean_abs[i])}
               for i in order]
    features = read_parquet(ctx.con, [ctx.folder / FEATURES_FILE])
    scores = read_parquet(ctx.con, [ctx.folder / SCORES_FILE]).select(PROFILE_ID, "bucket")
    joined = features.join(scores, PROFILE_ID)
    top = factors[:TOP_GLOBAL]
    found = value_distributions(joined, {e["factor"]: e["kind"] for e in top})
    for entry in top:
        entry["by_bucket"] = found[entry["factor"]]
    return {"generated_for": ctx.run_id, "factors": factors,
            "sources": behaviour_weights(weights.behaviours, weights.behaviour_mean_abs(),
                                         mean_abs)}


def behaviour_weights(
    behaviours: Behaviours, behaviour_mean_abs: np.ndarray, feature_mean_abs: np.ndarray,
) -> list[dict[str, Any]]:
    """Each behaviour's weight: the mean over scored profiles of |sum of its features' SHAP|.

    Summing each feature's mean |SHAP| instead would overstate a behaviour whose correlated
    features (counts, recency, active days) push in opposite directions for one profile.
    """
    total = float(behaviour_mean_abs.sum())
    entries = []
    for b in np.argsort(-behaviour_mean_abs, kind="stable"):
        members = behaviours.members(int(b))
        strongest = members[np.argsort(-feature_mean_abs[members], kind="stable")]
        weight = float(behaviour_mean_abs[b])
        entries.append({
            "source": behaviours.sources[b], "name": behaviours.words[b],
            "mean_abs_shap": weight, "factors": int(members.size),
            "share_pct": round(100 * weight / total, 2) if total > 0 else 0.0,
            "top_factors": [behaviours.ids[i] for i in strongest[:TOP_FACTORS]],
        })
    return entries


def run_files(folder: Path) -> RunFiles:
    return RunFiles(folder, folder / SCORES_FILE, folder / FEATURES_FILE, folder / FACTORS_FILE)


def current_scores_path(root: Path, instance_id: str, run_id: str) -> Path:
    return records.run_dir(root, instance_id, run_id) / PROFILE_SCORES_FILE
