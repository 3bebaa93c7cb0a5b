"""Analytics over an instance's score history: how scores, buckets and reasons change.

Every analytic reads the successful runs' ``scores.parquet`` (through the catalog), narrows them
with a :class:`Filter` (a segment, a bucket, a condition over profile attributes read
point-in-time), aggregates in the engine and returns a JSON-ready dict:

- :func:`trend`         bucket counts, mean score and probability per score date
- :func:`flow`          bucket transitions between consecutive runs, with "Not scored"
- :func:`overlap`       who is in a bucket across 2+ runs: every Venn region counted
- :func:`distribution`  score histograms per run
- :func:`reasons`       top reason × bucket for one run
- :func:`cohorts`       per attribute value (or signup month) over score dates
- :func:`outcomes`      actual against expected goal rates of the measured runs

:func:`analyse` runs one by name; the workspace's ``analytics`` method, the CLI
(``likely analytics KIND NAME``) and the API (``/api/instances/{name}/analytics/{kind}``) call it.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

from likely.analytics.movement import flow, overlap
from likely.analytics.outcomes import outcomes
from likely.analytics.scope import Filter, Scope
from likely.analytics.scores import cohorts, distribution, reasons, trend
from likely.catalog import Catalog
from likely.errors import ConfigError, did_you_mean
from likely.scoring.instances import Instance

if TYPE_CHECKING:
    from ibis.backends import BaseBackend

ANALYTICS = {"trend": trend, "flow": flow, "overlap": overlap, "distribution": distribution,
             "reasons": reasons, "cohorts": cohorts, "outcomes": outcomes}
KINDS = tuple(ANALYTICS)


def analyse(catalog: Catalog, con: BaseBackend, root: Path, instance: Instance, kind: str, *,
            segment: str | None = None, bucket: str | None = None, where: str | None = None,
            runs: str | list[str] | None = None, **options: Any) -> dict[str, Any]:
    """One analytic by name, with the filter and its own options (``bins`` for distribution,
    ``top`` for reasons and cohorts, ``attribute`` for cohorts)."""
    if kind not in ANALYTICS:
        raise ConfigError(f"Unknown analytic '{kind}'.{did_you_mean(kind, KINDS)} Analytics: "
                          f"{', '.join(KINDS)}.")
    function = ANALYTICS[kind]
    allowed = [p.name for p in inspect.signature(function).parameters.values()
               if p.kind is inspect.Parameter.KEYWORD_ONLY]
    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = f"takes {', '.join(allowed)}" if allowed else "takes no options"
        raise ConfigError(f"Analytic '{kind}' {takes}; not {', '.join(unknown)}.")
    flt = Filter(segment=segment, bucket=bucket, where=where)
    if kind == "outcomes":
        return outcomes(catalog, root, instance, flt, runs)
    return function(catalog, con, root, instance, flt, runs, **options)


__all__ = ["ANALYTICS", "KINDS", "Filter", "Scope", "analyse", "cohorts", "distribution", "flow",
           "outcomes", "overlap", "reasons", "trend"]
