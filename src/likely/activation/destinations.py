"""Destinations: named places where segments are activated, kept in the catalog.

A destination is a kind (``folder``, ``webhook``, ``table``) and a config checked here, once, when
it is added, so that an activation fails only for reasons of the moment (a receiver down, an
environment variable unset), never for a typo saved weeks ago. Credentials are never stored:
the config names the environment variables that hold them (``secret_env``, ``url_env``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from likely.catalog import Catalog, utcnow
from likely.config import read_yaml_mapping
from likely.errors import AlreadyExistsError, ConfigError, NotFoundError, did_you_mean

KINDS = ("folder", "webhook", "table")
#: The modes each kind accepts; the first is the default when the config names none.
MODES = {"folder": ("full", "delta"), "webhook": ("full", "delta"),
         "table": ("replace", "delta")}
FORMATS = ("csv", "parquet", "jsonl")
ENGINES = ("duckdb", "postgres")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: A config key holding any of these words looks like a credential: refused unless it ends in
#: ``_env`` (then it names an environment variable, which is the point).
_CREDENTIAL_WORDS = ("secret", "password", "passwd", "token", "api_key", "apikey", "credential",
                     "private_key")


@dataclass(frozen=True)
class Destination:
    name: str
    kind: str
    config: dict[str, Any]
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "config": dict(self.config),
                "created_at": self.created_at, "updated_at": self.updated_at}

    @property
    def default_mode(self) -> str:
        return self.config.get("mode") or MODES[self.kind][0]


def add_destination(catalog: Catalog, name: str, kind: str, config: dict) -> Destination:
    """Check ``config`` for ``kind`` and save it under ``name`` (defaults filled in)."""
    name = (name or "").strip()
    if not _NAME.match(name):
        raise ConfigError(
            f"Destination name '{name}' is not allowed: use 1 to 63 letters, digits, '_', '.' "
            "or '-', starting with a letter or digit.", detail={"field": "name"})
    checked = check_config(kind, config)
    if catalog.query_one("SELECT name FROM destinations WHERE name = ?", (name,)):
        raise AlreadyExistsError(f"A destination named '{name}' already exists. Remove it first "
                                 "or pick another name.", detail={"field": "name"})
    stamp = utcnow()
    with catalog.transaction():
        catalog.insert("destinations", {"name": name, "kind": kind, "config": checked,
                                        "created_at": stamp, "updated_at": stamp})
    return get_destination(catalog, name)


def get_destination(catalog: Catalog, name: str) -> Destination:
    row = catalog.query_one("SELECT * FROM destinations WHERE name = ?", (name,))
    if row is None:
        names = [r["name"] for r in catalog.query("SELECT name FROM destinations ORDER BY name")]
        hint = did_you_mean(name, names) or (
            "" if names else " None is set up yet: add one first.")
        raise NotFoundError(f"No destination named '{name}'.{hint}", detail={"field": "name"})
    return Destination(**row)


def list_destinations(catalog: Catalog) -> list[Destination]:
    return [Destination(**row)
            for row in catalog.query("SELECT * FROM destinations ORDER BY name")]


def remove_destination(catalog: Catalog, name: str) -> Destination:
    """Forget a destination; its activation log stays (it records the name, not a link)."""
    destination = get_destination(catalog, name)
    with catalog.transaction():
        catalog.execute("DELETE FROM destinations WHERE name = ?", (destination.name,))
    return destination


def parse_destination_file(path: str | Path) -> tuple[str, str, dict]:
    """Read a YAML file ``{name, kind, ...config}`` into ``(name, kind, config)``."""
    config = read_yaml_mapping(path, "Destination",
                               "'name: crm', 'kind: webhook', 'url: https://...'")
    missing = [key for key in ("name", "kind") if not config.get(key)]
    if missing:
        raise ConfigError(f"Destination file '{path}' has no '{missing[0]}'.",
                          detail={"field": missing[0]})
    name, kind = config.pop("name"), config.pop("kind")
    return str(name), str(kind), config


def env_value(config: dict, field: str) -> str:
    """The value of the environment variable that ``config[field]`` names; refuses a blank one."""
    variable = config[field]
    value = os.environ.get(variable, "")
    if not value:
        raise ConfigError(
            f"Environment variable {variable} (named by the destination's '{field}') is not "
            "set. Set it in the environment of the process that activates.",
            detail={"field": field, "variable": variable})
    return value


# -- checking a config ------------------------------------------------------------------------


def check_config(kind: str, config: dict) -> dict:
    """The config with defaults filled in; ConfigError naming the first field at fault."""
    if kind not in KINDS:
        raise ConfigError(f"Unknown destination kind '{kind}'.{did_you_mean(str(kind), KINDS)} "
                          f"Kinds: {', '.join(KINDS)}.", detail={"field": "kind"})
    if not isinstance(config, dict):
        raise ConfigError("A destination config must be a mapping of fields.",
                          detail={"field": "config"})
    _refuse_credentials(config)
    fields = _FIELDS[kind](config)
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise ConfigError(
            f"Unknown field '{unknown[0]}' for a {kind} destination."
            f"{did_you_mean(unknown[0], list(fields))} Fields: {', '.join(fields)}.",
            detail={"field": unknown[0]})
    checked = {}
    for field, check in fields.items():
        value = check(field, config.get(field))
        if value is not None:
            checked[field] = value
    return checked


def _refuse_credentials(config: dict) -> None:
    for key in config:
        lowered = str(key).lower()
        if lowered.endswith("_env"):
            continue
        if any(word in lowered for word in _CREDENTIAL_WORDS):
            raise ConfigError(
                f"Field '{key}' looks like a credential: likely never stores those. Put the "
                "value in an environment variable and name the variable instead (e.g. "
                "'secret_env: LIKELY_WEBHOOK_SECRET').", detail={"field": str(key)})


Check = Callable[[str, Any], Any]


def _folder_fields(config: dict) -> dict[str, Check]:
    return {"path": _required_text, "format": _choice(FORMATS),
            "mode": _choice(MODES["folder"])}


def _webhook_fields(config: dict) -> dict[str, Check]:
    return {"url": _url, "secret_env": _env_field, "batch_size": _integer(1000, 1, 100_000),
            "max_attempts": _integer(5, 1, 20), "backoff_seconds": _number(1.0, 0, 60),
            "timeout_seconds": _number(10.0, 0.01, 600), "mode": _choice(MODES["webhook"])}


def _table_fields(config: dict) -> dict[str, Check]:
    if "url" in config:
        raise ConfigError("Field 'url' is not allowed: a database URL carries a password. Put "
                          "it in an environment variable and name it in 'url_env'.",
                          detail={"field": "url"})
    engine = _choice(ENGINES)("engine", config.get("engine"))
    common: dict[str, Check] = {"engine": _choice(ENGINES), "table": _identifier(required=True),
                                "mode": _choice(MODES["table"])}
    if engine == "duckdb":
        return {**common, "path": _required_text}
    return {**common, "url_env": _env_field, "schema": _identifier(required=False)}


_FIELDS: dict[str, Callable[[dict], dict[str, Check]]] = {
    "folder": _folder_fields, "webhook": _webhook_fields, "table": _table_fields}


def _missing(field: str) -> ConfigError:
    return ConfigError(f"Field '{field}' is required.", detail={"field": field})


def _required_text(field: str, value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _missing(field)
    if not isinstance(value, str):
        raise ConfigError(f"Field '{field}' must be text.", detail={"field": field})
    return value.strip()


def _choice(options: tuple[str, ...]) -> Check:
    def check(field: str, value: Any) -> str:
        if value is None:
            return options[0]
        if value not in options:
            raise ConfigError(f"Field '{field}' must be one of {', '.join(options)}; got "
                              f"'{value}'.{did_you_mean(str(value), options)}",
                              detail={"field": field})
        return value
    return check


def _integer(default: int, low: int, high: int) -> Check:
    def check(field: str, value: Any) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"Field '{field}' must be a whole number from {low} to {high}; "
                              f"got {value!r}.", detail={"field": field})
        return value
    return check


def _number(default: float, low: float, high: float) -> Check:
    def check(field: str, value: Any) -> float:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not low <= value <= high:
            raise ConfigError(f"Field '{field}' must be a number from {low:g} to {high:g}; got "
                              f"{value!r}.", detail={"field": field})
        return float(value)
    return check


def _identifier(*, required: bool) -> Check:
    def check(field: str, value: Any) -> str | None:
        if value is None and not required:
            return None
        if value is None:
            raise _missing(field)
        if not isinstance(value, str) or not IDENTIFIER.match(value):
            raise ConfigError(
                f"Field '{field}' must be a plain SQL name: a letter or '_' then up to 62 "
                f"letters, digits or '_'; got {value!r}.", detail={"field": field})
        return value
    return check


def _env_field(field: str, value: Any) -> str:
    if value is None:
        raise _missing(field)
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise ConfigError(f"Field '{field}' must name an environment variable (letters, digits "
                          f"and '_'), not hold a value; got {value!r}.", detail={"field": field})
    return value


def _url(field: str, value: Any) -> str:
    text = _required_text(field, value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"Field '{field}' must be an http:// or https:// address with a host; "
                          f"got '{text}'.", detail={"field": field})
    if parts.username or parts.password:
        raise ConfigError(f"Field '{field}' must not carry a user or password. Receivers check "
                          "the signature made with the secret named in 'secret_env'.",
                          detail={"field": field})
    return text
