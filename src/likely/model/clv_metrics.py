"""How good a customer-value prediction is, judged on what customers really spent afterwards.

Each function takes the actual value per customer (e.g. holdout spend) and the predicted value,
in the same order. Customers with equal predictions are a tie, and a ranking cannot order them:
every measure here treats a tie as if each of its members held the tie's average actual value,
which is the average over every order the tie could be put in. So a constant prediction has a
Gini of exactly 0, whatever order the rows come in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from likely.errors import DataError


@dataclass(frozen=True)
class Deciles:
    """Total predicted and actual value per group of customers, highest predictions first."""

    predicted: np.ndarray
    actual: np.ndarray
    customers: np.ndarray


def normalised_gini(actual: Any, predicted: Any) -> float:
    """How well the prediction orders customers by actual value: 1 for the ideal order, 0 for no
    better than chance (or a constant), -1 for the reverse order.

    >>> normalised_gini([0, 1, 5, 10], [1, 2, 3, 4]), normalised_gini([0, 1, 5, 10], [4, 3, 2, 1])
    (1.0, -1.0)
    """
    ranked, _ = _ranked(actual, predicted)
    best = _gini(np.sort(np.asarray(actual, dtype=float).ravel())[::-1])
    if best == 0:
        raise DataError("The normalised Gini needs customers whose actual values differ; "
                        "every actual value is the same.")
    return float(_gini(ranked) / best)


def _gini(ranked: np.ndarray) -> float:
    """Area between the cumulative share of value (in the given order) and the diagonal."""
    n = len(ranked)
    return float(np.sum(np.cumsum(ranked) / ranked.sum()) / n - (n + 1) / (2 * n))


def decile_totals(actual: Any, predicted: Any, groups: int = 10) -> Deciles:
    """Customers sorted by prediction (highest first) and cut into ``groups`` groups of equal size
    (the first ones one larger when it does not divide), with each group's totals.

    >>> decile_totals([1, 2, 3, 4], [4, 3, 2, 1], groups=2).actual.tolist()
    [3.0, 7.0]
    """
    ranked, scores = _ranked(actual, predicted)
    if not 1 <= groups <= len(ranked):
        raise DataError(f"Cannot cut {len(ranked)} customers into {groups} groups.")
    cuts = np.array_split(np.arange(len(ranked)), groups)
    starts = np.array([c[0] for c in cuts])
    return Deciles(predicted=np.add.reduceat(scores, starts),
                   actual=np.add.reduceat(ranked, starts),
                   customers=np.array([len(c) for c in cuts]))


def decile_mape(actual: Any, predicted: Any, groups: int = 10) -> float:
    """Mean absolute percentage error of each decile's total predicted value against its total
    actual value (as a fraction: 0.1 is 10%). It judges the level of the predictions, not only the
    order; a group with no actual value has no percentage error, so it is refused.

    >>> decile_mape([10, 10, 20, 20], [12, 12, 15, 15], groups=2)
    0.225
    """
    deciles = decile_totals(actual, predicted, groups)
    if np.any(deciles.actual == 0):
        raise DataError("A decile's actual value is zero, so its percentage error is undefined. "
                        "Use fewer groups.")
    return float(np.mean(np.abs(deciles.predicted - deciles.actual) / np.abs(deciles.actual)))


def top_decile_capture(actual: Any, predicted: Any, share: float = 0.1) -> float:
    """Share of all actual value held by the top ``share`` of customers by prediction (a
    customer cut in two at the boundary counts in part). The ideal is the actual top's share;
    a random order gets ``share``.

    >>> top_decile_capture([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], list(range(10)))
    1.0
    """
    if not 0 < share <= 1:
        raise DataError(f"The top share must be in (0, 1]; got {share}.")
    ranked, _ = _ranked(actual, predicted)
    total = ranked.sum()
    if total == 0:
        raise DataError("The actual values sum to zero: there is no value to capture.")
    whole, part = divmod(share * len(ranked), 1)
    whole = int(whole)
    captured = ranked[:whole].sum() + (part * ranked[whole] if whole < len(ranked) else 0.0)
    return float(captured / total)


def _ranked(actual: Any, predicted: Any) -> tuple[np.ndarray, np.ndarray]:
    """Actual and predicted values sorted by prediction, highest first, ties averaged."""
    a = np.asarray(actual, dtype=float).ravel()
    p = np.asarray(predicted, dtype=float).ravel()
    if a.shape != p.shape or len(a) == 0:
        raise DataError(f"Need one prediction per customer; got {len(a)} actual values and "
                        f"{len(p)} predictions.")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(p))):
        raise DataError("Actual and predicted values must be numbers, none missing.")
    order = np.argsort(-p, kind="stable")
    a, p = a[order], p[order]
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
    sizes = np.diff(np.r_[starts, len(a)])
    return np.repeat(np.add.reduceat(a, starts) / sizes, sizes), p


def value_metrics(actual: Any, predicted: Any) -> dict[str, float]:
    """Every measure a run records of a value prediction: normalised Gini, Spearman, decile
    MAPE, top-decile capture, and predicted against actual total."""
    from scipy.stats import spearmanr

    return {
        "gini": round(normalised_gini(actual, predicted), 4),
        "spearman": round(float(spearmanr(actual, predicted).statistic), 4),
        "decile_mape": round(decile_mape(actual, predicted), 4),
        "top_decile_capture": round(top_decile_capture(actual, predicted), 4),
        "predicted_total": round(float(np.sum(predicted)), 2),
        "actual_total": round(float(np.sum(actual)), 2),
    }
