"""Run records as the catalog keeps them, and where each run's outputs live.

Output layout (the contract the dashboard, segments and analytics read)::

    runs/<instance_id>/
      .lock                       held while a run of this instance is in progress
      <run_id>/                   everything one run wrote; complete before the run is marked done
        scores.parquet            event format: one row per scored profile for this score date
        profile_scores.parquet    profile format: the latest score of every profile ever scored
        features.parquet          the scoring features (profile_id + one column per factor id)
        factors.json              global influential factors and their per-bucket distributions
        evaluation.json           holdout metrics: AUC, PR-AUC, Brier, lift, gains, calibration
        model/                    the trained model (booster, calibrator, meta with hash)
        run.json                  a copy of the run record
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from likely.catalog import Catalog
from likely.errors import NotFoundError

RUNNING, SUCCESS, TRAINING_ISSUE, FAILED = "running", "success", "training_issue", "failed"
SUPERSEDED = "superseded"  # a successful run whose score date was later re-run


@dataclass(frozen=True)
class RunRecord:
    id: str
    instance_id: str
    as_of: str
    status: str
    started_at: str
    finished_at: str | None
    model_id: str | None
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error_code: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_dir(root: Path, instance_id: str, run_id: str) -> Path:
    return root / "runs" / instance_id / run_id


def get_run(catalog: Catalog, run_id: str) -> RunRecord:
    row = catalog.query_one("SELECT * FROM runs WHERE id = ?", (run_id,))
    if row is None:
        raise NotFoundError(f"No run with id '{run_id}'.")
    return RunRecord(**row)


def list_runs(catalog: Catalog, instance_id: str) -> list[RunRecord]:
    rows = catalog.query(
        "SELECT * FROM runs WHERE instance_id = ? ORDER BY started_at DESC", (instance_id,))
    return [RunRecord(**r) for r in rows]


def latest_success(catalog: Catalog, instance_id: str) -> RunRecord | None:
    """The run whose outputs are current: the newest successful run by score date."""
    row = catalog.query_one(
        "SELECT * FROM runs WHERE instance_id = ? AND status = ? "
        "ORDER BY as_of DESC, finished_at DESC LIMIT 1", (instance_id, SUCCESS))
    return RunRecord(**row) if row else None


def successful_runs(catalog: Catalog, instance_id: str) -> list[RunRecord]:
    rows = catalog.query(
        "SELECT * FROM runs WHERE instance_id = ? AND status = ? ORDER BY as_of",
        (instance_id, SUCCESS))
    return [RunRecord(**r) for r in rows]
