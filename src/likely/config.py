"""Instance configuration: one pydantic model per file, unknown keys refused by name.

An instance is one question asked of the data ("who will buy in the next 30 days?"), described
without ML knowledge. Example ``instance.yaml``::

    name: purchase-30d
    type: conversion
    datasets: {events: web, profiles: crm}
    goal:
      conditions: ["event_type = 'commerce.purchases'"]
      window_days: 30
    population:
      lookback_days: 45          # default: anyone active in the last 45 days

A lifetime-value instance (``type: clv``) predicts what each customer will spend over
``horizon_days``: its goal is the purchase (default ``event_type = 'commerce.purchases'``), whose
``value_column`` is summed, and its window is the horizon::

    name: clv-365d
    type: clv
    datasets: {events: web}
    horizon_days: 365
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from likely.errors import ConfigError

CLV_HORIZON_DAYS = 365
CLV_PURCHASE = "event_type = 'commerce.purchases'"
CLV_BUCKETS = (60.0, 90.0)  # on the value percentile: rest < 60 ≤ next 30% < 90 ≤ top 10%
VALUE_COLUMN = "value"

#: Fields `likely instances edit` may change (they do not change the question asked); anything
#: else makes a new instance (clone).
EDITABLE = ("name", "description", "schedule", "retrain_days", "drift_threshold")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetsConfig(_Strict):
    events: str = Field(description="Events dataset name.")
    profiles: str | None = Field(None, description="Profiles dataset name (optional).")


class GoalConfig(_Strict):
    """What counts as success: the goal events within ``window_days`` after the anchor."""

    conditions: list[str] = Field(min_length=1)
    match: Literal["all", "any"] = "any"
    occurs: bool = Field(True, description="False: the goal is that the event will NOT occur.")
    window_days: int = Field(30, ge=1, le=365)

    def in_words(self) -> str:
        """The goal as a sentence."""
        if self.match == "any" or len(self.conditions) == 1:
            events = "an event where " + " or ".join(self.conditions)
        else:
            events = "events where " + " and events where ".join(self.conditions)
        has = "has" if self.occurs else "does not have"
        return f"The profile {has} {events} in the {self.window_days} days after the date."


class PopulationExclusion(_Strict):
    """Profiles with an event meeting ``condition`` are left out: ever, or within a lookback."""

    condition: str
    lookback_days: int | None = Field(
        None, ge=1, le=3650, description="Only events this many days back count; null = ever.")


class PopulationConfig(_Strict):
    """Who gets scored: event activity in the lookback window and/or profile attributes, minus
    the profiles an exclusion matches."""

    conditions: list[str] = Field(default_factory=list,
                                  description="Event conditions; empty = any event.")
    match: Literal["all", "any"] = "any"
    lookback_days: int = Field(45, ge=1, le=730)
    profile_conditions: list[str] = Field(default_factory=list)
    exclude_if: list[PopulationExclusion] = Field(default_factory=list)
    requires_activity: bool = Field(
        True, description="False: every profile of the profiles dataset, with or without events.")

    @field_validator("exclude_if", mode="before")
    @classmethod
    def _plain_conditions(cls, value: Any) -> Any:
        """A bare condition string means "ever": ``exclude_if: ["event_type = 'x'"]``."""
        if isinstance(value, list):
            return [{"condition": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _activity(self) -> PopulationConfig:
        if not self.requires_activity and self.conditions:
            raise ValueError("population.conditions describe activity; with requires_activity: "
                             "false remove them (use profile_conditions instead)")
        return self

    def in_words(self) -> str:
        """The rule as a sentence: who is scored on a date."""
        if self.requires_activity:
            what = " or ".join(self.conditions) if self.match == "any" else " and ".join(
                self.conditions)
            who = (f"Profiles with an event where {what}" if self.conditions
                   else "Profiles with any event")
            who += f" in the {self.lookback_days} days before the date"
        else:
            who = "Every profile of the profiles dataset, with or without events"
        if self.profile_conditions:
            who += ", whose attributes on the date meet " + " and ".join(self.profile_conditions)
        for rule in self.exclude_if:
            when = (f"in the {rule.lookback_days} days before the date" if rule.lookback_days
                    else "ever before the date")
            who += f"; not those with an event where {rule.condition} {when}"
        return who + "."


class InstanceConfig(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    type: Literal["conversion", "churn", "clv"] = "conversion"
    datasets: DatasetsConfig
    goal: GoalConfig
    population: PopulationConfig = PopulationConfig()
    custom_events: dict[str, str] = Field(default_factory=dict)
    profile_attributes: list[str] | None = Field(
        None, description="Profile attributes to use as features; default: all usable.")
    static_attributes: list[str] = Field(
        default_factory=list,
        description="Attributes that never change (country, signup date): a snapshot's values "
                    "describe the past only for these.")
    exclusions: list[str] = Field(default_factory=list,
                                  description="Events matching any of these are removed first.")
    schedule: str = Field("manual", description="When it runs by itself, e.g. 'weekly on "
                          "monday at 06:00 Europe/Berlin' (see likely.schedules).")
    retrain_days: int = Field(90, ge=1, le=3650, description="Runs re-score with the current "
                              "model until it is this many days older than the score date.")
    drift_threshold: float = Field(0.25, gt=0, le=10, description="Population stability index "
                                   "of the scores or a top feature above which a run is marked "
                                   "'drift' and the next run retrains.")
    horizon_days: int | None = Field(
        None, ge=7, le=365, description="clv: the days of spend predicted (default 365); the "
        "goal's window.")
    value_column: str = Field(VALUE_COLUMN, min_length=1, description="clv: the events' numeric "
                              "column summed as spend (returns: negative values).")
    buckets: tuple[float, float] = (25.0, 75.0)
    min_positives: int = Field(500, ge=1)
    min_negatives: int = Field(500, ge=1)
    min_auc: float = Field(0.65, ge=0.0, le=1.0)
    max_anchors: int = Field(8, ge=1, le=24)
    max_training_rows: int = Field(
        500_000, ge=1_000, description="Above this many profile-windows, a stable sample of "
        "profiles trains. A learning curve on 400k demo profiles: 250k rows lost 0.0017 AUC "
        "against all 1.16M, 500k rows 0.0008, at a fraction of the time.")

    @model_validator(mode="before")
    @classmethod
    def _lifetime_value(cls, data: Any) -> Any:
        """A clv instance's goal is the purchase within the horizon; its buckets are shares of
        customers by predicted value (top 10% / next 30% / rest)."""
        if not isinstance(data, dict):
            return data
        if data.get("type") != "clv":
            if data.get("horizon_days") is not None:
                raise ValueError("horizon_days is for type: clv; other types set "
                                 "goal.window_days")
            return data
        horizon = data.get("horizon_days") or CLV_HORIZON_DAYS
        goal = dict(data.get("goal") or {"conditions": [CLV_PURCHASE]})
        window = goal.get("window_days")
        if window is not None and window != horizon:
            raise ValueError(f"a clv instance's window is horizon_days ({horizon}); remove "
                             f"goal.window_days ({window}) or make it equal")
        if goal.get("occurs") is False:
            raise ValueError("a clv instance predicts spend: goal.occurs must stay true")
        return {**data, "horizon_days": horizon, "goal": {**goal, "window_days": horizon},
                "buckets": data.get("buckets", CLV_BUCKETS)}

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from likely.schedules import parse_schedule

        try:
            parse_schedule(value)
        except ConfigError as exc:
            raise ValueError(exc.message) from None
        return value.strip()

    @field_validator("buckets")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low < high < 100:
            raise ValueError("buckets must be two cut-offs with 0 < low < high < 100")
        return value

    @model_validator(mode="after")
    def _custom_event_names(self) -> InstanceConfig:
        for name in self.custom_events:
            if not name.strip():
                raise ValueError("custom event names must not be empty")
        return self

    def goal_in_words(self) -> str:
        """What the instance predicts, as a sentence (a clv instance predicts spend)."""
        if self.type != "clv":
            return self.goal.in_words()
        events = " or ".join(self.goal.conditions) if self.goal.match == "any" else " and ".join(
            self.goal.conditions)
        return (f"What the profile spends (the net {self.value_column} of its events where "
                f"{events}) in the {self.goal.window_days} days after the date.")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


#: Keys earlier versions accepted and later removed; stored configs holding them still load.
RETIRED_KEYS: tuple[str, ...] = ()


def stored_instance_config(data: dict[str, Any]) -> InstanceConfig:
    """A config as the catalog stored it, written by this or an earlier version."""
    return InstanceConfig.model_validate({k: v for k, v in data.items() if k not in RETIRED_KEYS})


def parse_instance_config(data: dict[str, Any], *, source: str = "config") -> InstanceConfig:
    """Validate a config mapping; errors name the source, the key path and the valid keys."""
    try:
        return InstanceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"Invalid instance config in {source}: {_explain(exc)}") from None


def load_instance_config(path: str | Path) -> InstanceConfig:
    return parse_instance_config(read_yaml_mapping(path, "Config"), source=f"'{path}'")


def read_yaml_mapping(path: str | Path, what: str, example: str = "'name: ...'") -> dict:
    """A YAML file that must hold a mapping (an instance, a segment, a destination); refusals
    name the file and say what is wrong with it."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"{what} file '{path}' does not exist.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} file '{path}' is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file '{path}' must hold a mapping of keys, e.g. {example}.")
    return data


def _explain(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            model = _model_at(error["loc"][:-1])
            valid = ", ".join(model.model_fields) if model else ""
            problems.append(f"unknown key '{where}' (valid keys here: {valid})")
        else:
            problems.append(f"'{where}': {error['msg']}")
    return "; ".join(problems)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = InstanceConfig
    for part in loc:
        if isinstance(part, int):  # an item of a list of models
            continue
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None) if field else None
        inner = [a for a in get_args(annotation) if isinstance(a, type)] or [annotation]
        nested = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return None if field is None else model
        model = nested[0]
    return model
