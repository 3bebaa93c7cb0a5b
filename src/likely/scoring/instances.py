"""Prediction instances in the catalog: create, list, show, edit, clone, delete.

Creating an instance checks everything that can be checked without running: the datasets exist
and are of the right kind, every condition parses against the dataset's columns, and profile
attributes exist. Editing changes only name, description and schedule; anything else is a clone,
so a run's config never changes under its scores.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from likely.catalog import Catalog, utcnow
from likely.conditions import parse_condition
from likely.config import EDITABLE, InstanceConfig, parse_instance_config, stored_instance_config
from likely.data.datasets import get_dataset
from likely.data.profiles import NOT_ATTRIBUTES
from likely.errors import AlreadyExistsError, ConfigError, NotFoundError, did_you_mean


@dataclass(frozen=True)
class Instance:
    id: str
    name: str
    config: InstanceConfig
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "config": self.config.to_dict(),
                "created_at": self.created_at, "updated_at": self.updated_at}


def outputs_dir(root: Path, instance_id: str) -> Path:
    return root / "runs" / instance_id


def check_config(catalog: Catalog, root: Path, config: InstanceConfig) -> None:
    """Refuse a config whose datasets, columns or conditions do not fit the data."""
    events = get_dataset(catalog, root, config.datasets.events)
    if events.kind != "events":
        raise ConfigError(f"datasets.events: '{events.name}' holds {events.kind}, not events.")
    event_columns = {c["name"]: c["type"] for c in events.columns}
    for where, text in _event_conditions(config):
        _parse(text, event_columns, where)
    profile_columns: dict[str, str] = {}
    if config.datasets.profiles:
        profiles = get_dataset(catalog, root, config.datasets.profiles)
        if profiles.kind != "profiles":
            raise ConfigError(
                f"datasets.profiles: '{profiles.name}' holds {profiles.kind}, not profiles.")
        profile_columns = {c["name"]: c["type"] for c in profiles.columns}
    elif (config.population.profile_conditions or config.profile_attributes
          or config.static_attributes or not config.population.requires_activity):
        raise ConfigError("population.profile_conditions, population.requires_activity: false, "
                          "profile_attributes and static_attributes need datasets.profiles to "
                          "name a profiles dataset.")
    attributes = {k: v for k, v in profile_columns.items() if k not in NOT_ATTRIBUTES}
    for i, text in enumerate(config.population.profile_conditions):
        _parse(text, attributes, f"population.profile_conditions[{i}]")
    for key in ("profile_attributes", "static_attributes"):
        for attribute in getattr(config, key) or []:
            if attribute not in attributes:
                hint = did_you_mean(attribute, list(attributes))
                raise ConfigError(f"{key}: '{attribute}' is not an attribute of profiles "
                                  f"dataset '{config.datasets.profiles}'.{hint}")


def _event_conditions(config: InstanceConfig) -> list[tuple[str, str]]:
    found = [(f"goal.conditions[{i}]", c) for i, c in enumerate(config.goal.conditions)]
    found += [(f"population.conditions[{i}]", c)
              for i, c in enumerate(config.population.conditions)]
    found += [(f"custom_events.{k}", c) for k, c in config.custom_events.items()]
    found += [(f"exclusions[{i}]", c) for i, c in enumerate(config.exclusions)]
    found += [(f"population.exclude_if[{i}]", rule.condition)
              for i, rule in enumerate(config.population.exclude_if)]
    return found


def _parse(text: str, columns: dict[str, str], where: str) -> None:
    import ibis

    try:
        parse_condition(text, {k: ibis.dtype(v) for k, v in columns.items()})
    except ConfigError as exc:
        exc.message = f"{where}: {exc.message}"
        exc.args = (exc.message,)
        raise


def create_instance(catalog: Catalog, root: Path, config: InstanceConfig) -> Instance:
    check_config(catalog, root, config)
    if catalog.query_one("SELECT id FROM instances WHERE name = ?", (config.name,)):
        raise AlreadyExistsError(f"An instance named '{config.name}' already exists. Pick "
                                 "another name, or edit/clone the existing one.")
    stamp = utcnow()
    instance_id = f"{config.name}-{uuid.uuid4().hex[:8]}"
    with catalog.transaction():
        catalog.insert("instances", {"id": instance_id, "name": config.name,
                                     "config": config.to_dict(), "created_at": stamp,
                                     "updated_at": stamp})
    return get_instance(catalog, config.name)


def get_instance(catalog: Catalog, name: str) -> Instance:
    row = catalog.query_one("SELECT * FROM instances WHERE name = ? OR id = ?", (name, name))
    if row is None:
        names = [r["name"] for r in catalog.query("SELECT name FROM instances ORDER BY name")]
        hint = did_you_mean(name, names)
        known = ", ".join(names) or "none yet: create one with `likely instances create`"
        raise NotFoundError(f"No instance named '{name}'.{hint} Instances: {known}.")
    return Instance(row["id"], row["name"], stored_instance_config(row["config"]),
                    row["created_at"], row["updated_at"])


def list_instances(catalog: Catalog) -> list[Instance]:
    rows = catalog.query("SELECT name FROM instances ORDER BY name")
    return [get_instance(catalog, r["name"]) for r in rows]


def edit_instance(catalog: Catalog, name: str, changes: dict[str, Any]) -> Instance:
    """Change name, description, schedule or retraining; anything else must be a clone."""
    instance = get_instance(catalog, name)
    refused = sorted(set(changes) - set(EDITABLE))
    if refused:
        raise ConfigError(f"Only {', '.join(EDITABLE)} can be edited; {', '.join(refused)} "
                          f"cannot. Clone the instance instead: likely instances clone {name} "
                          "NEW_NAME -f changed.yaml")
    data = {**instance.config.to_dict(), **changes}
    config = parse_instance_config(data, source=f"the edit of '{name}'")
    if config.name != instance.name and catalog.query_one(
            "SELECT id FROM instances WHERE name = ?", (config.name,)):
        raise AlreadyExistsError(f"An instance named '{config.name}' already exists.")
    with catalog.transaction():
        catalog.update("instances", "id", instance.id,
                       {"name": config.name, "config": config.to_dict(), "updated_at": utcnow()})
    return get_instance(catalog, instance.id)


def clone_instance(
    catalog: Catalog, root: Path, name: str, new_name: str, overrides: dict[str, Any]
) -> Instance:
    source = get_instance(catalog, name)
    data = _deep_merge(source.config.to_dict(), {**overrides, "name": new_name})
    return create_instance(catalog, root, parse_instance_config(data, source="the clone"))


def delete_instance(catalog: Catalog, root: Path, name: str, *, keep_outputs: bool) -> Instance:
    instance = get_instance(catalog, name)
    with catalog.transaction() as db:
        db.execute("DELETE FROM models WHERE instance_id = ?", (instance.id,))
        db.execute("DELETE FROM runs WHERE instance_id = ?", (instance.id,))
        db.execute("DELETE FROM instances WHERE id = ?", (instance.id,))
    if not keep_outputs:
        shutil.rmtree(outputs_dir(root, instance.id), ignore_errors=True)
    return instance


def _deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
