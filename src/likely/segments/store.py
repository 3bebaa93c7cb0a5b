"""Segments in the catalog, and how many profiles a rule selects from the current scores."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis

from likely.catalog import Catalog, utcnow
from likely.conditions import Condition, compile_condition, parse_condition
from likely.data.schema import PROFILE_ID
from likely.errors import (
    AlreadyExistsError,
    ConditionError,
    ConfigError,
    NotFoundError,
    did_you_mean,
)
from likely.scoring import records
from likely.scoring.instances import Instance, list_instances
from likely.scoring.results import latest_scored

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

#: The fields of an instance's scores a rule may read, with their types.
SCORE_FIELDS = {"bucket": "string", "score": "float64", "percentile": "int16",
                "probability": "float64"}
MAX_NAME = 80
_NAME = re.compile(r"^[^\x00-\x1f]{1,80}$")


@dataclass(frozen=True)
class Segment:
    id: str
    name: str
    description: str
    rule: str
    instance_ids: list[str]
    created_at: str
    updated_at: str
    published: bool
    automatic: bool = False
    hidden: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def bucket_rule(instance: Instance, bucket: str) -> str:
    """The rule selecting one bucket of an instance's latest scores."""
    if bucket not in ("Low", "Medium", "High"):
        raise ConfigError(f"Unknown bucket '{bucket}'. Buckets: High, Medium, Low.")
    return f'"{instance.name}".bucket = \'{bucket}\''


def check_rule(catalog: Catalog, rule: str) -> tuple[Condition, list[Instance]]:
    """Parse a rule against every instance's score fields; returns it and the instances used."""
    instances = {i.name: i for i in list_instances(catalog)}
    columns = {f"{name}.{field}": ibis.dtype(kind)
               for name in instances for field, kind in SCORE_FIELDS.items()}
    condition = parse_condition(rule, columns)
    used = sorted({column.rsplit(".", 1)[0] for column in condition.columns})
    if not used:
        raise ConditionError(
            f"Rule '{rule}' reads no instance's scores, so it would select nobody or everybody. "
            "Name a field of an instance, e.g. \"purchase-30d\".bucket = 'High'.",
            token=rule, condition=rule)
    return condition, [instances[name] for name in used]


def create_segment(catalog: Catalog, name: str, rule: str, *,
                   description: str = "") -> Segment:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise ConfigError(f"A segment name needs 1 to {MAX_NAME} characters, no control "
                          "characters.", detail={"field": "name"})
    _, used = check_rule(catalog, rule)
    if catalog.query_one("SELECT id FROM segments WHERE name = ?", (name,)):
        raise AlreadyExistsError(f"A segment named '{name}' already exists. Pick another name.",
                                 detail={"field": "name"})
    stamp = utcnow()
    segment_id = f"seg-{uuid.uuid4().hex[:12]}"
    with catalog.transaction():
        catalog.insert("segments", {"id": segment_id, "name": name, "rule": rule,
                                    "description": description,
                                    "instance_ids": [i.id for i in used],
                                    "created_at": stamp, "updated_at": stamp, "published": 0})
    return get_segment(catalog, segment_id)


def get_segment(catalog: Catalog, name: str) -> Segment:
    row = catalog.query_one("SELECT * FROM segments WHERE name = ? OR id = ?", (name, name))
    if row is None:
        names = [r["name"] for r in catalog.query("SELECT name FROM segments ORDER BY name")]
        raise NotFoundError(f"No segment named '{name}'.{did_you_mean(name, names)}")
    return Segment(**{**row, **{k: bool(row[k]) for k in ("published", "automatic", "hidden")}})


def list_segments(catalog: Catalog) -> list[Segment]:
    rows = catalog.query("SELECT name FROM segments ORDER BY name")
    return [get_segment(catalog, r["name"]) for r in rows]


def delete_segment(catalog: Catalog, name: str) -> Segment:
    segment = get_segment(catalog, name)
    with catalog.transaction():
        catalog.execute("DELETE FROM segments WHERE id = ?", (segment.id,))
    return segment


def segment_size(catalog: Catalog, con: BaseBackend, root: Path, segment: Segment) -> dict:
    """How many profiles the rule selects from the instances' current runs, and their dates.

    Profiles a current run did not score (no longer in its population) are not selected, even
    though the profile-format table still carries their older score.
    """
    condition, used = check_rule(catalog, segment.rule)
    table = _scores_by_instance(catalog, con, root, used)
    size = int(table.filter(compile_condition(condition, table).fill_null(False))
               .count().execute())
    dates = {i.name: records.latest_success(catalog, i.id).as_of for i in used}
    return {"profiles": size, "score_dates": dates}


def _scores_by_instance(catalog: Catalog, con: BaseBackend, root: Path,
                        used: list[Instance]) -> ir.Table:
    """One row per profile with ``<instance>.<field>`` columns, outer-joined across instances."""
    joined = None
    for instance in used:
        current = latest_scored(catalog, con, root, instance)
        renamed = current.select(PROFILE_ID, **{f"{instance.name}.{f}": current[f]
                                                for f in SCORE_FIELDS})
        if joined is None:
            joined = renamed
            continue
        both = joined.outer_join(renamed, joined[PROFILE_ID] == renamed[PROFILE_ID])
        joined = both.select(
            ibis.coalesce(joined[PROFILE_ID], renamed[PROFILE_ID]).name(PROFILE_ID),
            *[c for c in joined.columns if c != PROFILE_ID],
            *[c for c in renamed.columns if c != PROFILE_ID])
    return joined
