"""Turn a model's raw log-odds into probabilities that mean what they say.

Two maps are offered, both fitted on the time-based holdout (rows the trees never trained on):

- ``sigmoid`` (Platt scaling): ``p = 1 / (1 + exp(-(a · raw + b)))``. Two parameters, smooth,
  keeps every difference in rank; good when the holdout is small.
- ``isotonic``: a non-decreasing step-and-ramp function of the raw score (scikit-learn's
  ``IsotonicRegression``, stored as its threshold arrays and applied by linear interpolation).
  Fits any monotone distortion but needs more rows, and flattens ranks inside a step.

``choose_calibrator`` picks between them by cross-fitting on the holdout, so the choice is never
made on the rows a map was fitted on, then refits the winner on the whole holdout.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from likely.errors import ConfigError, DataError

Method = Literal["sigmoid", "isotonic"]
METHODS: tuple[Method, ...] = ("sigmoid", "isotonic")
# Isotonic steps can reach exactly 0 or 1 on a small holdout; a probability of exactly 0 or 1 is
# never true of a customer and breaks log loss, so outputs stay inside (EPS, 1 - EPS).
EPS = 1e-6
# Weak pull of Platt's (a, b) toward the identity map (1, 0): keeps the fit finite when the
# holdout is perfectly separable, negligible otherwise.
_PLATT_PRIOR = 1e-2


class Calibrator:
    """A fitted map from raw log-odds to probability.

    >>> import numpy as np
    >>> raw = np.linspace(-3, 3, 200); y = (raw + np.sin(raw * 7) > 0).astype(int)
    >>> cal = Calibrator("sigmoid").fit(raw, y)
    >>> bool(np.all(np.diff(cal.transform(raw)) >= 0))
    True
    """

    def __init__(self, method: Method = "sigmoid") -> None:
        self.method = method

    def fit(self, raw: Any, y: Any) -> Calibrator:
        if self.method not in METHODS:
            raise ConfigError(
                f"Unknown calibration method {self.method!r}; use one of {', '.join(METHODS)}."
            )
        raw_, y_ = _check(raw, y)
        if self.method == "sigmoid":
            self.coef_, self.intercept_ = _fit_platt(raw_, y_)
        else:
            self.x_thresholds_, self.y_thresholds_ = _fit_isotonic(raw_, y_)
        self.n_samples_ = int(raw_.size)
        return self

    def transform(self, raw: Any) -> np.ndarray:
        """Probability of the positive class for each raw score (1-D)."""
        if not hasattr(self, "n_samples_"):
            from likely.model.train import NotFittedError

            raise NotFittedError("This Calibrator is not fitted yet: call fit(raw, y) first.")
        raw_ = np.asarray(raw, dtype=float).ravel()
        if self.method == "sigmoid":
            p = _sigmoid(self.coef_ * raw_ + self.intercept_)
        else:
            p = np.interp(raw_, self.x_thresholds_, self.y_thresholds_)
        return np.clip(p, EPS, 1 - EPS)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (no pickle), read back by ``from_dict``."""
        out: dict[str, Any] = {"method": self.method, "n_samples": self.n_samples_}
        if self.method == "sigmoid":
            out.update(coef=float(self.coef_), intercept=float(self.intercept_))
        else:
            out.update(
                x_thresholds=self.x_thresholds_.tolist(), y_thresholds=self.y_thresholds_.tolist()
            )
        out["comparison"] = getattr(self, "comparison_", None)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        cal = cls(data["method"])
        if cal.method == "sigmoid":
            cal.coef_, cal.intercept_ = float(data["coef"]), float(data["intercept"])
        elif cal.method == "isotonic":
            cal.x_thresholds_ = np.asarray(data["x_thresholds"], dtype=float)
            cal.y_thresholds_ = np.asarray(data["y_thresholds"], dtype=float)
        else:
            raise ConfigError(f"Unknown calibration method {cal.method!r} in a saved calibrator.")
        cal.n_samples_ = int(data["n_samples"])
        if data.get("comparison") is not None:
            cal.comparison_ = data["comparison"]
        return cal


def choose_calibrator(
    raw: Any, y: Any, *, folds: int = 5, seed: int = 0, methods: tuple[Method, ...] = METHODS
) -> Calibrator:
    """Pick the calibration map with the lower cross-fitted log loss on the holdout, refit it.

    Each candidate is fitted on ``folds - 1`` parts of the holdout and scored (log loss and Brier)
    on the part it did not see; the pooled out-of-fold scores decide, ties going to ``sigmoid``
    (the simpler map, listed first). The winner is refitted on every holdout row and carries the
    numbers in ``comparison_`` (also those of the uncalibrated ``sigmoid(raw)`` for reference)
    and, in ``out_of_fold_``, each holdout row's probability from the winner fitted on the other
    folds: the honest probabilities to measure calibration on (``None`` when too few rows of one
    class allowed no cross-fitting).

    Leakage trap: the holdout also chose the trees' early-stopping round, so it is not a clean test
    set for the calibrated model; use a later period to judge the final probabilities.
    """
    raw_, y_ = _check(raw, y)
    minority = int(min(y_.sum(), y_.size - y_.sum()))
    n_folds = min(folds, minority)
    if n_folds < 2:
        chosen = Calibrator(methods[0]).fit(raw_, y_)
        chosen.comparison_ = {"chosen": methods[0], "folds": 0,
                              "reason": "too few rows of one class to cross-fit"}
        chosen.out_of_fold_ = None
        return chosen
    scores = {"raw": _scores(y_, np.clip(_sigmoid(raw_), EPS, 1 - EPS))}
    predictions = {}
    for method in methods:
        predictions[method] = _out_of_fold(method, raw_, y_, n_folds, seed)
        scores[method] = _scores(y_, predictions[method])
    best = min(methods, key=lambda m: (round(scores[m]["log_loss"], 10), methods.index(m)))
    chosen = Calibrator(best).fit(raw_, y_)
    chosen.comparison_ = {"chosen": best, "criterion": "log_loss", "folds": n_folds, **scores}
    if len(methods) == 1:
        chosen.comparison_["reason"] = "one method asked for"
    chosen.out_of_fold_ = predictions[best]
    return chosen


def _out_of_fold(method: Method, raw: np.ndarray, y: np.ndarray, folds: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    pred = np.empty_like(raw)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_idx, test_idx in splitter.split(raw.reshape(-1, 1), y):
        pred[test_idx] = Calibrator(method).fit(raw[fit_idx], y[fit_idx]).transform(raw[test_idx])
    return pred


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    log_loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return {"log_loss": float(log_loss), "brier": float(np.mean((p - y) ** 2))}


def _fit_platt(raw: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """Maximum-likelihood (a, b) by damped Newton steps, with a weak prior toward (1, 0)."""
    design = np.column_stack([raw, np.ones_like(raw)])
    prior = np.array([1.0, 0.0])

    def loss(theta: np.ndarray) -> float:
        z = design @ theta
        nll = np.sum(np.logaddexp(0.0, z) - y * z)
        return float(nll + 0.5 * _PLATT_PRIOR * np.sum((theta - prior) ** 2))

    theta = prior.copy()
    current = loss(theta)
    for _ in range(iterations):
        p = _sigmoid(design @ theta)
        grad = design.T @ (p - y) + _PLATT_PRIOR * (theta - prior)
        hess = (design * (p * (1 - p))[:, None]).T @ design + _PLATT_PRIOR * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while loss(theta - scale * step) > current and scale > 1e-8:
            scale /= 2
        theta = theta - scale * step
        previous, current = current, loss(theta)
        if previous - current < 1e-12 * max(1.0, abs(current)):
            break
    return float(theta[0]), float(theta[1])


def _fit_isotonic(raw: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=EPS, y_max=1 - EPS, increasing=True, out_of_bounds="clip")
    iso.fit(raw, y)
    return np.asarray(iso.X_thresholds_, dtype=float), np.asarray(iso.y_thresholds_, dtype=float)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _check(raw: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    raw_ = np.asarray(raw, dtype=float).ravel()
    y_ = np.asarray(y, dtype=float).ravel()
    if raw_.size != y_.size:
        raise DataError(f"Calibration needs one outcome per score: {raw_.size} vs {y_.size}.")
    if not np.isfinite(raw_).all():
        raise DataError("Calibration scores must be finite numbers (found NaN or infinity).")
    if not np.isin(y_, (0.0, 1.0)).all():
        raise DataError("Calibration outcomes must be 0 or 1.")
    if y_.sum() in (0, y_.size):
        raise DataError(
            f"Cannot calibrate on {y_.size} holdout rows with only one outcome; the holdout "
            "needs both positives and negatives. Widen the holdout window or the population."
        )
    return raw_, y_
