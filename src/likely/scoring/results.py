"""Reading what runs wrote: current scores, score history, one profile's reasons, exports.

The current outputs of an instance are those of its newest successful run (by score date);
readers find them through the catalog, never by listing folders, so a run in progress or a
failed run is never read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis

from likely.catalog import Catalog
from likely.data.schema import PROFILE_ID
from likely.engine import read_parquet
from likely.errors import ConfigError, NotFoundError
from likely.scoring import records
from likely.scoring.instances import Instance
from likely.scoring.outputs import FACTORS_FILE, PROFILE_SCORES_FILE, SCORES_FILE
from likely.storage import atomic_path

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pyarrow as pa
    from ibis.backends import BaseBackend

EXPORT_FORMATS = ("csv", "parquet", "jsonl")


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


def scores(
    catalog: Catalog, con: BaseBackend, root: Path, instance: Instance, *,
    profile_id: str | None = None, top: int | None = None,
) -> pa.Table:
    table = current_table(catalog, con, root, instance)
    if profile_id is not None:
        table = table.filter(table[PROFILE_ID] == profile_id)
    table = table.order_by([ibis.desc("probability"), PROFILE_ID])
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
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"Unknown export format '{fmt}'. Allowed: {', '.join(EXPORT_FORMATS)}.")
    table = current_table(catalog, con, root, instance)
    with atomic_path(out) as tmp:
        if fmt == "parquet":
            table.to_parquet(tmp)
        elif fmt == "csv":
            flat = table.mutate(influential_factors=table.influential_factors.cast("json")
                                .cast("string"))
            flat.to_csv(tmp)
        else:
            _write_jsonl(table, tmp)
    return out


def _write_jsonl(table: ir.Table, path: Path) -> None:
    with open(path, "w") as handle:
        for batch in table.to_pyarrow_batches(chunk_size=100_000):
            for row in batch.to_pylist():
                handle.write(json.dumps(row, default=str) + "\n")
