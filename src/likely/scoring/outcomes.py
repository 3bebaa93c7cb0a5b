"""Outcome tracking: once a past run's outcome window has passed, what actually happened.

For a clv instance the same, in value: predicted against actual spend per value bucket, and the
ranking metrics of the holdout (normalised Gini, ...) on what was really spent.

A run predicts the goal in the W days after its score date. When a later run's data reaches past
that window, the later run measures the earlier one: per bucket, the expected rate (mean
probability) against the actual rate, and the earlier run's AUC and calibration on outcomes no
model was fitted on. The result is written once, as ``outcome.json`` in the earlier run's folder
(an atomic add; nothing the run wrote changes), and is what the performance summary shows.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from likely.data.schema import PROFILE_ID
from likely.engine import read_parquet
from likely.errors import DataError
from likely.model.evaluate import evaluate
from likely.model.labels import LABEL, GoalRule, labelled, valued
from likely.scoring import records
from likely.scoring.outputs import SCORES_FILE
from likely.scoring.scores import BUCKETS
from likely.storage import write_json

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

    from likely.scoring.run import RunContext, RunInputs
    from likely.scoring.windows import RunWindows

OUTCOME_FILE = "outcome.json"


def window_end(score_date: str | date, window_days: int) -> datetime:
    """The instant a run's outcome window closes (its cutoff plus W days)."""
    day = date.fromisoformat(score_date) if isinstance(score_date, str) else score_date
    return datetime.combine(day + timedelta(days=1), time()) + timedelta(days=window_days)


def track_outcomes(ctx: RunContext, inputs: RunInputs, windows: RunWindows) -> list[str]:
    """Measure every earlier successful run whose window closed by this run's cutoff; returns
    the run ids measured."""
    measured = []
    for run in records.successful_runs(ctx.catalog, ctx.instance.id):
        folder = records.run_dir(ctx.root, ctx.instance.id, run.id)
        if (folder / OUTCOME_FILE).exists() or not (folder / SCORES_FILE).exists():
            continue
        if window_end(run.as_of, inputs.goal.window_days) > windows.cutoff:
            continue
        if ctx.config.type == "clv":
            outcome = measure_value_outcome(ctx.con, folder / SCORES_FILE, inputs.events,
                                            inputs.goal, ctx.config.value_column, run.as_of)
        else:
            outcome = measure_outcome(ctx.con, folder / SCORES_FILE, inputs.events, inputs.goal,
                                      run.as_of)
        write_json({"run_id": run.id, "measured_by": ctx.run_id, **outcome},
                   folder / OUTCOME_FILE)
        measured.append(run.id)
    if measured:
        ctx.counts["outcomes_measured"] = len(measured)
    return measured


def measure_outcome(con: BaseBackend, scores_path: Path, events: ir.Table, goal: GoalRule,
                    score_date: str) -> dict[str, Any]:
    """Expected vs actual goal rate per bucket for the profiles one run scored."""
    anchor = window_end(score_date, 0)
    scores = read_parquet(con, [scores_path]).select(PROFILE_ID, "bucket", "probability")
    outcome = labelled(scores.select(PROFILE_ID), events, goal, anchor)
    joined = scores.join(outcome, PROFILE_ID)
    frame = joined.select("bucket", "probability", LABEL).to_pyarrow()
    bucket = np.asarray(frame.column("bucket").to_numpy(zero_copy_only=False), dtype=object)
    p = frame.column("probability").to_numpy()
    y = frame.column(LABEL).to_numpy().astype(np.int8)
    per_bucket = []
    for name in reversed(BUCKETS):
        mask = bucket == name
        n = int(mask.sum())
        per_bucket.append({"bucket": name, "profiles": n,
                           "expected_rate": float(p[mask].mean()) if n else None,
                           "actual_rate": float(y[mask].mean()) if n else None,
                           "goal_profiles": int(y[mask].sum())})
    result: dict[str, Any] = {
        "score_date": score_date, "window_days": goal.window_days,
        "window_end": window_end(score_date, goal.window_days).isoformat(),
        "profiles": int(p.size), "expected_rate": float(p.mean()) if p.size else None,
        "actual_rate": float(y.mean()) if y.size else None, "buckets": per_bucket,
    }
    try:
        metrics = evaluate(y, p)
        result.update(auc=metrics.auc, ece=metrics.ece, calibration=metrics.calibration)
    except DataError as exc:  # one class only, or too few rows: rates still tell the story
        result.update(auc=None, ece=None, calibration=[], note=exc.message)
    return result


def measure_value_outcome(con: BaseBackend, scores_path: Path, events: ir.Table, goal: GoalRule,
                          column: str, score_date: str) -> dict[str, Any]:
    """Predicted against actual spend per value bucket for the profiles one clv run scored,
    and how well the predictions ranked what was spent (nothing was fitted on it)."""
    from likely.model.clv_metrics import value_metrics

    anchor = window_end(score_date, 0)
    scores = read_parquet(con, [scores_path]).select(PROFILE_ID, "bucket", "predicted_value")
    spent = valued(scores.select(PROFILE_ID), events, goal, anchor, column)
    frame = scores.join(spent, PROFILE_ID).select("bucket", "predicted_value", LABEL).to_pyarrow()
    bucket = np.asarray(frame.column("bucket").to_numpy(zero_copy_only=False), dtype=object)
    predicted = frame.column("predicted_value").to_numpy()
    actual = frame.column(LABEL).to_numpy()
    per_bucket = []
    for name in reversed(BUCKETS):
        mask = bucket == name
        n = int(mask.sum())
        per_bucket.append({"bucket": name, "profiles": n,
                           "expected_value": float(predicted[mask].mean()) if n else None,
                           "actual_value": float(actual[mask].mean()) if n else None,
                           "expected_total": float(predicted[mask].sum()),
                           "actual_total": float(actual[mask].sum()),
                           "buyers": int((actual[mask] > 0).sum())})
    result: dict[str, Any] = {
        "score_date": score_date, "window_days": goal.window_days, "measure": "value",
        "window_end": window_end(score_date, goal.window_days).isoformat(),
        "profiles": int(predicted.size), "buyers": int((actual > 0).sum()),
        "expected_total": float(predicted.sum()), "actual_total": float(actual.sum()),
        "buckets": per_bucket,
    }
    try:
        result.update(value_metrics(actual, predicted))
    except (DataError, ValueError) as exc:  # nobody spent: totals still tell the story
        result.update(gini=None, note=getattr(exc, "message", str(exc)))
    return result


def read_outcome(folder: Path) -> dict[str, Any] | None:
    path = folder / OUTCOME_FILE
    return json.loads(path.read_text()) if path.exists() else None
