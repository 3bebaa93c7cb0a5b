"""How good a model's probabilities are on held-out rows: ranking, calibration and lift.

Everything here works on two plain arrays (0/1 outcomes and probabilities) so the same function
scores a fresh holdout, a past run whose outcome window has passed, or a hand-made test case.

Definitions used (they are what the dashboard's evaluation tab shows):

- ``auc``: area under the ROC curve.
- ``pr_auc``: average precision (the step-wise area under the precision-recall curve, as
  scikit-learn computes it; it does not interpolate, so it is not optimistic).
- ``brier``: mean squared difference between probability and outcome.
- ``log_loss``: mean negative log-likelihood, probabilities clipped to [1e-15, 1 - 1e-15].
- ``ece``: expected calibration error over 10 *equal-frequency* bins. Rows are sorted by
  probability and cut into 10 groups of (nearly) equal size; ``ece = Σ_b (n_b / n) ·
  |mean probability in b − observed rate in b|``. Equal-frequency bins (rather than 10 equal-width
  bins over [0, 1]) keep every bin populated when probabilities are skewed, which they are for rare
  goals. The same bins are returned as ``calibration`` (the calibration curve).
- ``lift`` (by decile): rows sorted by probability, highest first, cut into 10 groups of nearly
  equal size; decile 1 is the top 10%. ``rate`` is the decile's positive rate, ``lift`` is that
  rate over the base rate, ``cumulative_gain`` the share of all positives found in deciles 1..d
  (so decile 10 has a cumulative gain of 1.0). Rows with equal probabilities are ordered by their
  position in the input, so ties split between deciles deterministically.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from likely.errors import DataError

N_BINS = 10
_LOG_LOSS_EPS = 1e-15


@dataclass(frozen=True)
class Evaluation:
    """Holdout metrics of one model; ``to_dict()`` is JSON-ready (plain floats, ints and lists)."""

    auc: float
    pr_auc: float
    brier: float
    log_loss: float
    ece: float
    rows: int
    positives: int
    negatives: int
    base_rate: float
    lift: list[dict[str, Any]]
    calibration: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Quality grades by holdout AUC: (lowest AUC, grade, what it means for a marketer).
GRADES: tuple[tuple[float, str, str], ...] = (
    (0.85, "Excellent", "the top of the list is far more likely than the rest; act on it"),
    (0.75, "Good", "ranks customers well; targeting the top buckets pays off clearly"),
    (0.65, "Fair", "better than guessing, but buckets overlap: prefer broad audiences"),
    (0.0, "Poor", "barely better than guessing: check the goal, the population and the data"),
)


def grade(auc: float | None) -> dict[str, Any] | None:
    """The quality grade of a holdout AUC, with every band so the grade explains itself."""
    if auc is None:
        return None
    bands = [{"grade": g, "min_auc": lo, "meaning": m} for lo, g, m in GRADES]
    for lo, name, meaning in GRADES:
        if auc >= lo:
            return {"grade": name, "auc": auc, "meaning": meaning, "bands": bands}
    return None


def evaluate(y_true: Any, probability: Any, *, ranking: Any = None) -> Evaluation:
    """Score probabilities against 0/1 outcomes.

    ``ranking`` (default: the probabilities) orders the rows for AUC, PR-AUC and lift; a run
    passes the model's raw output, which an isotonic calibration's flat steps would tie, and
    cross-fitted probabilities for the calibration metrics (Brier, log loss, ECE, curve).

    >>> e = evaluate([0, 0, 1, 1] * 5, [0.1, 0.4, 0.35, 0.8] * 5)
    >>> round(e.auc, 2), e.positives, e.lift[-1]["cumulative_gain"]
    (0.75, 10, 1.0)

    Raises ``DataError`` when there are fewer than 10 rows, when the lengths differ, when a
    probability is outside [0, 1] or missing, or when only one class is present (AUC is then
    undefined: widen the holdout window).
    """
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y, p = _check_inputs(y_true, probability)
    order = p if ranking is None else np.asarray(ranking, dtype=float).ravel()
    if order.shape != p.shape or np.isnan(order).any():
        raise DataError("The ranking needs one number per outcome row, none missing.")
    positives = int(y.sum())
    clipped = np.clip(p, _LOG_LOSS_EPS, 1 - _LOG_LOSS_EPS)
    calibration = calibration_curve(y, p)
    return Evaluation(
        auc=float(roc_auc_score(y, order)),
        pr_auc=float(average_precision_score(y, order)),
        brier=float(brier_score_loss(y, p)),
        log_loss=float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))),
        ece=expected_calibration_error(calibration),
        rows=int(y.size),
        positives=positives,
        negatives=int(y.size) - positives,
        base_rate=positives / y.size,
        lift=lift_table(y, order),
        calibration=calibration,
    )


def lift_table(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> list[dict[str, Any]]:
    """Positives, rate, lift and cumulative gain per decile (decile 1 = highest probabilities)."""
    order = np.argsort(-p, kind="stable")
    total_positives = max(int(y.sum()), 1)
    base_rate = float(y.mean())
    found = 0
    table = []
    for decile, idx in enumerate(np.array_split(order, n_bins), start=1):
        positives = int(y[idx].sum())
        found += positives
        rate = positives / idx.size if idx.size else 0.0
        table.append(
            {
                "decile": decile,
                "rows": int(idx.size),
                "positives": positives,
                "rate": rate,
                "lift": rate / base_rate if base_rate > 0 else 0.0,
                "cumulative_gain": found / total_positives,
            }
        )
    return table


def calibration_curve(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> list[dict[str, Any]]:
    """Mean predicted vs observed rate in equal-frequency bins, lowest probabilities first."""
    order = np.argsort(p, kind="stable")
    return [
        {
            "bin": b,
            "rows": int(idx.size),
            "mean_predicted": float(p[idx].mean()),
            "observed_rate": float(y[idx].mean()),
            "min_predicted": float(p[idx].min()),
            "max_predicted": float(p[idx].max()),
        }
        for b, idx in enumerate(np.array_split(order, n_bins), start=1)
        if idx.size
    ]


def expected_calibration_error(curve: list[dict[str, Any]]) -> float:
    """Row-weighted mean |mean predicted − observed rate| over the bins of a calibration curve."""
    rows = sum(b["rows"] for b in curve)
    gap = sum(b["rows"] * abs(b["mean_predicted"] - b["observed_rate"]) for b in curve)
    return float(gap / rows)


def _check_inputs(y_true: Any, probability: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(probability, dtype=float).ravel()
    if y.size != p.size:
        raise DataError(
            f"Cannot evaluate: {y.size} outcomes but {p.size} probabilities. "
            "Pass one probability per outcome row."
        )
    if y.size < N_BINS:
        raise DataError(
            f"Cannot evaluate on {y.size} rows: deciles need at least {N_BINS}. "
            "Use a larger holdout."
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataError("Outcomes must be 0 or 1 (no missing values); found other values.")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise DataError("Probabilities must be within [0, 1] with no missing values.")
    positives = int(y.sum())
    if positives in (0, y.size):
        only = "positive" if positives else "negative"
        raise DataError(
            f"Cannot evaluate: all {y.size} outcome rows are {only}, so AUC and lift are "
            "undefined. The holdout needs both outcomes: widen its window or the population.",
            detail={"rows": int(y.size), "positives": positives},
        )
    return y, p
