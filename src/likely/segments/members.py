"""Who is in a segment at a score date: the rule evaluated in the engine over run outputs.

A membership is computed from a *basis*: for every instance the rule reads, its newest
successful run scored on or before the date. Profiles any of those runs scored are candidates
(the other instances' fields read null for them); profile attributes are those known at the end
of the newest score date, as the runs read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import ibis

from likely.catalog import Catalog
from likely.conditions import compile_condition
from likely.data.datasets import get_dataset, open_dataset
from likely.data.profiles import Profiles
from likely.data.schema import PROFILE_ID
from likely.engine import read_parquet
from likely.errors import NotFoundError
from likely.scoring import records
from likely.scoring.instances import Instance
from likely.scoring.outputs import SCORES_FILE
from likely.segments.rules import Rule, score_fields

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

#: The score fields every member row carries per instance, besides those the rule reads.
SHOWN_FIELDS = ("bucket", "score", "percentile", "probability")
#: ...and per lifetime-value instance: what a customer is worth, rather than a probability.
SHOWN_VALUE_FIELDS = ("bucket", "score", "percentile", "predicted_value", "value_bucket",
                      "expected_purchases", "probability_active")


@dataclass(frozen=True)
class Basis:
    """The runs a membership is computed from, and the score date it describes."""

    runs: dict[str, records.RunRecord]  # instance name -> run

    @property
    def score_date(self) -> date:
        return max(date.fromisoformat(r.as_of) for r in self.runs.values())

    def run_ids(self) -> dict[str, str]:
        return {name: run.id for name, run in self.runs.items()}


def basis(catalog: Catalog, rule: Rule, as_of: date | None = None) -> Basis:
    """Each instance's newest successful run on or before ``as_of`` (default: its current one)."""
    runs = {}
    for instance in rule.instances:
        found = [r for r in records.successful_runs(catalog, instance.id)
                 if as_of is None or date.fromisoformat(r.as_of) <= as_of]
        if found:
            runs[instance.name] = found[-1]
    if not runs:
        names = ", ".join(i.name for i in rule.instances)
        when = f" on or before {as_of}" if as_of else ""
        raise NotFoundError(f"No scores{when} for {names}: the rule has nothing to select from. "
                            f"Run {'it' if len(rule.instances) == 1 else 'them'} first "
                            f"(`likely run NAME`).")
    return Basis(runs)


def score_dates(catalog: Catalog, rule: Rule) -> list[date]:
    """Every date any of the rule's instances has successful scores for, oldest first."""
    return sorted({date.fromisoformat(r.as_of) for i in rule.instances
                   for r in records.successful_runs(catalog, i.id)})


def members(catalog: Catalog, con: BaseBackend, root: Path, rule: Rule,
            at: Basis) -> ir.Table:
    """The members: ``profile_id``, each instance's shown fields (``<instance>.<field>``), the
    strongest reason when the rule reads reasons, and the attributes it reads; by id."""
    table = _candidates(con, root, rule, at)
    if rule.attributes:
        table = _with_attributes(catalog, con, root, rule, table, at.score_date)
    chosen = table.filter(compile_condition(rule.condition, table).fill_null(False))
    shown = [c for c in table.columns
             if c == PROFILE_ID or not c.endswith(".reasons")]
    return chosen.select(*shown).order_by(PROFILE_ID)


def _candidates(con: BaseBackend, root: Path, rule: Rule, at: Basis) -> ir.Table:
    """One row per profile scored by any basis run: the union of their ids, then each
    instance's columns left-joined (null where it did not score the profile)."""
    tables = [_instance_columns(con, root, rule, instance, at) for instance in rule.instances]
    if len(tables) == 1:
        return tables[0]
    joined = ibis.union(*[t.select(PROFILE_ID) for t in tables], distinct=True)
    for table in tables:
        joined = joined.left_join(table, PROFILE_ID)
    return joined.select(PROFILE_ID, *[c for t in tables for c in t.columns if c != PROFILE_ID])


def _instance_columns(con: BaseBackend, root: Path, rule: Rule, instance: Instance,
                      at: Basis) -> ir.Table:
    """``profile_id`` and ``<instance>.<field>`` from its basis run (all null without one)."""
    shown = shown_fields(instance)
    fields = [*shown, *[f for f in rule.fields(instance) if f not in shown]]
    run = at.runs.get(instance.name)
    if run is None:
        kinds = score_fields(instance)
        empty = ibis.memtable({PROFILE_ID: []}, schema={PROFILE_ID: "string"})
        return empty.select(PROFILE_ID, **{f"{instance.name}.{f}": ibis.null(kinds[f][0])
                                           for f in fields})
    scores = read_parquet(con, [records.run_dir(root, instance.id, run.id) / SCORES_FILE])
    values = {"top_reason": scores.influential_factors[0].behaviour,
              "reasons": scores.influential_factors.map(lambda r: r.behaviour)}
    return scores.select(PROFILE_ID, **{
        f"{instance.name}.{f}": values[f] if f in values else scores[f] for f in fields})


def shown_fields(instance: Instance) -> tuple[str, ...]:
    """The fields a member row shows of ``instance`` whatever the rule reads."""
    return SHOWN_VALUE_FIELDS if instance.config.type == "clv" else SHOWN_FIELDS


def _with_attributes(catalog: Catalog, con: BaseBackend, root: Path, rule: Rule,
                     table: ir.Table, score_date: date) -> ir.Table:
    """Left-join the attributes the rule reads, as known at the end of ``score_date``."""
    moment = datetime.combine(score_date + timedelta(days=1), time())
    for dataset_name in dict.fromkeys(rule.attributes.values()):
        wanted = [a for a, d in rule.attributes.items() if d == dataset_name]
        static = next((i.config.static_attributes for i in rule.instances
                       if i.config.datasets.profiles == dataset_name), [])
        source = open_dataset(con, get_dataset(catalog, root, dataset_name))
        at = Profiles.of(source, static).at(moment)
        known = at.select(_attribute_id=at[PROFILE_ID], **{c: at[c] for c in wanted})
        table = table.view()  # a join chain of instances is extended as a table, not re-opened
        joined = table.left_join(known, table[PROFILE_ID] == known["_attribute_id"])
        table = joined.select(*[joined[c] for c in table.columns], *[joined[c] for c in wanted])
    return table
