"""A run's summary: everything the dashboard shows about a run, aggregated once when it ends.

Pages must answer in milliseconds with a million scored profiles, so nothing they show is computed
per request. At the end of a run (or the first time an older run is shown) this module reads the
run's outputs once through the engine and writes ``summary.json``: bucket counts, the score
histogram, the targeting curve, each bucket's most influential behaviours, and the value
distribution of their factors per bucket. It is a few tens of kilobytes whatever the population.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from likely.data.schema import PROFILE_ID
from likely.engine import read_parquet
from likely.scoring.scores import BUCKETS
from likely.storage import write_json

if TYPE_CHECKING:
    import ibis.expr.types as ir
    from ibis.backends import BaseBackend

SUMMARY_FILE = "summary.json"
SUMMARY_VERSION = 1
HISTOGRAM_BINS = 50  # score bins of width 2
TOP_BUCKET_FACTORS = 10
VALUE_BINS = 10  # at most this many value bins per numeric factor (quantile edges)
THRESHOLD_STEP = 0.5  # the targeting curve has a point at every half score point...
CURVE_SIZES = 200  # ...and at this many audience sizes spread geometrically


@dataclass(frozen=True)
class RunFiles:
    """The files of one finished run that a summary is built from."""

    folder: Path
    scores: Path
    features: Path
    factors: Path


#: What the "expected" figures add up: goal profiles (probabilities), or predicted value (clv).
MEASURES = {"clv": "predicted_value"}


def build_summary(con: BaseBackend, files: RunFiles, *, run_id: str, kind: str,
                  cutoffs: tuple[float, float]) -> dict[str, Any]:
    """Aggregate a run's outputs into the dashboard's summary (see the module docstring)."""
    scores = read_parquet(con, [files.scores])
    measure = MEASURES.get(kind, "probability")
    frame = scores.select(measure, "score", "bucket").to_pyarrow()
    probability = np.nan_to_num(frame.column(measure).to_numpy(zero_copy_only=False)
                                .astype(float))
    score = frame.column("score").to_numpy()
    bucket = np.asarray(frame.column("bucket").to_numpy(zero_copy_only=False), dtype=object)
    known = _known_factors(files.factors, run_id)
    sizes = {name: int((bucket == name).sum()) for name in BUCKETS}
    bucket_factors = _bucket_factors(scores, sizes, known)
    wanted = list(dict.fromkeys(f["factor"] for fs in bucket_factors.values() for f in fs))
    distributions = _distributions(con, files, wanted, known)
    for entries in bucket_factors.values():
        for entry in entries:
            entry["headline"] = distributions.get(entry["factor"], {}).get("headline")
    return {
        "version": SUMMARY_VERSION, "run_id": run_id, "type": kind, "measure": measure,
        "scored_profiles": int(probability.size), "bucket_cutoffs": list(cutoffs),
        "expected_goal_profiles": float(probability.sum()),
        "buckets": _bucket_counts(probability, score, bucket),
        "histogram": _histogram(score, bucket),
        "targeting": targeting_curve(probability, score),
        "bucket_factors": bucket_factors,
        "distributions": distributions,
    }


def write_summary(summary: dict[str, Any], folder: Path) -> Path:
    return write_json(summary, folder / SUMMARY_FILE)


def read_summary(folder: Path) -> dict[str, Any] | None:
    """The stored summary, or None when the run predates summaries (or an older version)."""
    path = folder / SUMMARY_FILE
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    return summary if summary.get("version") == SUMMARY_VERSION else None


# -- buckets, histogram, targeting ----------------------------------------------------------------


def _bucket_counts(probability: np.ndarray, score: np.ndarray,
                   bucket: np.ndarray) -> list[dict[str, Any]]:
    total = max(int(probability.size), 1)
    out = []
    for name in reversed(BUCKETS):  # High first: the order a marketer reads them
        mask = bucket == name
        n = int(mask.sum())
        out.append({
            "bucket": name, "profiles": n, "share_pct": round(100 * n / total, 2),
            "mean_probability": float(probability[mask].mean()) if n else None,
            "expected_goal_profiles": float(probability[mask].sum()),
            "score_min": float(score[mask].min()) if n else None,
            "score_max": float(score[mask].max()) if n else None,
        })
    return out


def _histogram(score: np.ndarray, bucket: np.ndarray) -> dict[str, Any]:
    edges = np.linspace(0.0, 100.0, HISTOGRAM_BINS + 1)
    counts = {}
    for name in BUCKETS:
        hist, _ = np.histogram(score[bucket == name], bins=edges)
        counts[name] = hist.astype(int).tolist()
    return {"edges": edges.tolist(), "counts": counts}


def targeting_curve(probability: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """Audience size and expected goal profiles when targeting from the top score down.

    Points sit at every half score point (thresholds) and at geometric audience sizes, so both a
    threshold and an audience size can be looked up with linear interpolation between points.
    """
    order = np.lexsort((-probability, -score))
    ranked_p, ranked_s = probability[order], score[order]
    n = int(probability.size)
    cumulative = np.concatenate([[0.0], np.cumsum(ranked_p)])
    thresholds = np.arange(100.0, -THRESHOLD_STEP, -THRESHOLD_STEP)
    at_threshold = n - np.searchsorted(ranked_s[::-1], thresholds, side="left")
    geometric = np.unique(np.geomspace(1, max(n, 1), CURVE_SIZES).round().astype(int))
    sizes = np.unique(np.concatenate([[0], at_threshold, geometric[geometric <= n], [n]]))
    score_at = np.full(sizes.shape, 100.0)
    score_at[sizes > 0] = ranked_s[sizes[sizes > 0] - 1]
    return {"profiles": sizes.astype(int).tolist(),
            "expected": cumulative[sizes].round(4).tolist(),
            "score": score_at.round(2).tolist(),
            "total_expected": float(cumulative[-1])}


def target(curve: dict[str, Any], *, size: int | None = None,
           threshold: float | None = None) -> dict[str, Any]:
    """What an audience buys: its size, expected goal profiles, precision and capture share.

    Give an audience ``size`` (the top N by score) or a score ``threshold`` (everyone at or
    above it). Thresholds on the curve's half-point grid are exact; between grid points the
    audience is the largest one on the curve whose lowest score reaches the threshold.
    """
    sizes = np.asarray(curve["profiles"], dtype=float)
    expected = np.asarray(curve["expected"], dtype=float)
    scores = np.asarray(curve["score"], dtype=float)
    total = sizes[-1] if sizes.size else 0.0
    if threshold is not None:
        reached = sizes[scores >= threshold]
        size_f = float(reached.max()) if reached.size else 0.0
    else:
        size_f = float(min(max(size or 0, 0), total))
    got = float(np.interp(size_f, sizes, expected)) if sizes.size else 0.0
    lowest = float(np.interp(size_f, sizes[1:], scores[1:])) if sizes.size > 1 else None
    all_expected = float(curve["total_expected"])
    return {"profiles": round(size_f), "share_of_scored_pct": _pct(size_f, total),
            "expected_goal_profiles": round(got, 2),
            "expected_precision": round(got / size_f, 4) if size_f else None,
            "captured_pct": _pct(got, all_expected),
            "lowest_score": round(lowest, 2) if lowest is not None and size_f else None,
            "scored_profiles": int(total), "total_expected_goal_profiles": round(all_expected, 2)}


def _pct(part: float, whole: float) -> float | None:
    return round(float(100 * part / whole), 2) if whole else None


# -- factors per bucket -------------------------------------------------------------------------


def _known_factors(path: Path, run_id: str) -> dict[str, dict[str, Any]]:
    """factors.json by factor id: name, kind, and ``by_bucket`` where this run computed it
    (only a factors.json generated for ``run_id`` describes the same scores)."""
    if not path.exists():
        return {}
    document = json.loads(path.read_text())
    same_run = document.get("generated_for") == run_id
    return {f["factor"]: f if same_run else {k: v for k, v in f.items() if k != "by_bucket"}
            for f in document["factors"]}


def _bucket_factors(scores: ir.Table, sizes: dict[str, int], known: dict[str, dict[str, Any]],
                    ) -> dict[str, list[dict[str, Any]]]:
    """Each bucket's most influential behaviours, from the reasons its profiles carry.

    A behaviour's weight in a bucket is the sum of |contribution| over the bucket's profiles
    whose top reasons include it, divided by the bucket's size: how much it moves this bucket's
    scores on average. Each is told through the factor that most often represents it there.
    """
    reasons = scores.select("bucket", reason=scores.influential_factors.unnest())
    reasons = reasons.select("bucket", behaviour=reasons.reason.behaviour,
                             factor=reasons.reason.factor,
                             contribution=reasons.reason.contribution)
    reasons = reasons.filter(reasons.behaviour.notnull())
    per_factor = reasons.group_by(["bucket", "behaviour", "factor"]).aggregate(
        profiles=reasons.count(), sum_abs=reasons.contribution.abs().sum(),
        total=reasons.contribution.sum())
    rows = per_factor.to_pyarrow().to_pylist()
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["bucket"], r["behaviour"])
        entry = grouped.setdefault(key, {"profiles": 0, "sum_abs": 0.0, "total": 0.0,
                                         "factor": None, "factor_profiles": -1})
        entry["profiles"] += r["profiles"]
        entry["sum_abs"] += r["sum_abs"]
        entry["total"] += r["total"]
        if (r["profiles"], r["factor"]) > (entry["factor_profiles"], entry["factor"] or ""):
            entry["factor"], entry["factor_profiles"] = r["factor"], r["profiles"]
    out: dict[str, list[dict[str, Any]]] = {b: [] for b in reversed(BUCKETS)}
    for (bucket, behaviour), e in grouped.items():
        size = max(sizes.get(bucket, 0), 1)
        out.setdefault(bucket, []).append({
            "behaviour": behaviour, "factor": e["factor"],
            "name": known.get(e["factor"], {}).get("name", e["factor"]),
            "weight": e["sum_abs"] / size,
            "reason_share_pct": round(100 * e["profiles"] / size, 2),
            "mean_contribution": e["total"] / e["profiles"],
            "direction": "+" if e["total"] >= 0 else "-",
        })
    for bucket, entries in out.items():
        entries.sort(key=lambda x: (-x["weight"], x["behaviour"]))
        out[bucket] = entries[:TOP_BUCKET_FACTORS]
    return out


# -- value distributions ------------------------------------------------------------------------


def _distributions(con: BaseBackend, files: RunFiles, factors: list[str],
                   known: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Value distributions of ``factors``; those factors.json already holds in this format
    (the run's global top factors) are reused, the others computed in the engine."""
    out, missing = {}, []
    for factor in factors:
        done = known.get(factor, {}).get("by_bucket")
        if done is not None and (done["type"] == "categorical" or "labels" in done):
            out[factor] = dict(done)
        else:
            missing.append(factor)
    if missing:
        features = read_parquet(con, [files.features])
        present = [f for f in missing if f in features.columns]
        scores = read_parquet(con, [files.scores]).select(PROFILE_ID, "bucket")
        joined = features.select(PROFILE_ID, *present).join(scores, PROFILE_ID)
        out.update(value_distributions(joined, {f: known.get(f, {}).get("kind", "numeric")
                                                for f in present}))
    for factor, dist in out.items():
        dist["name"] = known.get(factor, {}).get("name", factor)
        dist["headline"] = headline(dist)
    return {f: out[f] for f in factors if f in out}


def value_distribution(joined: ir.Table, column: str, kind: str) -> dict[str, Any]:
    """The values of one factor in each bucket (see :func:`value_distributions`)."""
    return value_distributions(joined, {column: kind})[column]


def value_distributions(joined: ir.Table, kinds: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The values of each factor of ``kinds`` (column → numeric/categorical) in each bucket:
    coverage, and shares per value bin or category.

    Numeric bins have quantile edges over all scored profiles, so heavy-tailed counts spread over
    readable bins ("0", "1", "2–4", ...) instead of one bin holding nearly everyone. Three
    queries whatever the number of factors (coverage, quantiles, counts per bin or value): one
    query per factor and step made them a third of a demo re-scoring run.
    """
    columns = list(kinds)
    names = {c: f"_f{i}" for i, c in enumerate(columns)}
    per_bucket = joined.group_by("bucket").aggregate(
        rows=joined.count(), **{names[c]: joined[c].count() for c in columns})
    coverage: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in columns}
    for r in per_bucket.to_pyarrow().to_pylist():
        for c in columns:
            coverage[c][r["bucket"]] = {"rows": int(r["rows"]), "coverage_pct": round(
                100 * r[names[c]] / max(r["rows"], 1), 2)}
    numeric = [c for c in columns if kinds[c] != "categorical"]
    edges = _quantile_edges(joined, numeric, names)
    counts = _counts(joined, columns, kinds, edges, names)
    out = {}
    for c in columns:
        rows = {b: v["rows"] for b, v in coverage[c].items()}
        if kinds[c] == "categorical":
            shares: dict[str, dict[str, float]] = {}
            for bucket, key, n in counts.get(c, []):
                label = "(missing)" if key is None else str(key)
                shares.setdefault(bucket, {})[label] = round(100 * n / rows[bucket], 2)
            out[c] = {"type": "categorical", "buckets": coverage[c], "shares_pct": shares}
        elif not edges[c]:
            out[c] = {"type": "numeric", "buckets": coverage[c], "edges": [], "labels": [],
                      "shares_pct": {}}
        else:
            bins = max(len(edges[c]) - 1, 1)
            binned: dict[str, list[float]] = {}
            for bucket, key, n in counts.get(c, []):
                binned.setdefault(bucket, [0.0] * bins)[int(key)] = round(100 * n / rows[bucket],
                                                                          2)
            out[c] = {"type": "numeric", "buckets": coverage[c], "edges": edges[c],
                      "labels": bin_labels(edges[c]), "shares_pct": binned}
    return out


def _counts(joined: ir.Table, columns: list[str], kinds: dict[str, str],
            edges: dict[str, list[float]], names: dict[str, str]) -> dict[str, list[tuple]]:
    """Rows per bucket and bin (numeric, known values) or value (categorical, missing too), for
    every factor in one grouped query over the factors stacked as (factor, key) pairs."""
    import ibis

    parts = []
    for i, c in enumerate(columns):
        col = joined[c]
        if kinds[c] == "categorical":
            key = (col if col.type().is_string() else col.cast("string"))
            part = joined.select("bucket", _factor=ibis.literal(i), _key=key)
        elif edges[c]:
            part = joined.filter(col.notnull()).select(
                "bucket", _factor=ibis.literal(i), _key=_bin_case(col, edges[c]).cast("string"))
        else:
            continue
        parts.append(part)
    if not parts:
        return {}
    stacked = parts[0] if len(parts) == 1 else ibis.union(*parts, distinct=False)
    grouped = stacked.group_by(["bucket", "_factor", "_key"]).aggregate(n=stacked.count())
    out: dict[str, list[tuple]] = {}
    for r in grouped.to_pyarrow().to_pylist():
        out.setdefault(columns[r["_factor"]], []).append((r["bucket"], r["_key"], r["n"]))
    return out


def _quantile_edges(joined: ir.Table, columns: list[str],
                    names: dict[str, str]) -> dict[str, list[float]]:
    """Up to ``VALUE_BINS + 1`` distinct quantiles of each numeric column, in one query."""
    if not columns:
        return {}
    probs = np.linspace(0, 1, VALUE_BINS + 1)
    row = joined.aggregate(**{f"{names[c]}_q{i}": joined[c].cast("float64").quantile(float(p))
                              for c in columns for i, p in enumerate(probs)})
    found = row.to_pyarrow().to_pylist()[0]
    edges = {}
    for c in columns:
        values = [found[f"{names[c]}_q{i}"] for i in range(len(probs))]
        values = [v for v in values if v is not None]
        edges[c] = ([] if not values or any(np.isnan(v) for v in values)
                    else sorted({round(float(v), 4) for v in values}))
    return edges


def _bin_case(col: ir.Column, edges: list[float]) -> ir.Column:
    """Bin i holds [edges[i], edges[i+1]); the last bin also holds the top edge."""
    import ibis

    if len(edges) == 1:
        return ibis.literal(0, "int64")
    value = col.cast("float64")
    cases = [(value < edge, i) for i, edge in enumerate(edges[1:-1])]
    return ibis.cases(*cases, else_=len(edges) - 2) if cases else ibis.literal(0, "int64")


def bin_labels(edges: list[float]) -> list[str]:
    """Readable labels: whole-number bins as "0", "2–4" and "≥ 30"; others as ranges."""
    if len(edges) == 1:
        return [_num(edges[0])]
    whole = all(float(e).is_integer() for e in edges)
    labels = []
    last = len(edges) - 2
    for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
        if whole:
            top = hi if i == last else hi - 1
            labels.append(_num(lo) if top <= lo else f"{_num(lo)}–{_num(top)}")
        else:
            labels.append(f"{_num(lo)}–{_num(hi)}")
    return labels


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def headline(dist: dict[str, Any]) -> str | None:
    """One sentence a marketer reads: where High and Low differ most.

    Numbers are cut once ("Days since last page view ≤ 2: 81% of High, 12% of Low"); categories
    are compared value by value.
    """
    shares = dist.get("shares_pct") or {}
    if "High" not in shares or "Low" not in shares:
        return None
    if dist["type"] == "categorical":
        labels = sorted(set(shares["High"]) | set(shares["Low"]))
        high = [shares["High"].get(v, 0.0) for v in labels]
        low = [shares["Low"].get(v, 0.0) for v in labels]
    else:
        labels, high, low = _cumulative(dist["edges"], shares["High"], shares["Low"])
    if not labels:
        return None
    i = int(np.argmax([abs(h - lo) for h, lo in zip(high, low)]))
    return (f"{dist.get('name', '')} {labels[i]}: {high[i]:.0f}% of High, "
            f"{low[i]:.0f}% of Low").strip()


def _cumulative(edges: list[float], high: list[float], low: list[float],
                ) -> tuple[list[str], list[float], list[float]]:
    """Shares at or below each cut, or at or above it where High is the larger side."""
    if len(high) < 2:
        return [], [], []
    whole = all(float(e).is_integer() for e in edges)
    labels, hs, ls = [], [], []
    for i in range(len(high) - 1):
        below_h, below_l = sum(high[: i + 1]), sum(low[: i + 1])
        above_h, above_l = sum(high[i + 1:]), sum(low[i + 1:])
        if below_h - below_l >= above_h - above_l:
            cut = f"≤ {_num(edges[i + 1] - 1)}" if whole else f"< {_num(edges[i + 1])}"
            labels.append(cut)
            hs.append(below_h)
            ls.append(below_l)
        else:
            labels.append(f"≥ {_num(edges[i + 1])}")
            hs.append(above_h)
            ls.append(above_l)
    return labels, hs, ls
