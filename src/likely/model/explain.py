"""Why a customer got their score: exact TreeSHAP contributions, top factors, global importance.

Contributions are LightGBM's own path-dependent TreeSHAP (``Booster.predict(X,
pred_contrib=True)``): for each row, one signed log-odds contribution per feature plus the base
value, and ``base value + Σ contributions == the model's raw log-odds`` exactly (up to float
rounding). The calibrated probability is a monotone map of that raw score, so a factor that raises
the raw score raises the probability too ('+'), and one that lowers it lowers it ('-').

On a batch of many rows ``contributions`` computes the same numbers (within 1e-9 of
``pred_contrib``; about 1e-14 in practice) through :mod:`likely.model.treeshap`, which tabulates
each tree once and then costs a few look-ups per row and tree instead of TreeSHAP's
leaves × depth² per row and tree: 27× faster for the shape likely trains by default, 50× for 200
depth-5 trees (1M rows, BENCHMARKS.md). Whatever it does not cover (multiclass, linear trees,
trees with long paths, other input types) is left to ``pred_contrib``, and every batch is checked
against ``pred_contrib`` on a few rows.

The core is ``explain_batch``: one bounded batch in, its top-k factors out, optionally adding to a
``ShapAccumulator`` for global importance. ``explain`` loops over batches of any size, so a scoring
run can stream 250k-row chunks and memory stays at one batch's ``rows × (features + 1)`` floats.

TreeSHAP's cost grows with trees × leaves × depth², which is why training prefers shallow trees.
Reason codes (behaviours, importance labels) are built from these contributions by
:mod:`likely.scoring.scores`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from likely.errors import DataError
from likely.model import treeshap

if TYPE_CHECKING:
    import lightgbm as lgb

    from likely.model.train import PropensityModel

DEFAULT_BATCH_ROWS = 100_000
Progress = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class Explanations:
    """Top-k factors per row, strongest first.

    ``feature_index[i, j]`` is the column (in the model's feature order) of row ``i``'s ``j``-th
    strongest factor and ``contribution[i, j]`` its signed log-odds contribution. ``raw_score`` is
    base value + all contributions (not just the top k), i.e. the model's raw output.
    """

    feature_index: np.ndarray  # (rows, k) int32
    contribution: np.ndarray  # (rows, k) float64
    base_value: np.ndarray  # (rows,) float64
    raw_score: np.ndarray  # (rows,) float64

    @property
    def rows(self) -> int:
        return int(self.base_value.size)

    @classmethod
    def concat(cls, parts: Sequence[Explanations]) -> Explanations:
        if not parts:
            raise DataError("No explanation batches to combine.")
        return cls(
            feature_index=np.concatenate([p.feature_index for p in parts]),
            contribution=np.concatenate([p.contribution for p in parts]),
            base_value=np.concatenate([p.base_value for p in parts]),
            raw_score=np.concatenate([p.raw_score for p in parts]),
        )


class ShapAccumulator:
    """Running sums of |SHAP| (and signed SHAP) per feature over every row seen so far."""

    def __init__(self, n_features: int) -> None:
        self.sum_abs = np.zeros(n_features)
        self.sum = np.zeros(n_features)
        self.rows = 0

    def update(self, contribs: np.ndarray) -> None:
        """Add a ``(rows, features)`` contribution matrix; a last base-value column (as
        :func:`contributions` returns it) is left out."""
        values = contribs[:, : self.sum_abs.size]
        self.sum_abs += np.abs(values).sum(axis=0)
        self.sum += values.sum(axis=0)
        self.rows += int(values.shape[0])

    def mean_abs(self) -> np.ndarray:
        if not self.rows:
            raise DataError("No rows explained yet: global importance needs at least one batch.")
        return self.sum_abs / self.rows


def contributions(
    model: PropensityModel | lgb.Booster,
    X: Any,
    *,
    num_threads: int | None = None,
    method: Literal["auto", "fast", "lightgbm"] = "auto",
) -> np.ndarray:
    """Exact TreeSHAP matrix ``(rows, features + 1)``; the last column is the base value.

    ``method="auto"`` takes the fast path (:mod:`likely.model.treeshap`) for batches of at least
    ``treeshap.MIN_ROWS`` rows; ``"fast"`` takes it whenever it applies; ``"lightgbm"`` always
    calls ``pred_contrib``. All three give the same values within 1e-9.
    """
    booster, X = _booster_and_checked(model, X)
    if num_threads is None:
        num_threads = model.num_threads() if hasattr(model, "num_threads") else 0
    if method != "lightgbm":
        min_rows = 0 if method == "fast" else treeshap.MIN_ROWS
        fast = treeshap.contributions(booster, X, num_threads=num_threads, min_rows=min_rows)
        if fast is not None:
            return fast.values
    out = booster.predict(X, pred_contrib=True, num_threads=num_threads)
    return np.asarray(out, dtype=float)


def explain_batch(
    model: PropensityModel | lgb.Booster,
    X: Any,
    *,
    top_k: int = 5,
    accumulator: ShapAccumulator | None = None,
    num_threads: int | None = None,
) -> Explanations:
    """Top-k factors of every row of one batch; adds the batch to ``accumulator`` if given.

    Factors are ordered by |contribution|, ties by feature order. Memory is one
    ``rows × (features + 1)`` float matrix, so keep batches bounded (``explain`` does).
    """
    contribs = contributions(model, X, num_threads=num_threads)
    if accumulator is not None:
        accumulator.update(contribs)
    values = contribs[:, :-1]
    k = min(top_k, values.shape[1])
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    return Explanations(
        feature_index=order.astype(np.int32),
        contribution=np.take_along_axis(values, order, axis=1),
        base_value=contribs[:, -1].copy(),
        raw_score=contribs.sum(axis=1),
    )


def explain(
    model: PropensityModel | lgb.Booster,
    X: Any,
    *,
    top_k: int = 5,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    accumulator: ShapAccumulator | None = None,
    progress: Progress | None = None,
    num_threads: int | None = None,
) -> Explanations:
    """Explain every row of ``X``, ``batch_rows`` at a time; ``progress(done, total)`` after each.

    >>> expl = explain(model, X_scoring, top_k=3)        # doctest: +SKIP
    >>> expl.feature_index[0], expl.contribution[0]     # doctest: +SKIP
    """
    total = int(X.shape[0])
    if total == 0:
        raise DataError("Nothing to explain: the feature matrix has no rows.")
    parts = []
    for start in range(0, total, batch_rows):
        batch = _rows(X, start, min(start + batch_rows, total))
        parts.append(
            explain_batch(
                model, batch, top_k=top_k, accumulator=accumulator, num_threads=num_threads
            )
        )
        if progress is not None:
            progress(min(start + batch_rows, total), total)
    return Explanations.concat(parts)


def global_importance(
    source: ShapAccumulator | np.ndarray, feature_names: Sequence[str]
) -> list[tuple[str, float]]:
    """``(feature, mean |SHAP|)`` pairs, most influential first.

    ``source`` is an accumulator fed batch by batch, or a full contribution matrix
    ``(rows, features + 1)`` as ``contributions`` returns it.
    """
    if isinstance(source, ShapAccumulator):
        mean_abs = source.mean_abs()
    else:
        mean_abs = np.abs(np.asarray(source, dtype=float)[:, : len(feature_names)]).mean(axis=0)
    pairs = [(name, float(v)) for name, v in zip(feature_names, mean_abs)]
    return sorted(pairs, key=lambda item: (-item[1], item[0]))


def _booster_and_checked(model: Any, X: Any) -> tuple[lgb.Booster, Any]:
    if hasattr(model, "check_features"):
        return model.fitted_booster(), model.check_features(X)
    return model, X


def _rows(X: Any, start: int, stop: int) -> Any:
    return X.iloc[start:stop] if hasattr(X, "iloc") else X[start:stop]
