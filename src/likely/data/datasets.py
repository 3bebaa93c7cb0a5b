"""Datasets as the catalog knows them: listing, opening as an Ibis table, deleting."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from likely.catalog import Catalog
from likely.data.schema import DatasetKind
from likely.engine import read_parquet
from likely.errors import ConfigError, InUseError, NotFoundError, did_you_mean

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Dataset:
    """An ingested dataset: what it is, where its Parquet parts are, and its quality report."""

    name: str
    kind: DatasetKind
    created_at: str
    updated_at: str
    columns: list[dict[str, str]]
    quality: dict[str, Any]
    parts: tuple[Path, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "created_at": self.created_at,
            "updated_at": self.updated_at, "columns": self.columns, "quality": self.quality,
            "parts": [str(p) for p in self.parts],
        }


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"Dataset name '{name}' is not allowed: use 1-64 letters, digits, '_', '.', '-', "
            "starting with a letter or digit."
        )
    return name


def dataset_dir(root: Path, name: str) -> Path:
    return root / "data" / name


def find_dataset(catalog: Catalog, root: Path, name: str) -> Dataset | None:
    row = catalog.query_one("SELECT * FROM datasets WHERE name = ?", (name,))
    if row is None:
        return None
    parts = catalog.query(
        "SELECT path FROM dataset_parts WHERE dataset = ? ORDER BY id", (name,)
    )
    return Dataset(
        name=row["name"], kind=row["kind"], created_at=row["created_at"],
        updated_at=row["updated_at"], columns=row["columns"], quality=row["quality"],
        parts=tuple(root / p["path"] for p in parts),
    )


def get_dataset(catalog: Catalog, root: Path, name: str) -> Dataset:
    dataset = find_dataset(catalog, root, name)
    if dataset is None:
        names = [r["name"] for r in catalog.query("SELECT name FROM datasets ORDER BY name")]
        hint = did_you_mean(name, names)
        known = ", ".join(names) or "none yet: ingest one with `likely datasets ingest`"
        raise NotFoundError(f"No dataset named '{name}'.{hint} Datasets: {known}.")
    return dataset


def list_datasets(catalog: Catalog, root: Path) -> list[Dataset]:
    names = [r["name"] for r in catalog.query("SELECT name FROM datasets ORDER BY name")]
    return [get_dataset(catalog, root, n) for n in names]


def open_dataset(con: BaseBackend, dataset: Dataset) -> ir.Table:
    """The dataset as one Ibis table over all its parts."""
    return read_parquet(con, dataset.parts)


def instances_using(catalog: Catalog, name: str) -> list[str]:
    """Names of instances whose config reads this dataset."""
    users = []
    for row in catalog.query("SELECT name, config FROM instances ORDER BY name"):
        datasets = (row["config"] or {}).get("datasets", {})
        if name in {datasets.get("events"), datasets.get("profiles")}:
            users.append(row["name"])
    return users


def delete_dataset(catalog: Catalog, root: Path, name: str, *, force: bool = False) -> list[str]:
    """Remove a dataset's files and catalog entry; returns the instances that used it.

    Refused while an instance uses the dataset unless ``force``: those instances can no longer
    run until they are pointed at another dataset.
    """
    get_dataset(catalog, root, name)
    users = instances_using(catalog, name)
    if users and not force:
        raise InUseError(
            f"Dataset '{name}' is used by instance(s) {', '.join(users)}. Deleting it stops "
            "them from running. Delete those instances first, or pass --force."
        )
    with catalog.transaction() as db:
        db.execute("DELETE FROM ingested_files WHERE dataset = ?", (name,))
        db.execute("DELETE FROM dataset_parts WHERE dataset = ?", (name,))
        db.execute("DELETE FROM datasets WHERE name = ?", (name,))
    shutil.rmtree(dataset_dir(root, name), ignore_errors=True)
    return users
