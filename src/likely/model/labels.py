"""Who is asked, and what the answer was: the eligible population and the goal labels.

Both are cut by an explicit ``anchor`` instant:

- the population at ``anchor`` is every profile with at least one qualifying event in
  ``[anchor - lookback, anchor)`` (or, without ``requires_activity``, every profile the profiles
  dataset knows before ``anchor``) whose profile attributes (as of ``anchor``) meet the profile
  conditions, minus those with an event meeting an exclusion before ``anchor`` (ever, or within
  the exclusion's lookback);
- the label at ``anchor`` is whether the goal happened in ``[anchor, anchor + window)``
  (inverted when the goal is that the event will *not* occur).

Leakage trap: a label looks *after* the anchor, so nothing computed here may be used as a feature;
features are built separately from events strictly before the anchor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

import ibis

from likely.conditions import Condition, combine, compile_condition
from likely.data.profiles import Profiles
from likely.data.schema import PROFILE_ID, TIMESTAMP

if TYPE_CHECKING:
    import ibis.expr.types as ir

LABEL = "label"


@dataclass(frozen=True)
class Exclusion:
    """Profiles with an event meeting ``condition`` (within ``lookback_days``, or ever) are out."""

    condition: Condition
    lookback_days: int | None = None


@dataclass(frozen=True)
class PopulationRule:
    conditions: tuple[Condition, ...]
    match: Literal["all", "any"]
    lookback_days: int
    profile_conditions: tuple[Condition, ...] = ()
    exclusions: tuple[Exclusion, ...] = ()
    requires_activity: bool = True


@dataclass(frozen=True)
class GoalRule:
    conditions: tuple[Condition, ...]
    match: Literal["all", "any"]
    occurs: bool
    window_days: int


def eligible(
    events: ir.Table, profiles: Profiles | None, rule: PopulationRule, anchor: datetime
) -> ir.Table:
    """The profiles eligible at ``anchor``: a one-column table of distinct ``profile_id``."""
    if rule.requires_activity or profiles is None:
        start = anchor - timedelta(days=rule.lookback_days)
        recent = events.filter((events[TIMESTAMP] >= start) & (events[TIMESTAMP] < anchor))
        ids = _profiles_matching(recent, rule.conditions, rule.match)
    else:
        ids = profiles.existing_at(anchor)
    if rule.profile_conditions and profiles is not None:
        current = profiles.at(anchor)
        keep = combine(list(rule.profile_conditions), "all", current)
        allowed = current.filter(keep.fill_null(False)).select(PROFILE_ID)
        ids = ids.semi_join(allowed, PROFILE_ID).select(PROFILE_ID)
    for exclusion in rule.exclusions:
        ids = ids.anti_join(_excluded(events, exclusion, anchor), PROFILE_ID).select(PROFILE_ID)
    return ids


def _excluded(events: ir.Table, exclusion: Exclusion, anchor: datetime) -> ir.Table:
    """Profiles with an event meeting the exclusion before ``anchor`` (within its lookback)."""
    before = events[TIMESTAMP] < anchor
    if exclusion.lookback_days is not None:
        before &= events[TIMESTAMP] >= anchor - timedelta(days=exclusion.lookback_days)
    past = events.filter(before)
    return _profiles_matching(past, (exclusion.condition,), "any")


def goal_met(events: ir.Table, rule: GoalRule, anchor: datetime) -> ir.Table:
    """Profiles whose goal events happened in ``[anchor, anchor + window)``."""
    end = anchor + timedelta(days=rule.window_days)
    window = events.filter((events[TIMESTAMP] >= anchor) & (events[TIMESTAMP] < end))
    return _profiles_matching(window, rule.conditions, rule.match)


def labelled(
    population: ir.Table, events: ir.Table, rule: GoalRule, anchor: datetime
) -> ir.Table:
    """``population`` with an int8 ``label``: 1 = the goal was met (as the instance defines it)."""
    met = goal_met(events, rule, anchor).mutate(_met=ibis.literal(1, "int8"))
    joined = population.left_join(met, PROFILE_ID).select(population[PROFILE_ID], "_met")
    happened = joined._met.notnull()
    label = happened if rule.occurs else ~happened
    return joined.select(PROFILE_ID, **{LABEL: label.cast("int8")})


def valued(
    population: ir.Table, events: ir.Table, rule: GoalRule, anchor: datetime, column: str
) -> ir.Table:
    """``population`` with a float64 ``label``: the net value of its goal events (purchases) in
    ``[anchor, anchor + window)``, floored at 0.

    Returns are purchases with a negative value: they net against the purchases of the same
    window, and a customer whose returns outweigh their purchases is worth 0, not less (a
    return of an earlier window's purchase does not make the customer a cost to target).
    Missing values count as 0.
    """
    end = anchor + timedelta(days=rule.window_days)
    window = events.filter((events[TIMESTAMP] >= anchor) & (events[TIMESTAMP] < end))
    hits = window.filter(combine(list(rule.conditions), rule.match, window).fill_null(False))
    spent = hits.group_by(PROFILE_ID).aggregate(_spent=hits[column].cast("float64").sum())
    joined = population.left_join(spent, PROFILE_ID).select(population[PROFILE_ID], "_spent")
    net = joined._spent.fill_null(0.0)
    return joined.select(PROFILE_ID, **{LABEL: ibis.greatest(net, 0.0).cast("float64")})


def _profiles_matching(
    events: ir.Table, conditions: Sequence[Condition], match: Literal["all", "any"]
) -> ir.Table:
    if not conditions:
        return events.select(PROFILE_ID).distinct()
    if match == "any" or len(conditions) == 1:
        return events.filter(combine(list(conditions), "any", events)).select(PROFILE_ID).distinct()
    flags = {f"_c{i}": compile_condition(c, events).any() for i, c in enumerate(conditions)}
    per_profile = events.group_by(PROFILE_ID).aggregate(**flags)
    everything = ibis.and_(*(per_profile[name] for name in flags))
    return per_profile.filter(everything).select(PROFILE_ID)
