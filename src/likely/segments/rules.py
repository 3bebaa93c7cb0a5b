"""Segment rules: which fields a rule may read, checked with the same parser as goals.

A rule reads ``<instance>.<field>`` for the latest scores of any instance (quote a name with a
dash: ``"purchase-30d".bucket``) and the profile attributes of those instances' profiles
datasets, unqualified (``loyalty_tier IN ('gold')``), as they were known at the score date.
A lifetime-value instance (``type: clv``) also offers its value columns
(``clv_90d.predicted_value > 500``, ``clv_90d.value_bucket = 'top 10%'``).
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import sqlglot
from sqlglot import exp

from likely.catalog import Catalog
from likely.conditions import Condition, parse_condition
from likely.data.datasets import get_dataset
from likely.data.profiles import NOT_ATTRIBUTES
from likely.errors import ConditionError, ConfigError, NotFoundError
from likely.scoring.instances import Instance, list_instances
from likely.scoring.outputs import value_buckets

#: The fields of a propensity instance's scores a rule may read, with their types and meaning.
SCORE_FIELDS: dict[str, tuple[str, str]] = {
    "bucket": ("string", "High, Medium or Low"),
    "score": ("float64", "0–100"),
    "percentile": ("int16", "1–100: share of scored profiles ranked at or below"),
    "probability": ("float64", "calibrated probability of the goal"),
    "top_reason": ("string", "the behaviour of the strongest reason, e.g. 'cart adds'"),
    "reasons": ("array<string>", "the behaviours of all reasons: 'cart adds' IN x.reasons"),
}
#: A lifetime-value instance's fields: its value columns besides the shared ones, whose meaning
#: changes (the score ranks predicted value; the probability is that of still being active).
VALUE_FIELDS: dict[str, tuple[str, str]] = {
    "predicted_value": ("float64", "predicted spend over the horizon"),
    "value_percentile": ("int16", "1–100: 100 = the most valuable 1%"),
    "value_bucket": ("string", "the value bucket in words: 'top 10%', 'next 30%' or 'rest'"),
    "expected_purchases": ("float64", "expected purchases over the horizon (BG/NBD)"),
    "probability_active": ("float64", "probability the customer is still active (null: never "
                                      "bought)"),
    "bucket": ("string", "High (top 10% by value), Medium (next 30%) or Low (rest)"),
    "score": ("float64", "0–100: share of scored profiles predicted to be worth less"),
    "percentile": ("int16", "1–100: same as value_percentile"),
    "probability": ("float64", "probability the customer is still active"),
    "top_reason": SCORE_FIELDS["top_reason"],
    "reasons": SCORE_FIELDS["reasons"],
}
BUCKETS = ("High", "Medium", "Low")


@dataclass(frozen=True)
class Rule:
    """A checked rule: its condition, the instances and the attributes it reads."""

    condition: Condition
    instances: list[Instance]
    attributes: dict[str, str]  # attribute -> the profiles dataset it comes from

    @property
    def text(self) -> str:
        return self.condition.text

    def fields(self, instance: Instance) -> list[str]:
        """The score fields of ``instance`` the rule reads."""
        return [f for f in score_fields(instance)
                if f"{instance.name}.{f}" in self.condition.columns]


def score_fields(instance: Instance) -> dict[str, tuple[str, str]]:
    """The fields a rule may read of ``instance``: a clv instance's scores carry its value
    columns, and its buckets are shares of customers by predicted value."""
    if instance.config.type != "clv":
        return SCORE_FIELDS
    horizon = instance.config.horizon_days
    top, middle = value_buckets(np.array(["High", "Medium"]), instance.config.buckets)
    words = {
        "predicted_value": f"predicted spend over the next {horizon} days",
        "expected_purchases": f"expected purchases over the next {horizon} days (BG/NBD)",
        "value_bucket": f"the value bucket in words: '{top}', '{middle}' or 'rest'",
        "bucket": f"High ({top} by predicted value), Medium ({middle}) or Low (rest)",
    }
    return {f: (kind, words.get(f, meaning)) for f, (kind, meaning) in VALUE_FIELDS.items()}


def bucket_rule(instance: Instance, bucket: str) -> str:
    """The rule selecting one bucket of an instance's latest scores."""
    if bucket not in BUCKETS:
        raise ConfigError(f"Unknown bucket '{bucket}'. Buckets: High, Medium, Low.")
    return f"{reference(instance.name)}.bucket = {literal(bucket)}"


def reason_rule(instance: Instance, bucket: str, behaviour: str) -> str:
    """The rule selecting one bucket whose strongest reason is ``behaviour``."""
    return f"{bucket_rule(instance, bucket)} AND {reference(instance.name)}.top_reason = " \
           f"{literal(behaviour)}"


def reference(name: str) -> str:
    """How a rule names an instance: bare when SQL reads it back as that name, else quoted."""
    try:
        column = sqlglot.parse_one(f"{name}.bucket", read="duckdb")
    except sqlglot.errors.SqlglotError:
        return quote(name)
    bare = isinstance(column, exp.Column) and column.table == name and name.isidentifier()
    return name if bare else quote(name)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def available_fields(catalog: Catalog, root) -> dict:
    """What a rule may read: per instance its score fields, and the profile attributes."""
    instances = list_instances(catalog)
    return {
        "instances": [{"name": i.name, "reference": reference(i.name),
                       "type": i.config.type,
                       "fields": [{"name": f, "type": kind, "meaning": meaning}
                                  for f, (kind, meaning) in score_fields(i).items()]}
                      for i in instances],
        "attributes": [{"name": name, "type": str(kind), "dataset": dataset}
                       for name, (kind, dataset) in _attributes(catalog, root,
                                                                instances).items()],
    }


def check_rule(catalog: Catalog, root, text: str) -> Rule:
    """Parse ``text`` against every instance's fields and the attributes; refuse a rule that
    reads no instance (it would have no population to select from)."""
    instances = {i.name: i for i in list_instances(catalog)}
    attributes = _attributes(catalog, root, list(instances.values()))
    columns: dict[str, dt.DataType] = {
        f"{name}.{field}": ibis.dtype(kind)
        for name, instance in instances.items()
        for field, (kind, _) in score_fields(instance).items()}
    columns.update({name: kind for name, (kind, _) in attributes.items()})
    condition = parse_condition(text, columns)
    used = sorted({c.rsplit(".", 1)[0] for c in condition.columns if c not in attributes})
    if not used:
        example = next(iter(instances), "purchase-30d")
        raise ConditionError(
            f"Rule '{text}' reads no instance's scores, so it would select nobody or everybody. "
            f"Name a field of an instance, e.g. {quote(example)}.bucket = 'High'.",
            token=text, condition=text)
    read = [instances[name] for name in used]
    return Rule(condition, read, _attribute_sources(condition, attributes, read, text))


def _attributes(catalog: Catalog, root, instances: list[Instance]) -> dict:
    """Attribute -> (type, dataset) over the instances' profiles datasets, first one wins."""
    found: dict[str, tuple[dt.DataType, str]] = {}
    for dataset_name in dict.fromkeys(i.config.datasets.profiles for i in instances):
        if not dataset_name:
            continue
        try:
            dataset = get_dataset(catalog, root, dataset_name)
        except NotFoundError:
            continue
        for column in dataset.columns:
            if column["name"] not in NOT_ATTRIBUTES and "." not in column["name"]:
                found.setdefault(column["name"], (ibis.dtype(column["type"]), dataset_name))
    return found


def _attribute_sources(condition: Condition, attributes: dict, used: list[Instance],
                       text: str) -> dict[str, str]:
    """Each attribute the rule reads must come with the profiles of an instance it reads."""
    datasets = {i.config.datasets.profiles for i in used}
    sources = {}
    for column in condition.columns:
        if column not in attributes:
            continue
        dataset = attributes[column][1]
        if dataset not in datasets:
            raise ConditionError(
                f"Attribute '{column}' comes from profiles dataset '{dataset}', which none of "
                f"the instances in rule '{text}' ({', '.join(i.name for i in used)}) uses.",
                token=column, condition=text)
        sources[column] = dataset
    return sources
