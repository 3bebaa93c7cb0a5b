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
CODES = {"Low": 1, "Medium": 2, "High": 3}
MAX_FLOW_RUNS = 31  # 4^31 still fits a 64-bit integer
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
    if len(chosen) > MAX_FLOW_RUNS:
        raise ConfigError(f"A flow follows up to {MAX_FLOW_RUNS} runs at once, not "
                          f"{len(chosen)}: choose fewer with runs=…")
    last = len(chosen) - 1
    # one number per profile: its state at run i (0 not scored, 1 Low, 2 Medium, 3 High) is
    # digit i in base 4, so the 20M rows of 20 runs become 1M paths, read pair by pair
    base = scope.scores(chosen)
    state = ibis.cases(*[(base.bucket == b, CODES[b]) for b in ORDER], else_=0).cast("int64")
    paths = (base.select(PROFILE_ID, part=state * _weights(base, chosen, 4))
             .group_by(PROFILE_ID).aggregate(path=lambda t: t.part.sum().cast("int64")))
    keys = ["path"]
    if not flt.empty:  # the runs at which each profile passes the filter, as bits
        passing = scope.rows(chosen, flt)
        passed = (passing.select(PROFILE_ID, bit=_weights(passing, chosen, 2))
                  .group_by(PROFILE_ID).aggregate(passed=lambda t: t.bit.sum().cast("int64")))
        paths = paths.join(passed, PROFILE_ID)
        keys.append("passed")
    # profiles that took the same path count together: far fewer paths than profiles
    counted = paths.group_by(keys).aggregate(n=lambda t: t.count())
    pairs = ibis.memtable({"pair": list(range(last)), "shift": [2 * i for i in range(last)]},
                          schema={"pair": "int64", "shift": "int64"})
    crossed = counted.cross_join(pairs)
    if not flt.empty:  # it passes at either end of the pair: bit i or bit i + 1
        crossed = crossed.filter(((crossed.passed >> crossed.pair) & 3) > 0)
    moves = crossed.select("pair", "n", before=(crossed.path >> crossed.shift) & 3,
                           after=(crossed.path >> (crossed.shift + 2)) & 3)
    moves = moves.filter((moves.before > 0) | (moves.after > 0))
    grouped = moves.group_by(["pair", "before", "after"]).aggregate(
        profiles=lambda t: t.n.sum())
    names = {code: name for name, code in CODES.items()} | {0: NOT_SCORED}
    counts = {(r["pair"], names[r["before"]], names[r["after"]]): r["profiles"]
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
    per_profile = t.select(PROFILE_ID, bit=_weights(t, chosen, 2)).group_by(PROFILE_ID).aggregate(
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


def _weights(table, runs, base: int):
    """``base`` to the power of each row's run index among ``runs`` (by its score date)."""
    return ibis.cases(*[(table.score_date == ibis.literal(date.fromisoformat(r.as_of)),
                         ibis.literal(base ** i, "int64")) for i, r in enumerate(runs)],
                      else_=ibis.literal(0, "int64"))


def _rank(state: str) -> int:
    return {"Low": 0, "Medium": 1, "High": 2}.get(state, -1)
