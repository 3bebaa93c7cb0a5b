"""Segments in the catalog: create, edit, hide, publish, delete."""

from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from likely.catalog import Catalog, utcnow
from likely.errors import AlreadyExistsError, ConfigError, NotFoundError, did_you_mean
from likely.segments.rules import Rule, check_rule

MAX_NAME = 80
_NAME = re.compile(r"^[^\x00-\x1f]{1,80}$")
MEMBERSHIPS_DIR = "segments"


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


def membership_dir(root: Path, segment_id: str) -> Path:
    return root / MEMBERSHIPS_DIR / segment_id


def create_segment(catalog: Catalog, root: Path, name: str, rule: str, *,
                   description: str = "", published: bool = True,
                   automatic: bool = False) -> Segment:
    name = _check_name(catalog, name)
    checked = check_rule(catalog, root, rule)
    stamp = utcnow()
    segment_id = f"seg-{uuid.uuid4().hex[:12]}"
    with catalog.transaction():
        catalog.insert("segments", {
            "id": segment_id, "name": name, "rule": rule, "description": description,
            "instance_ids": [i.id for i in checked.instances], "created_at": stamp,
            "updated_at": stamp, "published": int(published), "automatic": int(automatic)})
    return get_segment(catalog, segment_id)


def edit_segment(catalog: Catalog, root: Path, name: str, *, new_name: str | None = None,
                 rule: str | None = None, description: str | None = None,
                 published: bool | None = None, hidden: bool | None = None) -> Segment:
    """Change what was given. A new rule starts a new membership history: the old one
    described other people."""
    segment = get_segment(catalog, name)
    if segment.automatic and (rule is not None or new_name is not None):
        raise ConfigError(f"Segment '{segment.name}' is automatic: each run remakes it, so its "
                          "name and rule stay. Save its rule as a segment of your own to change "
                          "it; you may hide this one.", detail={"field": "rule"})
    changes: dict[str, Any] = {}
    if new_name is not None and new_name.strip() != segment.name:
        changes["name"] = _check_name(catalog, new_name)
    if rule is not None and rule != segment.rule:
        changes["rule"] = rule
        changes["instance_ids"] = [i.id for i in check_rule(catalog, root, rule).instances]
    if description is not None:
        changes["description"] = description
    for flag, value in (("published", published), ("hidden", hidden)):
        if value is not None:
            changes[flag] = int(value)
    if not changes:
        return segment
    with catalog.transaction():
        catalog.update("segments", "id", segment.id, {**changes, "updated_at": utcnow()})
        if "rule" in changes:
            catalog.execute("DELETE FROM segment_memberships WHERE segment_id = ?", (segment.id,))
    if "rule" in changes:
        shutil.rmtree(membership_dir(root, segment.id), ignore_errors=True)
    return get_segment(catalog, segment.id)


def get_segment(catalog: Catalog, name: str) -> Segment:
    row = catalog.query_one("SELECT * FROM segments WHERE name = ? OR id = ?", (name, name))
    if row is None:
        names = [r["name"] for r in catalog.query("SELECT name FROM segments ORDER BY name")]
        raise NotFoundError(f"No segment named '{name}'.{did_you_mean(name, names)}")
    return Segment(**{**row, **{k: bool(row[k]) for k in ("published", "automatic", "hidden")}})


def list_segments(catalog: Catalog, *, hidden: bool = False,
                  instance_id: str | None = None) -> list[Segment]:
    """Segments by name; hidden ones only when asked; optionally those reading one instance."""
    rows = catalog.query("SELECT id FROM segments ORDER BY automatic, name")
    found = [get_segment(catalog, r["id"]) for r in rows]
    return [s for s in found if (hidden or not s.hidden)
            and (instance_id is None or instance_id in s.instance_ids)]


def delete_segment(catalog: Catalog, root: Path, name: str) -> Segment:
    segment = get_segment(catalog, name)
    with catalog.transaction():
        catalog.execute("DELETE FROM segments WHERE id = ?", (segment.id,))
    shutil.rmtree(membership_dir(root, segment.id), ignore_errors=True)
    return segment


def segment_rule(catalog: Catalog, root: Path, segment: Segment) -> Rule:
    return check_rule(catalog, root, segment.rule)


def _check_name(catalog: Catalog, name: str) -> str:
    name = (name or "").strip()
    if not _NAME.match(name):
        raise ConfigError(f"A segment name needs 1 to {MAX_NAME} characters, no control "
                          "characters.", detail={"field": "name"})
    if catalog.query_one("SELECT id FROM segments WHERE name = ?", (name,)):
        raise AlreadyExistsError(f"A segment named '{name}' already exists. Pick another name.",
                                 detail={"field": "name"})
    return name
