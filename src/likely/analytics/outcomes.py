"""Outcome tracking: what actually happened after the runs whose outcome window has passed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from likely.analytics.scope import Filter, Scope
from likely.catalog import Catalog
from likely.scoring.instances import Instance
from likely.scoring.results import performance

Runs = str | Sequence[str] | None
KEPT = ("run_id", "score_date", "measured_by", "window_days", "window_end", "profiles",
        "expected_rate", "actual_rate", "auc", "ece", "buckets", "calibration", "note")


def outcomes(catalog: Catalog, root: Path, instance: Instance, flt: Filter | None = None,
             runs: Runs = None) -> dict[str, Any]:
    """Per measured run (default: every run), oldest first: expected against actual goal rate
    per bucket, AUC, ECE and calibration on what happened (the runs' ``outcome.json``); the runs
    still waiting for their window to close under ``pending``.

    Outcomes are measured once per run for everyone it scored, so a filter does not narrow them
    (``filter_ignored`` says so when one was given)."""
    scope, flt = Scope(catalog, None, root, instance), flt or Filter()
    chosen = scope.select(runs)
    wanted = {r.id for r in chosen}
    measured = performance(catalog, root, instance)
    lines = sorted(({k: run.get(k) for k in KEPT} for run in measured["runs"]
                    if run.get("run_id") in wanted), key=lambda r: r["score_date"])
    pending = sorted((p for p in measured["pending"] if p["run_id"] in wanted),
                     key=lambda p: p["score_date"])
    return scope.envelope("outcomes", flt, chosen, window_days=measured["window_days"],
                          measured=lines, pending=pending, filter_ignored=not flt.empty)
