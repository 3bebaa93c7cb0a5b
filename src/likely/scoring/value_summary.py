"""A lifetime-value run at a glance: what the dashboard's "Lifetime value" card shows.

For a successful ``type: clv`` run, read once through the engine and kept next to its outputs
(``value_summary.json``, a few kilobytes, like ``summary.json``) so pages answer in milliseconds:

- ``distribution``: profiles per predicted-value bin, split by bucket. Spend is heavy-tailed, so
  bins are log-spaced from the 1st percentile to the largest value (the first bin also holds
  everything below, the last its top edge): a few big spenders do not squeeze everyone else into
  one bar;
- ``buckets``: each value bucket's profiles, share, total and mean predicted value, and its share
  of all predicted value;
- ``behaviours``: the run's weightiest behaviours from ``factors.json`` (contributions are in
  log-value);
- ``models``: the holdout comparison of the trees and the BG/NBD × Gamma-Gamma baseline, the
  five metrics side by side, and which one was chosen.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis

from likely.catalog import Catalog
from likely.engine import read_parquet
from likely.errors import ConfigError
from likely.features.plan import behaviour_words
from likely.scoring.instances import Instance
from likely.scoring.outputs import FACTORS_FILE, SCORES_FILE
from likely.scoring.results import successful_run
from likely.scoring.scores import BUCKETS
from likely.storage import write_json

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

VALUE_SUMMARY_FILE = "value_summary.json"
VALUE_SUMMARY_VERSION = 2
VALUE_BINS = 30
LOW_QUANTILE = 0.01  # the first edge: values below it share the first bin
TOP_BEHAVIOURS = 8
#: The holdout metrics compared, in the order the card lists them, and which way is better.
METRICS = {"gini": ("Normalised Gini", "higher"), "spearman": ("Spearman", "higher"),
           "decile_mape": ("Decile MAPE", "lower"),
           "top_decile_capture": ("Top-decile capture", "higher"),
           "predicted_total": ("Predicted total", "closer to actual")}
MODELS = {"trees": "Trees on behaviour", "btyd": "BG/NBD × Gamma-Gamma"}


def value_summary(catalog: Catalog, con: BaseBackend, root: Path, instance: Instance,
                  run_id: str | None = None) -> dict[str, Any]:
    """The Lifetime value card of a successful clv run (default: the current one), built on
    first request and kept in the run's folder.

    >>> card = value_summary(catalog, con, root, instance)        # doctest: +SKIP
    >>> [b["value_bucket"] for b in card["buckets"]]              # doctest: +SKIP
    ['top 10%', 'next 30%', 'rest']
    """
    if instance.config.type != "clv":
        raise ConfigError(f"Instance '{instance.name}' is a {instance.config.type} instance; "
                          "only a clv (lifetime value) instance predicts value.")
    run, folder = successful_run(catalog, root, instance, run_id, "predicted no value")
    kept = _read(folder)
    if kept is None:
        kept = build_value_summary(con, folder, run.metrics)
        write_json(kept, folder / VALUE_SUMMARY_FILE)
    return {**kept, "instance": instance.name, "run_id": run.id, "score_date": run.as_of,
            "horizon_days": instance.config.horizon_days}


def build_value_summary(con: BaseBackend, folder: Path, metrics: dict[str, Any]
                        ) -> dict[str, Any]:
    """Aggregate one clv run's outputs (see the module docstring)."""
    scores = read_parquet(con, [folder / SCORES_FILE])
    totals = scores.aggregate(profiles=scores.count(), total=scores.predicted_value.sum(),
                              low=scores.predicted_value.quantile(LOW_QUANTILE),
                              high=scores.predicted_value.max()).to_pyarrow().to_pylist()[0]
    profiles, total = int(totals["profiles"]), float(totals["total"] or 0.0)
    edges = log_edges(totals["low"], totals["high"])
    return {
        "version": VALUE_SUMMARY_VERSION, "scored_profiles": profiles,
        "predicted_value_total": total,
        "predicted_value_mean": total / profiles if profiles else None,
        "distribution": _distribution(scores, edges),
        "buckets": _buckets(scores, profiles, total),
        "behaviours": _behaviours(folder / FACTORS_FILE, metrics),
        "models": compare_models(metrics),
    }


def log_edges(low: float | None, high: float | None, bins: int = VALUE_BINS) -> list[float]:
    """Bin edges from ``low`` to ``high``, evenly spaced on a log scale, each rounded to three
    significant figures (readable labels, and the same edges the counts used)."""
    if high is None or not math.isfinite(high):
        return []
    floor = max(low or 0.0, high * 1e-4, 1e-9)
    if high <= floor:
        return [_round(high)]
    step = (math.log(high) - math.log(floor)) / bins
    edges = [_round(math.exp(math.log(floor) + i * step)) for i in range(bins)] + [high]
    return sorted(set(edges))


def bin_index(value: ir.FloatingColumn, edges: list[float]) -> ir.IntegerColumn:
    """Bin i holds [edges[i], edges[i+1]); the first also holds what is below, the last its top
    edge (as ``numpy.searchsorted(edges[1:-1], value, side='right')``)."""
    cases = [(value < edge, i) for i, edge in enumerate(edges[1:-1])]
    return ibis.cases(*cases, else_=max(len(edges) - 2, 0)) if cases else ibis.literal(0)


def compare_models(metrics: dict[str, Any]) -> dict[str, Any]:
    """The holdout's five metrics for both value models side by side, and the one chosen."""
    models = metrics.get("value_models") or {}
    holdout = metrics.get("holdout") or {}
    chosen = models.get("chosen") or holdout.get("model")
    rows = [{"metric": key, "label": label, "better": better,
             **{name: (models.get(name) or {}).get(key) for name in MODELS}}
            for key, (label, better) in METRICS.items()]
    actual = next((m["actual_total"] for m in (models.get(n) or {} for n in MODELS)
                   if "actual_total" in m), holdout.get("actual_total"))
    return {"chosen": chosen, "chosen_name": MODELS.get(chosen or "", chosen),
            "models": [{"model": key, "name": name} for key, name in MODELS.items()],
            "compared_on": models.get("compared_on", "holdout"),
            "metrics": rows, "actual_total": actual, "rows": holdout.get("rows"),
            "buyers": holdout.get("buyers"), "out_of_time": holdout.get("out_of_time")}


# -- the parts ------------------------------------------------------------------------------------


def _distribution(scores: ir.Table, edges: list[float]) -> dict[str, Any]:
    if not edges:
        return {"edges": [], "labels": [], "counts": {b: [] for b in BUCKETS}, "value": []}
    bins = max(len(edges) - 1, 1)
    binned = scores.mutate(_bin=bin_index(scores.predicted_value, edges))
    grouped = binned.group_by(["_bin", "bucket"]).aggregate(
        profiles=binned.count(), value=binned.predicted_value.sum())
    counts = {b: [0] * bins for b in BUCKETS}
    value = [0.0] * bins
    for row in grouped.to_pyarrow().to_pylist():
        counts.setdefault(row["bucket"], [0] * bins)[int(row["_bin"])] += int(row["profiles"])
        value[int(row["_bin"])] += float(row["value"] or 0.0)
    return {"edges": edges, "labels": _labels(edges), "counts": counts,
            "value": [round(v, 2) for v in value]}


def _buckets(scores: ir.Table, profiles: int, total: float) -> list[dict[str, Any]]:
    v = scores.predicted_value
    grouped = scores.group_by(["bucket", "value_bucket"]).aggregate(
        profiles=scores.count(), total=v.sum(), mean=v.mean(), min=v.min(), max=v.max(),
        expected_purchases=scores.expected_purchases.mean(),
        probability_active=scores.probability_active.mean())
    found = {r["bucket"]: r for r in grouped.to_pyarrow().to_pylist()}
    out = []
    for name in reversed(BUCKETS):  # High (the most valuable) first
        r = found.get(name)
        n = int(r["profiles"]) if r else 0
        out.append({
            "bucket": name, "value_bucket": r["value_bucket"] if r else None, "profiles": n,
            "share_pct": round(100 * n / profiles, 2) if profiles else None,
            "predicted_value_total": float(r["total"]) if r else 0.0,
            "predicted_value_mean": float(r["mean"]) if r else None,
            "predicted_value_min": float(r["min"]) if r else None,
            "predicted_value_max": float(r["max"]) if r else None,
            "value_share_pct": round(100 * float(r["total"]) / total, 2) if r and total
            else None,
            "expected_purchases_mean": r["expected_purchases"] if r else None,
            "probability_active_mean": r["probability_active"] if r else None})
    return out


def _behaviours(path: Path, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The weightiest behaviours of factors.json, each with its strongest factors' names; none
    when the baseline was chosen (it gives no reasons)."""
    if not path.exists() or (metrics.get("holdout") or {}).get("model") == "btyd":
        return []
    document = json.loads(path.read_text())
    names = {f["factor"]: f.get("name", f["factor"]) for f in document.get("factors", [])}
    sources = [s for s in document.get("sources", []) if s.get("mean_abs_shap", 0) > 0]
    whole = sum(s["mean_abs_shap"] for s in sources) or 1.0
    return [{"behaviour": s.get("name") or behaviour_words(s["source"]),
             "weight": s["mean_abs_shap"],
             "share_pct": s.get("share_pct", round(100 * s["mean_abs_shap"] / whole, 2)),
             "factors": [names.get(f, f) for f in s.get("top_factors", [])[:3]]}
            for s in sources[:TOP_BEHAVIOURS]]


def _labels(edges: list[float]) -> list[str]:
    """"under 0.52", "0.52–0.68", …: the first bin holds everything below its top edge."""
    if len(edges) == 1:
        return [_number(edges[0])]
    labels = [f"{_number(lo)}–{_number(hi)}" for lo, hi in itertools.pairwise(edges)]
    return [f"under {_number(edges[1])}", *labels[1:]]


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _round(value: float) -> float:
    """Three significant figures."""
    if value == 0:
        return 0.0
    return round(value, 2 - math.floor(math.log10(abs(value))))


def _read(folder: Path) -> dict[str, Any] | None:
    path = folder / VALUE_SUMMARY_FILE
    if not path.exists():
        return None
    kept = json.loads(path.read_text())
    return kept if kept.get("version") == VALUE_SUMMARY_VERSION else None
