"""From probabilities to the numbers a marketer reads: score, percentile, bucket, reason codes.

- ``score`` = 100 × probability ÷ the scored population's 99th-percentile probability, capped at
  100: relative likelihood, so "High" (≥ 75 by default) means at least three quarters as likely as
  the top 1%.
- ``percentile`` = the rank: 100 is the top 1% most likely, 1 the least likely 1%.
- ``bucket`` applies the instance's cut-offs to the score: Low < 25 ≤ Medium < 75 ≤ High.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

BUCKETS = ("Low", "Medium", "High")
TOP_FACTORS = 5

#: One influential factor of one profile, as stored in ``influential_factors``.
FACTOR_TYPE = pa.struct([
    ("factor", pa.string()),        # feature id, stable across runs
    ("name", pa.string()),          # human words
    ("value", pa.string()),         # the profile's value of the feature, as text
    ("contribution", pa.float64()),  # signed TreeSHAP contribution (log-odds)
    ("direction", pa.string()),     # "+" raises the likelihood, "-" lowers it
    ("importance", pa.string()),    # high / medium / low
])


def relative_scores(probability: np.ndarray) -> tuple[np.ndarray, float]:
    """Score 0-100 and the reference (99th-percentile) probability it is relative to."""
    reference = float(np.quantile(probability, 0.99)) if len(probability) else 0.0
    if reference <= 0:
        return np.zeros_like(probability), reference
    return np.minimum(100.0, 100.0 * probability / reference).round(2), reference


def percentiles(ranking: np.ndarray) -> np.ndarray:
    """1..100: the share of the scored population ranked at or below this one, rounded up.

    100 = the most likely 1%; tied profiles share one percentile. Runs rank on the model's raw
    output: calibration is monotone, so the order is the probabilities' order, but an isotonic
    calibration's flat steps would otherwise tie thousands of profiles.
    """
    n = len(ranking)
    if n == 0:
        return np.zeros(0, dtype=np.int16)
    at_or_below = np.searchsorted(np.sort(ranking), ranking, side="right")
    return np.ceil(100.0 * at_or_below / n).clip(1, 100).astype(np.int16)


def buckets(score: np.ndarray, cutoffs: Sequence[float]) -> np.ndarray:
    low, high = cutoffs
    index = np.where(score >= high, 2, np.where(score >= low, 1, 0))
    return np.asarray(BUCKETS, dtype=object)[index]


@dataclass(frozen=True)
class FactorNames:
    """Feature ids and human names, in model column order."""

    ids: Sequence[str]
    names: Sequence[str]


def reason_codes(
    contributions: np.ndarray,
    values: Sequence[np.ndarray],
    factors: FactorNames,
    importance_scale: np.ndarray,
    top: int = TOP_FACTORS,
) -> pa.Array:
    """Top ``top`` factors per row by |contribution|, as a list<FACTOR_TYPE> Arrow array.

    ``contributions`` is rows × features (no base column); ``values`` holds each feature's raw
    values (one array per feature). ``importance_scale`` is the per-feature global mean |SHAP|:
    a factor is *high* when its |contribution| is at least 2× that feature's mean, *medium* from
    0.5×, else *low*. Vectorised: no Python loop over rows.
    """
    rows, width = contributions.shape
    k = min(top, width)
    if rows == 0 or k == 0:
        return pa.array([[] for _ in range(rows)], type=pa.list_(FACTOR_TYPE))
    magnitude = np.abs(contributions)
    top_idx = np.argpartition(-magnitude, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(magnitude, top_idx, axis=1), axis=1, kind="stable")
    top_idx = np.take_along_axis(top_idx, order, axis=1)
    row_idx = np.repeat(np.arange(rows), k)
    feat_idx = top_idx.reshape(-1)
    contrib = contributions[row_idx, feat_idx]
    ratio = np.abs(contrib) / np.maximum(importance_scale[feat_idx], 1e-12)
    importance = np.where(ratio >= 2, "high", np.where(ratio >= 0.5, "medium", "low"))
    text_values = _values_as_text(values, row_idx, feat_idx)
    structs = pa.StructArray.from_arrays(
        [
            pa.array(np.asarray(factors.ids, dtype=object)[feat_idx], pa.string()),
            pa.array(np.asarray(factors.names, dtype=object)[feat_idx], pa.string()),
            pa.array(text_values, pa.string()),
            pa.array(contrib, pa.float64()),
            pa.array(np.where(contrib >= 0, "+", "-"), pa.string()),
            pa.array(importance, pa.string()),
        ],
        fields=list(FACTOR_TYPE),
    )
    offsets = pa.array(np.arange(0, rows * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, structs)


def _values_as_text(values: Sequence[np.ndarray], rows: np.ndarray, feats: np.ndarray) -> list:
    out = np.empty(len(rows), dtype=object)
    for f in np.unique(feats):
        mask = feats == f
        out[mask] = [_fmt(v) for v in np.asarray(values[f], dtype=object)[rows[mask]]]
    return out.tolist()


def _fmt(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float):
        return f"{value:.4g}" if not value.is_integer() else str(int(value))
    return str(value)
