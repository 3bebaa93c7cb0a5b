"""How the scores of a filtered population look over time: trend, distribution, reasons, cohorts.

Each function aggregates in the engine and returns a plain, JSON-ready dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis

from likely.analytics.scope import ORDER, SCORE_DATE, Filter, Scope, iso, run_line
from likely.catalog import Catalog
from likely.errors import ConfigError
from likely.scoring.instances import Instance

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

Runs = str | Sequence[str] | None
NO_REASON = "(no reason)"
OTHER_REASONS = "other reasons"
MISSING = "(missing)"
OTHER = "(other)"
DEFAULT_DISTRIBUTION_RUNS = 4


def trend(catalog: Catalog, con: BaseBackend, root: Path, instance: Instance,
          flt: Filter | None = None, runs: Runs = None) -> dict[str, Any]:
    """Per score date: profiles per bucket, mean score and mean probability (default: every
    run)."""
    scope, flt = Scope(catalog, con, root, instance), flt or Filter()
    chosen = scope.select(runs)
    t = scope.rows(chosen, flt)
    grouped = t.group_by([SCORE_DATE, "bucket"]).aggregate(
        profiles=t.count(), score_sum=t.score.sum(), probability_sum=t.probability.sum())
    cells = _cells(grouped.to_pyarrow().to_pylist(), (SCORE_DATE,))
    dates = []
    for run in chosen:
        per = {b: cells.get((run.as_of, b)) or {} for b in ORDER}
        n = sum(int(c.get("profiles", 0)) for c in per.values())
        dates.append({**run_line(run), "profiles": n,
                      "buckets": {b: int(per[b].get("profiles", 0)) for b in ORDER},
                      "mean_score": _mean(per.values(), "score_sum", n),
                      "mean_probability": _mean(per.values(), "probability_sum", n)})
    return scope.envelope("trend", flt, chosen, dates=dates)


def distribution(catalog: Catalog, con: BaseBackend, root: Path, instance: Instance,
                 flt: Filter | None = None, runs: Runs = None, *,
                 bins: int = 20) -> dict[str, Any]:
    """Score histograms per run (default: the newest 4), each bin split by bucket. Bin i is
    [i·w, (i+1)·w) with w = 100 / bins; the last includes 100."""
    if not 2 <= bins <= 100:
        raise ConfigError(f"A histogram needs 2 to 100 bins, not {bins}.")
    scope, flt = Scope(catalog, con, root, instance), flt or Filter()
    chosen = scope.select(runs, DEFAULT_DISTRIBUTION_RUNS)
    width = 100.0 / bins
    t = scope.rows(chosen, flt)
    binned = t.select(SCORE_DATE, "bucket",
                      bin=ibis.least((t.score / width).floor().cast("int64"), bins - 1))
    grouped = binned.group_by([SCORE_DATE, "bin", "bucket"]).aggregate(profiles=binned.count())
    counts: dict[str, dict[str, list[int]]] = {
        r.as_of: {b: [0] * bins for b in ORDER} for r in chosen}
    for row in grouped.to_pyarrow().to_pylist():
        counts[iso(row[SCORE_DATE])][row["bucket"]][max(0, int(row["bin"]))] += row["profiles"]
    histograms = []
    for run in chosen:
        per = counts[run.as_of]
        total = [sum(per[b][i] for b in ORDER) for i in range(bins)]
        histograms.append({**run_line(run), "profiles": sum(total), "counts": total,
                           "by_bucket": per})
    return scope.envelope("distribution", flt, chosen,
                          edges=[round(i * width, 6) for i in range(bins + 1)],
                          histograms=histograms)


def reasons(catalog: Catalog, con: BaseBackend, root: Path, instance: Instance,
            flt: Filter | None = None, runs: Runs = None, *, top: int = 10) -> dict[str, Any]:
    """Top reason (the strongest behaviour) × bucket for one run (default: the newest): per
    reason the profiles whose top reason it is, and its share of each bucket's profiles."""
    scope, flt = Scope(catalog, con, root, instance), flt or Filter()
    chosen = scope.select(runs, 1)
    if len(chosen) != 1:
        raise ConfigError("Reasons are shown for one run: give one run id or score date.")
    t = scope.rows(chosen, flt)
    reason = t.influential_factors[0].behaviour.fill_null(NO_REASON)
    grouped = (t.select("bucket", reason=reason).group_by(["reason", "bucket"])
               .aggregate(profiles=lambda g: g.count()))
    totals = {b: 0 for b in ORDER}
    per_reason: dict[str, dict[str, int]] = {}
    for row in grouped.to_pyarrow().to_pylist():
        totals[row["bucket"]] += row["profiles"]
        per_reason.setdefault(row["reason"], {b: 0 for b in ORDER})[row["bucket"]] += \
            row["profiles"]
    ranked = sorted(per_reason.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    shown, rest = ranked[:top], ranked[top:]
    if rest:
        merged = {b: sum(counts[b] for _, counts in rest) for b in ORDER}
        shown.append((OTHER_REASONS, merged))
    everyone = sum(totals.values())
    lines = [{"reason": name, "profiles": sum(counts.values()),
              "share_pct": _pct(sum(counts.values()), everyone),
              "by_bucket": {b: {"profiles": counts[b], "share_pct": _pct(counts[b], totals[b])}
                            for b in ORDER}}
             for name, counts in shown]
    return scope.envelope("reasons", flt, chosen, run=run_line(chosen[0]), profiles=everyone,
                          buckets=totals, reasons=lines, other_reasons=len(rest))


def cohorts(catalog: Catalog, con: BaseBackend, root: Path, instance: Instance,
            flt: Filter | None = None, runs: Runs = None, *, attribute: str | None = None,
            top: int = 12) -> dict[str, Any]:
    """Per value of a profile attribute (as known at each score date), per score date: profiles,
    mean probability and score, bucket counts and shares. A date attribute is grouped by month
    (e.g. signup month): the newest ``top`` months, the older ones as one "before …" group;
    other attributes keep their ``top`` most common values and group the rest as "(other)",
    both decided over the profiles dataset as known at the newest chosen score date. A profile
    without a value (or unknown to the profiles dataset) at a date is "(missing)" there."""
    scope, flt = Scope(catalog, con, root, instance), flt or Filter()
    if not attribute:
        raise ConfigError("Cohorts need a profile attribute to group by, e.g. "
                          f"{_example(scope)}.")
    kind = scope.check_attribute(attribute)
    chosen = scope.select(runs)
    monthly = kind.is_temporal()

    def label(value: ir.Value) -> ir.StringValue:
        return value.truncate("M").strftime("%Y-%m") if monthly else value.cast("string")

    # which values stay apart: decided over the profiles dataset as known at the newest date
    at = scope.attributes_at(date.fromisoformat(chosen[-1].as_of))
    values = at.select(value=label(at[attribute])).filter(lambda t: t.value.notnull())
    distinct = values.group_by("value").aggregate(profiles=lambda t: t.count())
    distinct = distinct.mutate(values=distinct.value.count().over(ibis.window()))
    order = [ibis.desc("value")] if monthly else [ibis.desc("profiles"), "value"]
    first = distinct.order_by(order).limit(top).to_pyarrow().to_pylist()
    kept = [r["value"] for r in first]
    grouped_away = int(first[0]["values"]) - len(kept) if first else 0
    if monthly:  # shown oldest first
        kept.sort()
    other = f"before {kept[0]}" if monthly and kept else OTHER

    def derive(t: ir.Table) -> dict[str, ir.Value]:
        name = label(t[attribute])
        return {"_cohort": ibis.ifelse(name.isin(kept), name, ibis.literal(other))
                if grouped_away else name}

    t = scope.rows(chosen, flt, attributes=[attribute], derive=derive)
    t = t.select(SCORE_DATE, "bucket", "score", "probability", "_cohort",
                 missing=t[f"_a_{attribute}"].isnull())
    grouped = t.group_by([SCORE_DATE, "_cohort", "missing", "bucket"]).aggregate(
        profiles=t.count(), score_sum=t.score.sum(), probability_sum=t.probability.sum())
    cells: dict[tuple, dict[str, Any]] = {}
    for row in grouped.to_pyarrow().to_pylist():  # unknown values count as "(missing)"
        key = (iso(row[SCORE_DATE]), MISSING if row["missing"] else row["_cohort"], row["bucket"])
        cell = cells.setdefault(key, {"profiles": 0, "score_sum": 0.0, "probability_sum": 0.0})
        for column in cell:
            cell[column] += row[column] or 0
    names = ([other] if grouped_away and monthly else []) + kept + (
        [other] if grouped_away and not monthly else [])
    if any(key[1] == MISSING for key in cells):
        names.append(MISSING)
    series = []
    for name in names:
        points = []
        for run in chosen:
            per = {b: cells.get((run.as_of, name, b)) or {} for b in ORDER}
            n = sum(int(c.get("profiles", 0)) for c in per.values())
            counts = {b: int(per[b].get("profiles", 0)) for b in ORDER}
            points.append({**run_line(run), "profiles": n, "buckets": counts,
                           "shares_pct": {b: _pct(counts[b], n) for b in ORDER},
                           "mean_probability": _mean(per.values(), "probability_sum", n),
                           "mean_score": _mean(per.values(), "score_sum", n)})
        series.append({"value": name, "profiles": sum(p["profiles"] for p in points),
                       "points": points})
    return scope.envelope("cohorts", flt, chosen, attribute=attribute,
                          by="month" if monthly else "value", values=names,
                          grouped_values=grouped_away, series=series)


# -- helpers ------------------------------------------------------------------------------------


def _cells(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[tuple, dict[str, Any]]:
    """Aggregated rows keyed by (*keys, bucket), dates as ISO text."""
    return {(*[iso(r[k]) for k in keys], r["bucket"]): r for r in rows}


def _mean(cells, column: str, n: int) -> float | None:
    return sum(float(c.get(column) or 0.0) for c in cells) / n if n else None


def _pct(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def _example(scope: Scope) -> str:
    try:
        names = sorted(scope.attribute_types)
    except ConfigError:
        return "loyalty_tier"
    return ", ".join(names[:4]) or "loyalty_tier"
