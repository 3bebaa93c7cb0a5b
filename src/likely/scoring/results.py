"""Reading what runs wrote: current scores, score history, one profile's reasons, exports.

The current outputs of an instance are those of its newest successful run (by score date);
readers find them through the catalog, never by listing folders, so a run in progress or a
failed run is never read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis

from likely.catalog import Catalog
from likely.data.schema import PROFILE_ID
from likely.engine import read_parquet
from likely.errors import ConfigError, NotFoundError
from likely.schedules import describe as describe_schedule
from likely.scoring import records
from likely.scoring.instances import Instance
from likely.scoring.outcomes import read_outcome, window_end
from likely.scoring.outputs import FACTORS_FILE, PROFILE_SCORES_FILE, SCORES_FILE, run_files
from likely.scoring.summary import MEASURES, build_summary, read_summary, target, write_summary
from likely.storage import export_expr

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pyarrow as pa
    from ibis.backends import BaseBackend



def find_run(catalog: Catalog, instance: Instance, run_id: str | None) -> records.RunRecord:
    if run_id:
        run = records.get_run(catalog, run_id)
        if run.instance_id != instance.id:
            raise NotFoundError(f"Run '{run_id}' is not a run of instance '{instance.name}'.")
        return run
    runs = records.list_runs(catalog, instance.id)
    if not runs:
        raise NotFoundError(f"Instance '{instance.name}' has no runs yet. Start one with "
                            f"`likely run {instance.name}`.")
    return runs[0]


def current_run(catalog: Catalog, instance: Instance) -> records.RunRecord:
    run = records.latest_success(catalog, instance.id)
    if run is None:
        raise NotFoundError(f"Instance '{instance.name}' has no successful run yet, so no "
                            f"scores. Run it with `likely run {instance.name}`.")
    return run


def current_table(
    catalog: Catalog, con: BaseBackend, root: Path, instance: Instance
) -> ir.Table:
    run = current_run(catalog, instance)
    return read_parquet(con, [records.run_dir(root, instance.id, run.id) / PROFILE_SCORES_FILE])


def latest_scored(
    catalog: Catalog, con: BaseBackend, root: Path, instance: Instance
) -> ir.Table:
    """The profiles the current run scored (not those carried from older runs): what its
    buckets count and what a segment over the instance's latest scores selects from."""
    run = current_run(catalog, instance)
    return read_parquet(con, [records.run_dir(root, instance.id, run.id) / SCORES_FILE])


def scores(
    catalog: Catalog, con: BaseBackend, root: Path, instance: Instance, *,
    profile_id: str | None = None, top: int | None = None,
) -> pa.Table:
    table = current_table(catalog, con, root, instance)
    if profile_id is not None:
        table = table.filter(table[PROFILE_ID] == profile_id)
    # a clv run's probability is that of being active: its customers rank by predicted value
    ranked = MEASURES.get(instance.config.type, "probability")
    table = table.order_by([ibis.desc(ranked), PROFILE_ID])
    if top is not None:
        table = table.limit(top)
    return table.to_pyarrow()


def history(catalog: Catalog, con: BaseBackend, root: Path, instance: Instance) -> ir.Table:
    runs = records.successful_runs(catalog, instance.id)
    if not runs:
        current_run(catalog, instance)  # raises the "no successful run" error
    return read_parquet(con, [records.run_dir(root, instance.id, r.id) / SCORES_FILE
                              for r in runs])


def explain_profile(
    catalog: Catalog, con: BaseBackend, root: Path, instance: Instance, profile_id: str
) -> dict[str, Any]:
    current = scores(catalog, con, root, instance, profile_id=profile_id).to_pylist()
    if not current:
        raise NotFoundError(f"Profile '{profile_id}' has no score in instance "
                            f"'{instance.name}'. It may not have been eligible.")
    past = history(catalog, con, root, instance)
    past = past.filter(past[PROFILE_ID] == profile_id).order_by("score_date")
    timeline = past.select("score_date", "score", "percentile", "bucket", "run_id")
    return {"instance": instance.name, "profile": current[0],
            "history": timeline.to_pyarrow().to_pylist()}


def factors(catalog: Catalog, root: Path, instance: Instance) -> dict[str, Any]:
    run = current_run(catalog, instance)
    path = records.run_dir(root, instance.id, run.id) / FACTORS_FILE
    return json.loads(path.read_text())


def export(
    catalog: Catalog, con: BaseBackend, root: Path, instance: Instance, out: Path, fmt: str
) -> Path:
    return export_expr(current_table(catalog, con, root, instance), out, fmt)


def successful_run(catalog: Catalog, root: Path, instance: Instance, run_id: str | None,
                   missing: str) -> tuple[records.RunRecord, Path]:
    """A successful run (default: the current one) and its folder; any other run is refused,
    saying what it lacks (``missing``, e.g. "has no scores to summarise")."""
    run = find_run(catalog, instance, run_id) if run_id else current_run(catalog, instance)
    if run.status != records.SUCCESS:
        raise NotFoundError(f"Run '{run.id}' of instance '{instance.name}' has status "
                            f"'{run.status}', so it {missing}.")
    return run, records.run_dir(root, instance.id, run.id)


def run_summary(
    catalog: Catalog, con: BaseBackend, root: Path, instance: Instance, run_id: str | None = None
) -> dict[str, Any]:
    """The dashboard's summary of a successful run (default: the current one).

    Runs written before summaries existed get theirs built once, on first request, and kept.
    """
    run, folder = successful_run(catalog, root, instance, run_id, "has no scores to summarise")
    summary = read_summary(folder)
    if summary is None:
        summary = build_summary(con, run_files(folder), run_id=run.id, kind=instance.config.type,
                                cutoffs=instance.config.buckets)
        write_summary(summary, folder)
    return {**summary, "instance": instance.name, "score_date": run.as_of}


def targeting(
    catalog: Catalog, con: BaseBackend, root: Path, instance: Instance, *,
    size: int | None = None, threshold: float | None = None,
) -> dict[str, Any]:
    """What targeting the top ``size`` profiles (or everyone scoring ≥ ``threshold``) buys."""
    if (size is None) == (threshold is None):
        raise ConfigError("Give an audience size or a score threshold (one of them).")
    if threshold is not None and not 0 <= threshold <= 100:
        raise ConfigError(f"The score threshold must be between 0 and 100, not {threshold}.")
    if size is not None and size < 0:
        raise ConfigError(f"The audience size must be 0 or more, not {size}.")
    summary = run_summary(catalog, con, root, instance)
    return {"instance": instance.name, "score_date": summary["score_date"],
            "run_id": summary["run_id"],
            **target(summary["targeting"], size=size, threshold=threshold)}


def evaluation(catalog: Catalog, instance: Instance, run_id: str | None = None) -> dict[str, Any]:
    """The model's quality as measured on its holdout, graded in words, with the run's
    training windows and notes."""
    from likely.model.evaluate import grade

    run = find_run(catalog, instance, run_id) if run_id else current_run(catalog, instance)
    holdout = run.metrics.get("holdout") or {}
    return {"instance": instance.name, "type": instance.config.type, "run_id": run.id,
            "score_date": run.as_of, "status": run.status, "grade": grade(holdout.get("auc")),
            "holdout": holdout, "value_models": run.metrics.get("value_models"),
            "training_windows": run.metrics.get("training_windows", []),
            "expected": run.metrics.get("expected"), "notes": run.notes,
            "optimistic": holdout.get("out_of_time") is False}


def performance(catalog: Catalog, root: Path, instance: Instance) -> dict[str, Any]:
    """Expected against actual goal rates (clv: predicted against actual spend) of every past
    run whose outcome window has passed."""
    window = instance.config.goal.window_days
    measured, pending = [], []
    for run in reversed(records.successful_runs(catalog, instance.id)):
        outcome = read_outcome(records.run_dir(root, instance.id, run.id))
        closes = window_end(run.as_of, window).date().isoformat()
        if outcome is not None:
            measured.append(outcome)
        else:
            pending.append({"run_id": run.id, "score_date": run.as_of, "window_closes": closes})
    return {"instance": instance.name, "type": instance.config.type, "window_days": window,
            "runs": measured, "pending": pending}


def overview(catalog: Catalog, instance: Instance, year: int) -> dict[str, Any]:
    """An instance's line in the list: status of its newest run, what it scored."""
    runs = records.list_runs(catalog, instance.id)
    latest = runs[0] if runs else None
    current = records.latest_success(catalog, instance.id)
    this_year = [r for r in runs
                 if r.status == records.SUCCESS and (r.finished_at or "")[:4] == str(year)]
    scored_this_year = sum(int(r.counts.get("scored_profiles", 0)) for r in this_year)
    return {
        "name": instance.name, "type": instance.config.type,
        "description": instance.config.description,
        "goal": instance.config.goal_in_words(),
        "population": instance.config.population.in_words(),
        "status": latest.status if latest else "never_run",
        "last_run": ({k: getattr(latest, k) for k in ("id", "as_of", "status", "started_at",
                                                      "finished_at", "error_code", "error")}
                     if latest else None),
        "score_date": current.as_of if current else None,
        "profiles_scored": int(current.counts.get("scored_profiles", 0)) if current else 0,
        "profiles_scored_this_year": scored_this_year,
        "auc": (current.metrics.get("holdout") or {}).get("auc") if current else None,
        "schedule": describe_schedule(instance.config.schedule, datetime.now(UTC)),
    }
