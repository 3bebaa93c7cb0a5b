"""Drift: how far the data a model scores has moved from the data it was trained on.

The measure is the population stability index, PSI = Σ (now − then) · ln(now / then) over the
bins of a distribution: under 0.1 is little change, 0.1–0.25 some, above 0.25 a shift worth
retraining for. At training, a *reference* is kept: decile edges and shares of the holdout's
probabilities and of the model's most important features (category shares for text, and a bin
for missing values); at every run the scored profiles are counted into the same bins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

BINS = 10
FLOOR = 1e-4  # an empty bin counts as this share, so a bin seen on one side only stays finite
MISSING = "(missing)"
SCORE = "probability"


def reference(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per name, the bins and shares of its values (numbers: deciles; text: categories)."""
    return {name: _reference(pd.Series(column)) for name, column in values.items()}


def psi(entry: Mapping[str, Any], values: Any) -> float:
    """The PSI of ``values`` against a reference entry made by :func:`reference`."""
    then = np.asarray(entry["shares"], dtype=float)
    now = shares(entry, pd.Series(values))
    then, now = np.maximum(then, FLOOR), np.maximum(now, FLOOR)
    return float(np.sum((now - then) * np.log(now / then)))


def shares(entry: Mapping[str, Any], values: pd.Series) -> np.ndarray:
    """The share of ``values`` in each bin of ``entry`` (the last bin holds missing values)."""
    missing = values.isna().to_numpy()
    counts = np.zeros(len(entry["shares"]))
    counts[-1] = missing.sum()
    present = values[~missing]
    if entry["kind"] == "numeric":
        inner = np.asarray(entry["edges"][1:-1], dtype=float)
        index = np.searchsorted(inner, pd.to_numeric(present).to_numpy(dtype=float),
                                side="right")
        counts[: len(inner) + 1] += np.bincount(index, minlength=len(inner) + 1)
    else:
        labels = {label: i for i, label in enumerate(entry["categories"])}
        other = labels.get("(other)")
        for value, n in present.astype(str).value_counts().items():
            index = labels.get(value, other)
            if index is not None:
                counts[index] += n
    return counts / max(len(values), 1)


def _reference(values: pd.Series) -> dict[str, Any]:
    missing = float(values.isna().mean()) if len(values) else 0.0
    present = values.dropna()
    if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present):
        numbers = present.to_numpy(dtype=float)
        edges = np.unique(np.quantile(numbers, np.linspace(0, 1, BINS + 1))) if len(numbers) \
            else np.array([0.0, 0.0])
        if len(edges) < 2:
            edges = np.array([edges[0], edges[0]])
        entry = {"kind": "numeric", "edges": [float(e) for e in edges],
                 "shares": [0.0] * len(edges)}  # the bins between edges, then missing
        entry["shares"] = [float(s) for s in shares(entry, values)]
        return entry
    top = present.astype(str).value_counts().index[: BINS - 1].tolist()
    entry = {"kind": "categorical", "categories": [*top, "(other)", MISSING],
             "shares": [0.0] * (len(top) + 2)}
    entry["shares"] = [float(s) for s in shares(entry, values)]
    entry["missing_share"] = missing
    return entry
