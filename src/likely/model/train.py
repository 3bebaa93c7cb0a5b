"""The propensity model: LightGBM trees on behavioural features, calibrated on a time holdout.

``PropensityModel.fit`` trains a small grid of tree shapes with early stopping on the holdout (the
latest anchor's rows; the caller builds it) and keeps the *cheapest to explain* shape whose holdout
AUC is within ``auc_tolerance`` of the best: TreeSHAP cost grows with trees × leaves × depth², and
explanations are computed for every scored customer on every run, so a deeper model has to earn its
cost. Then it fits the probability calibration on the same holdout (see ``calibration``).

Class imbalance: rows are not reweighted by default. LightGBM starts from the base rate
(``boost_from_average``) and its log loss needs no balancing to rank well; reweighting would only
distort the raw probabilities. ``TrainParams(balance_classes=True)`` sets ``scale_pos_weight`` to
negatives ÷ positives for very rare goals; the calibration step then maps the scores back to true
probabilities either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from likely.engine import physical_cores
from likely.errors import DataError, LikelyError

if TYPE_CHECKING:
    import lightgbm as lgb

    from likely.model.calibration import Calibrator

DEFAULT_GRID: tuple[tuple[int, int], ...] = ((7, 3), (15, 4), (31, 6))


class NotFittedError(LikelyError, ValueError):
    """A model or calibrator was used before ``fit`` (or ``load_model``) gave it its state."""


@dataclass(frozen=True)
class TrainParams:
    """Settings of one training; the defaults suit 1k..1M rows of a few dozen features.

    ``grid`` holds the ``(num_leaves, max_depth)`` shapes tried. With more than ``search_rows``
    training rows the shapes are compared on a stable sample of that many (and of the holdout),
    and only the chosen shape is trained on all rows: the comparison costs a fraction of a full
    fit instead of one full fit per shape. Learning rate 0.1 reached the same holdout AUC as
    0.05 on the demo data (0.8565 against 0.8569 on the same labels) with 74 trees instead of
    184: fewer trees to train, score and explain. ``num_threads=0`` means the
    machine's physical cores (not LightGBM's default of every logical core, which oversubscribes
    a busy machine); results are deterministic for a given ``seed`` and thread count.
    """

    grid: tuple[tuple[int, int], ...] = DEFAULT_GRID
    auc_tolerance: float = 0.002
    learning_rate: float = 0.1
    search_rows: int = 200_000
    max_rounds: int = 2000
    early_stopping_rounds: int = 50
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    max_bin: int = 255
    balance_classes: bool = False
    calibration: Literal["auto", "sigmoid", "isotonic"] = "auto"
    calibration_folds: int = 5
    seed: int = 0
    num_threads: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["grid"] = [list(shape) for shape in self.grid]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainParams:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "grid" in known:
            known["grid"] = tuple(tuple(shape) for shape in known["grid"])
        return cls(**known)


@dataclass(frozen=True)
class Candidate:
    """One tree shape tried during ``fit``, with what it scored on the holdout."""

    num_leaves: int
    max_depth: int
    best_iteration: int
    holdout_auc: float
    holdout_log_loss: float
    shap_cost: int  # see ``shap_cost``: TreeSHAP's work for this shape, up to a constant
    fit_seconds: float
    chosen: bool = False
    sample_rows: int | None = None  # compared on a sample of this many training rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Data:
    """Validated inputs of one ``fit`` call."""

    X_train: Any
    y_train: np.ndarray
    X_valid: Any
    y_valid: np.ndarray
    names: list[str]
    categorical: list[str] = field(default_factory=list)


class TreeModel:
    """What every likely tree model shares: its booster, features, threads, and the checks that
    scoring features match the ones it was trained on. Propensity and value models extend it;
    explanations (:func:`likely.model.explain.contributions`) read any of them."""

    def predict_raw(self, X: Any) -> np.ndarray:
        """The trees' raw output per row (log-odds, or log value), before any link."""
        X = self.check_features(X)
        raw = self.booster_.predict(X, raw_score=True, num_threads=self.num_threads())
        return np.asarray(raw, dtype=float)

    def num_threads(self) -> int:
        """Threads LightGBM uses to predict and explain, as set at training."""
        return int(getattr(self, "params_", {}).get("num_threads", 0)) or physical_cores()

    def fitted_booster(self) -> lgb.Booster:
        self._check_fitted("booster_")
        return self.booster_

    def check_features(self, X: Any) -> Any:
        """Validate that ``X`` has this model's features, in order; return what LightGBM reads."""
        self._check_fitted("booster_")
        if hasattr(X, "iloc"):
            _check_frame(X, self.feature_names_, "scoring")
            categorical = [str(c) for c in X.columns if str(X[c].dtype) == "category"]
            if self.input_kind_ == "frame" and categorical != self.categorical_:
                raise DataError(
                    f"The scoring features have categorical columns {categorical}; the model "
                    f"was trained with {self.categorical_}. Build features with the same types."
                )
            return X
        if self.input_kind_ == "frame" and self.categorical_:
            raise DataError(
                "This model was trained on a DataFrame with categorical features "
                f"({', '.join(self.categorical_[:5])}); pass a DataFrame with the same columns."
            )
        return _check_array(X, len(self.feature_names_), "scoring")

    def _check_fitted(self, attribute: str) -> None:
        if not hasattr(self, attribute):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet: call fit(...) or load it "
                "before predicting or explaining."
            )


class PropensityModel(TreeModel):
    """Gradient-boosted trees that give a calibrated probability of the goal, per customer.

    >>> model = PropensityModel().fit(X_train, y_train, X_valid, y_valid, names)  # doctest: +SKIP
    >>> model.predict_proba(X_scoring)                                           # doctest: +SKIP

    Fitted attributes: ``booster_`` (trimmed to ``best_iteration_`` trees), ``feature_names_``,
    ``categorical_``, ``best_iteration_``, ``params_`` (the LightGBM parameters of the chosen
    shape), ``search_`` (every ``Candidate`` tried), ``holdout_auc_`` and ``calibrator_``. Right
    after ``fit`` (not saved): ``holdout_raw_`` and ``holdout_probability_``, the holdout's raw
    outputs and its cross-fitted calibrated probabilities (each row's from a calibration fitted
    on the other rows), on which the calibration metrics are measured.

    Leakage trap: the holdout picks the stopping round, the tree shape and the calibration, so its
    AUC is slightly optimistic. It must still come from a *later* anchor than every training row;
    a random split would leak the future into the model and overstate its quality.
    """

    def __init__(self, params: TrainParams | None = None) -> None:
        self.params = params

    # -- fitting ----------------------------------------------------------------------------

    def fit(
        self,
        X_train: Any,
        y_train: Any,
        X_valid: Any,
        y_valid: Any,
        feature_names: Sequence[Any] | None = None,
        *,
        categorical: Sequence[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> PropensityModel:
        """Train on ``X_train``, stop early / choose the shape / calibrate on ``X_valid``.

        ``X_*`` are float arrays (NaN = missing) or DataFrames of numeric and 'category' columns,
        in the same feature order. ``feature_names`` are feature ids (or objects with an ``id`` or
        ``name``); by default the DataFrame's columns. ``categorical`` names the categorical
        features of an array input (integer codes ≥ 0); DataFrames use their 'category' dtypes.
        ``progress(done, total)`` hears after each tree shape of the grid is trained.
        """
        params = self.params or TrainParams()
        data = _validate(X_train, y_train, X_valid, y_valid, feature_names, categorical)
        boosters, search = _search(params, data, progress)
        full = [i for i, c in enumerate(search) if c.sample_rows is None]
        chosen = full[choose_candidate([search[i] for i in full], params.auc_tolerance)]
        booster, best = boosters[chosen], search[chosen]
        raw_valid = booster.predict(data.X_valid, raw_score=True, num_threads=_threads(params))
        calibrator = _calibrate(params, raw_valid, data.y_valid)
        # Attributes are set only once every step succeeded: a failed fit leaves no half model.
        self.booster_ = booster
        self.feature_names_ = data.names
        self.categorical_ = data.categorical
        self.n_features_in_ = len(data.names)
        self.input_kind_ = "frame" if hasattr(X_train, "iloc") else "array"
        self.best_iteration_ = best.best_iteration
        weight = _pos_weight(params, data)
        self.params_ = _lgb_params(params, best.num_leaves, best.max_depth, weight)
        self.search_ = [replace(c, chosen=i == chosen) for i, c in enumerate(search)]
        self.holdout_auc_ = best.holdout_auc
        self.calibrator_ = calibrator
        self.holdout_raw_ = np.asarray(raw_valid, dtype=float)
        self.holdout_probability_ = (calibrator.out_of_fold_
                                     if calibrator.out_of_fold_ is not None
                                     else calibrator.transform(raw_valid))
        self.holdout_cross_fitted_ = calibrator.out_of_fold_ is not None
        return self

    # -- predicting -------------------------------------------------------------------------

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probability of the positive class per row (1-D, within (0, 1))."""
        return self.probability_from_raw(self.predict_raw(X))

    def probability_from_raw(self, raw: np.ndarray) -> np.ndarray:
        """The calibrated probability of raw outputs already computed (scoring keeps both)."""
        self._check_fitted("calibrator_")
        return self.calibrator_.transform(raw)

    def summary(self) -> dict[str, Any]:
        """What a run records about its model: chosen shape, grid, holdout AUC, calibration."""
        self._check_fitted("calibrator_")
        return {
            "best_iteration": self.best_iteration_,
            "num_leaves": self.params_["num_leaves"],
            "max_depth": self.params_["max_depth"],
            "holdout_auc": self.holdout_auc_,
            "search": [c.to_dict() for c in self.search_],
            "calibration": self.calibrator_.to_dict().get("comparison"),
            "features": len(self.feature_names_),
        }


# -- validation ---------------------------------------------------------------------------------


def _validate(X_train, y_train, X_valid, y_valid, feature_names, categorical,
              labels: Callable[[Any, int, str], np.ndarray] | None = None) -> _Data:
    """Check features and targets; ``labels`` checks a target (default: 0/1 with both)."""
    labels = labels or _labels
    names = feature_ids(feature_names, X_train)
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"Feature names must be unique; repeated: {', '.join(dupes[:10])}.")
    frame = hasattr(X_train, "iloc")
    if frame != hasattr(X_valid, "iloc"):
        raise DataError("Training and holdout features must both be arrays or both DataFrames.")
    if frame:
        _check_frame(X_train, names, "training")
        _check_frame(X_valid, names, "holdout")
        cats = [str(c) for c in X_train.columns if str(X_train[c].dtype) == "category"]
    else:
        X_train = _check_array(X_train, len(names), "training")
        X_valid = _check_array(X_valid, len(names), "holdout")
        cats = _check_categorical(categorical, names)
    return _Data(
        X_train=X_train,
        y_train=labels(y_train, X_train.shape[0], "training"),
        X_valid=X_valid,
        y_valid=labels(y_valid, X_valid.shape[0], "holdout"),
        names=names,
        categorical=cats,
    )


def feature_ids(features: Sequence[Any] | None, X: Any) -> list[str]:
    """Feature ids from strings or FeatureInfo-like objects (``.id`` or ``.name``)."""
    if features is None:
        if hasattr(X, "columns"):
            return [str(c) for c in X.columns]
        return [f"f{i}" for i in range(np.shape(X)[1])]
    ids = []
    for f in features:
        ident = f if isinstance(f, str) else getattr(f, "id", None) or getattr(f, "name", None)
        if not isinstance(ident, str):
            raise DataError(f"Feature {f!r} has no id: pass strings or objects with an 'id'.")
        ids.append(ident)
    return ids


def _check_frame(X: Any, names: list[str], what: str) -> None:
    columns = [str(c) for c in X.columns]
    if columns != names:
        missing = [n for n in names if n not in columns]
        extra = [c for c in columns if c not in names]
        raise DataError(
            f"The {what} features do not match the model's: missing {missing[:10]}, "
            f"unexpected {extra[:10]}"
            + ("" if missing or extra else ", same columns in a different order")
            + ". Build features with the same feature list.",
            detail={"missing": missing, "unexpected": extra},
        )
    bad = [c for c in X.columns if not (str(X[c].dtype) == "category" or X[c].dtype.kind in "biuf")]
    if bad:
        raise DataError(
            f"The {what} features must be numeric or 'category' columns; "
            f"{', '.join(map(str, bad[:10]))} are not. Encode text as a pandas category."
        )


def _check_array(X: Any, n_features: int, what: str) -> np.ndarray:
    try:
        array = np.asarray(X, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"The {what} features are not numeric: {exc}.") from None
    if array.ndim != 2 or array.shape[1] != n_features:
        raise DataError(
            f"The {what} features have shape {array.shape}; the model expects "
            f"(rows, {n_features}). Build features with the same feature list."
        )
    return array


def _check_categorical(categorical: Sequence[str] | None, names: list[str]) -> list[str]:
    unknown = [c for c in categorical or () if c not in names]
    if unknown:
        raise DataError(f"Categorical features {unknown[:10]} are not among the features.")
    return list(categorical or ())


def _labels(y: Any, rows: int, what: str) -> np.ndarray:
    labels = np.asarray(y, dtype=float).ravel()
    if labels.size != rows:
        raise DataError(f"The {what} set has {rows} feature rows but {labels.size} labels.")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise DataError(f"The {what} labels must be 0 or 1 with no missing values.")
    positives = int(labels.sum())
    if positives in (0, rows):
        raise DataError(
            f"The {what} set has {positives} positives among {rows} rows; both outcomes are "
            "needed. Widen the training window or the population.",
            detail={"set": what, "rows": rows, "positives": positives},
        )
    return labels


# -- training -----------------------------------------------------------------------------------


def _search(
    params: TrainParams, data: _Data, progress: Callable[[int, int], None] | None = None
) -> tuple[list[lgb.Booster], list[Candidate]]:
    """Train each grid shape, cheapest first; on a sample when the data is large, then the
    chosen shape on everything (its candidate replaces the sample's, marked by its rows)."""
    if len(data.y_train) <= params.search_rows or len(params.grid) == 1:
        return _fit_shapes(params, data, params.grid, progress)
    sample = _sample(data, params.search_rows, params.seed)
    _, tried = _fit_shapes(params, sample, params.grid, progress)
    chosen = tried[choose_candidate(tried, params.auc_tolerance)]
    boosters, final = _fit_shapes(params, data, ((chosen.num_leaves, chosen.max_depth),), None)
    search = [replace(c, sample_rows=len(sample.y_train)) for c in tried
              if (c.num_leaves, c.max_depth) != (chosen.num_leaves, chosen.max_depth)]
    return ([*[None] * len(search), boosters[0]],  # only the full fit is kept
            [*search, final[0]])


def _sample(data: _Data, rows: int, seed: int) -> _Data:
    """A stable share of the training rows and of the holdout (both classes kept in their
    proportions by a seeded draw), for comparing shapes."""
    rng = np.random.default_rng(seed)
    train = np.sort(rng.choice(len(data.y_train), rows, replace=False))
    valid_rows = min(len(data.y_valid), max(rows // 2, 1))
    valid = np.sort(rng.choice(len(data.y_valid), valid_rows, replace=False))
    return replace(data, X_train=_rows(data.X_train, train), y_train=data.y_train[train],
                   X_valid=_rows(data.X_valid, valid), y_valid=data.y_valid[valid])


def _rows(X: Any, index: np.ndarray) -> Any:
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


def _fit_shapes(
    params: TrainParams, data: _Data, grid: Sequence[tuple[int, int]],
    progress: Callable[[int, int], None] | None,
) -> tuple[list[lgb.Booster], list[Candidate]]:
    """Train each shape of ``grid`` on one shared binned Dataset; cheapest shapes first."""
    import lightgbm as lgb

    internal = [f"f{i}" for i in range(len(data.names))]
    # Positional names inside LightGBM: ids may hold characters LightGBM rejects or rewrites;
    # the model keeps the real ids in ``feature_names_``.
    cat_spec = [data.names.index(c) for c in data.categorical]
    dataset_params = {"max_bin": params.max_bin, "verbosity": -1, "seed": params.seed,
                      "num_threads": _threads(params)}
    dtrain = lgb.Dataset(
        data.X_train,
        label=data.y_train,
        feature_name=internal,
        categorical_feature=cat_spec,
        params=dataset_params,
        free_raw_data=False,
    )
    dvalid = dtrain.create_valid(data.X_valid, label=data.y_valid)
    shapes = sorted(grid, key=lambda s: shap_cost(1, *s))
    boosters, search = [], []
    for leaves, depth in shapes:
        lgb_params = _lgb_params(params, leaves, depth, _pos_weight(params, data))
        booster, candidate = _train_one(lgb_params, params, dtrain, dvalid, data)
        boosters.append(booster)
        search.append(candidate)
        if progress is not None:
            progress(len(search), len(shapes))
    return boosters, search


def _train_one(lgb_params: dict, params: TrainParams, dtrain, dvalid, data: _Data):
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score

    started = time.perf_counter()
    booster = lgb.train(
        lgb_params,
        dtrain,
        num_boost_round=params.max_rounds,
        valid_sets=[dvalid],
        valid_names=["holdout"],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
    )
    best = int(booster.best_iteration or booster.current_iteration())
    # Keep only the trees up to the best round, so predicting, explaining and saving all see the
    # same model and the discarded rounds cost nothing.
    trimmed = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    raw = trimmed.predict(data.X_valid, raw_score=True, num_threads=lgb_params["num_threads"])
    candidate = Candidate(
        num_leaves=lgb_params["num_leaves"],
        max_depth=lgb_params["max_depth"],
        best_iteration=best,
        holdout_auc=float(roc_auc_score(data.y_valid, raw)),
        holdout_log_loss=float(booster.best_score["holdout"]["binary_logloss"]),
        shap_cost=shap_cost(best, lgb_params["num_leaves"], lgb_params["max_depth"]),
        fit_seconds=round(time.perf_counter() - started, 3),
    )
    return trimmed, candidate


def choose_candidate(search: list[Candidate], tolerance: float) -> int:
    """Index of the cheapest candidate whose holdout AUC is within ``tolerance`` of the best."""
    best_auc = max(c.holdout_auc for c in search)
    good = [i for i, c in enumerate(search) if c.holdout_auc >= best_auc - tolerance]
    return min(good, key=lambda i: (search[i].shap_cost, -search[i].holdout_auc))


def shap_cost(trees: int, num_leaves: int, max_depth: int) -> int:
    """TreeSHAP work up to a constant: trees × leaves × depth².

    An unlimited depth (``max_depth <= 0``) counts as the deepest tree ``num_leaves`` allow
    (``num_leaves - 1``), so an unbounded shape never looks cheaper than a bounded one.
    """
    depth = max_depth if max_depth > 0 else num_leaves - 1
    return trees * num_leaves * depth**2


def _lgb_params(params: TrainParams, leaves: int, depth: int, pos_weight: float) -> dict:
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "num_leaves": leaves,
        "max_depth": depth,
        "learning_rate": params.learning_rate,
        "min_data_in_leaf": params.min_data_in_leaf,
        "feature_fraction": params.feature_fraction,
        "bagging_fraction": params.bagging_fraction,
        "bagging_freq": params.bagging_freq,
        "lambda_l2": params.lambda_l2,
        "max_bin": params.max_bin,
        "scale_pos_weight": pos_weight,
        "seed": params.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": _threads(params),
        "verbosity": -1,
    }


def _threads(params: TrainParams) -> int:
    return params.num_threads or physical_cores()


def _pos_weight(params: TrainParams, data: _Data) -> float:
    if not params.balance_classes:
        return 1.0
    positives = float(data.y_train.sum())
    return (data.y_train.size - positives) / positives


def _calibrate(params: TrainParams, raw: np.ndarray, y: np.ndarray) -> Calibrator:
    from likely.model.calibration import choose_calibrator

    methods = ("sigmoid", "isotonic") if params.calibration == "auto" else (params.calibration,)
    return choose_calibrator(
        raw, y, folds=params.calibration_folds, seed=params.seed, methods=methods
    )
