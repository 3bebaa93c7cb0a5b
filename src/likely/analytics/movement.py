"""How profiles move between runs: bucket flows (a Sankey) and bucket overlaps (a Venn)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis

from likely.analytics.scope import ORDER, Filter, Scope, run_line
from likely.catalog import Catalog
from likely.data.schema import PROFILE_ID
from likely.errors import ConfigError
from likely.scoring.instances import Instance

if TYPE_CHECKING:
    from ibis.backends import BaseBackend

Runs = str | Sequence[str] | None
NOT_SCORED = "Not scored"
STATES = (*ORDER, NOT_SCORED)
MAX_OVERLAP_RUNS = 10
DEFAULT_OVERLAP_RUNS = 3


def flow(catalog: Catalog, con: BaseBackend, root: Path, instance: Instance,
         flt: Filter | None = None, runs: Runs = None) -> dict[str, Any]:
    """Bucket transitions between each consecutive pair of the chosen runs (default: the newest
    two). A profile scored in only one run of a pair comes from or goes to "Not scored". With a
    filter, a transition counts when the profile passes it at either end of the pair (so
    ``bucket=High`` shows who entered and who left High)."""
    scope, flt = Scope(catalog, con, root, instance), flt or Filter()
    chosen = scope.select(runs, 2)
    if len(chosen) < 2:
        raise ConfigError(f"A flow needs two runs; '{instance.name}' has "
                          f"{len(scope.runs)} successful run(s) and {len(chosen)} chosen.")
    last = len(chosen) - 1
    base = scope.scores(chosen)
    staged = base.select(PROFILE_ID, "bucket", stage=Scope.stage(base, chosen))
    src = staged.filter(staged.stage < last).select(
        _from_id=staged[PROFILE_ID], _from_pair=staged.stage, _from=staged.bucket)
    dst = staged.filter(staged.stage > 0).select(
        _to_id=staged[PROFILE_ID], _to_pair=(staged.stage - 1).cast("int32"), _to=staged.bucket)
    joined = src.outer_join(dst, [src._from_id == dst._to_id, src._from_pair == dst._to_pair])
    moves = joined.select(
        profile_id=ibis.coalesce(joined._from_id, joined._to_id),
        pair=ibis.coalesce(joined._from_pair, joined._to_pair),
        from_bucket=joined._from.fill_null(NOT_SCORED),
        to_bucket=joined._to.fill_null(NOT_SCORED))
    if not flt.empty:
        passing = scope.rows(chosen, flt)
        passing = passing.select(PROFILE_ID, stage=Scope.stage(passing, chosen))
        # the pairs a passing row belongs to: as the "from" end, and as the "to" end
        keys = ibis.union(passing.select(PROFILE_ID, pair=passing.stage),
                          passing.select(PROFILE_ID, pair=(passing.stage - 1).cast("int32")),
                          distinct=True)
        moves = moves.view().semi_join(keys, [PROFILE_ID, "pair"])
    grouped = moves.group_by(["pair", "from_bucket", "to_bucket"]).aggregate(
        profiles=lambda t: t.count())
    counts = {(r["pair"], r["from_bucket"], r["to_bucket"]): r["profiles"]
              for r in grouped.to_pyarrow().to_pylist()}
    transitions, pairs = [], []
    for i in range(last):
        before, after = chosen[i], chosen[i + 1]
        mine = {(f, t): n for (p, f, t), n in counts.items() if p == i}
        for f in STATES:
            for t in STATES:
                if mine.get((f, t)):
                    transitions.append({"from_date": before.as_of, "to_date": after.as_of,
                                        "from": f, "to": t, "profiles": mine[(f, t)]})
        pairs.append({"from": run_line(before), "to": run_line(after),
                      "profiles": sum(mine.values()),
                      "stayed": sum(n for (f, t), n in mine.items() if f == t),
                      "moved": sum(n for (f, t), n in mine.items()
                                   if f != t and NOT_SCORED not in (f, t)),
                      "entered": sum(n for (f, _), n in mine.items() if f == NOT_SCORED),
                      "left": sum(n for (_, t), n in mine.items() if t == NOT_SCORED),
                      "up": sum(n for (f, t), n in mine.items() if _rank(t) > _rank(f) >= 0),
                      "down": sum(n for (f, t), n in mine.items() if 0 <= _rank(t) < _rank(f))})
    return scope.envelope("flow", flt, chosen, states=list(STATES), pairs=pairs,
                          transitions=transitions)


def overlap(catalog: Catalog, con: BaseBackend, root: Path, instance: Instance,
            flt: Filter | None = None, runs: Runs = None) -> dict[str, Any]:
    """Who is in a bucket (the filter's bucket, else High) in each of the chosen runs (default:
    the newest three): every region of the Venn diagram, i.e. the profiles in exactly those runs'
    bucket, counted. Beyond three runs the same regions are listed for UpSet-style bars (the
    non-empty ones, largest first)."""
    scope, flt = Scope(catalog, con, root, instance), flt or Filter()
    chosen = scope.select(runs, DEFAULT_OVERLAP_RUNS)
    if len(chosen) > MAX_OVERLAP_RUNS:
        raise ConfigError(f"Overlap compares up to {MAX_OVERLAP_RUNS} runs, not "
                          f"{len(chosen)}: choose fewer with runs=…")
    bucket = flt.bucket or "High"
    flt = flt.with_bucket(bucket)
    t = scope.rows(chosen, flt)
    bit = ibis.cases(*[(t.score_date == ibis.literal(date.fromisoformat(r.as_of)), 2 ** i)
                       for i, r in enumerate(chosen)], else_=0)
    per_profile = t.select(PROFILE_ID, bit=bit).group_by(PROFILE_ID).aggregate(
        mask=lambda g: g.bit.sum())
    grouped = per_profile.group_by("mask").aggregate(profiles=lambda g: g.count())
    found = {int(r["mask"]): int(r["profiles"]) for r in grouped.to_pyarrow().to_pylist()}
    k = len(chosen)
    masks = [sum(2 ** i for i in combo) for size in range(1, k + 1)
             for combo in combinations(range(k), size)]
    regions = [{"in": [chosen[i].as_of for i in range(k) if m >> i & 1],
                "mask": [bool(m >> i & 1) for i in range(k)], "profiles": found.get(m, 0)}
               for m in masks if k <= 3 or found.get(m)]
    if k > 3:
        regions.sort(key=lambda r: (-r["profiles"], r["mask"]))
    sizes = [sum(n for m, n in found.items() if m >> i & 1) for i in range(k)]
    return scope.envelope("overlap", flt, chosen, bucket=bucket, sizes=sizes,
                          union=sum(found.values()), in_all=found.get(2 ** k - 1, 0),
                          regions=regions)


def _rank(state: str) -> int:
    return {"Low": 0, "Medium": 1, "High": 2}.get(state, -1)
