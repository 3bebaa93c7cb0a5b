"""The lifetime-value models: what each customer will spend over the horizon, two ways.

- :class:`ValueModel`: LightGBM trees on the behavioural features with a Tweedie loss. A
  customer's spend over a horizon is zero for most and heavy-tailed for the rest; the Tweedie
  family (variance power between 1 and 2) is a compound Poisson-gamma, a point mass at zero plus
  a continuous tail, which fits that shape without a separate "will they buy" model. Its raw
  output is the log of the expected value, so TreeSHAP explains it in log-value, and a reason's
  contribution reads "this behaviour multiplies the expected value by e^φ".
- :class:`BuyTillYouDie`: BG/NBD for how many purchases, Gamma-Gamma for how much each (see
  :mod:`likely.model.btyd`), fitted on purchase history alone. It is the baseline the trees must
  beat, and the source of ``expected_purchases`` and ``probability_active`` for every customer.

Both are saved together in one model file (:func:`save_value_model`), with which one the run
chose, so a re-scoring run reads the same pair.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from likely.data.schema import PROFILE_ID
from likely.errors import DataError
from likely.model import btyd
from likely.model.store import (
    ModelFileError,
    _check_lightgbm,
    _content_hash,
    _likely_version,
    _read_json,
    restore_trees,
)
from likely.model.train import TreeModel, _threads, _validate
from likely.storage import write_bytes

if TYPE_CHECKING:
    import ibis.expr.types as ir

FORMAT = "likely-value-model"
FORMAT_VERSION = 1
Choice = Literal["trees", "btyd"]


@dataclass(frozen=True)
class ValueParams:
    """Settings of one value-model training. One shallow shape (cheap to explain on every
    customer every run); early stopping on ``validation_share`` of the training rows, so the
    holdout the run reports on is never used to fit."""

    num_leaves: int = 15
    max_depth: int = 4
    learning_rate: float = 0.05
    tweedie_variance_power: float = 1.5
    max_rounds: int = 2000
    early_stopping_rounds: int = 50
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    validation_share: float = 0.15
    seed: int = 0
    num_threads: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValueParams:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class ValueModel(TreeModel):
    """Gradient-boosted trees that predict the value a customer spends over the horizon.

    >>> model = ValueModel().fit(X_train, spend_train)  # doctest: +SKIP
    >>> model.predict(X_scoring)                          # doctest: +SKIP
    """

    def __init__(self, params: ValueParams | None = None) -> None:
        self.params = params or ValueParams()

    def fit(self, X: Any, y: Any, feature_names: Sequence[Any] | None = None, *,
            categorical: Sequence[str] | None = None) -> ValueModel:
        """Train on ``X`` (a DataFrame or float array) and the spend ``y`` (≥ 0), stopping early
        on a seeded share of these rows."""
        import lightgbm as lgb

        params = self.params
        rows = len(y)
        rng = np.random.default_rng(params.seed)
        early = rng.random(rows) < params.validation_share
        pick = (lambda m: X.iloc[np.flatnonzero(m)]) if hasattr(X, "iloc") else (lambda m: X[m])
        y = np.asarray(y, dtype=float)
        data = _validate(pick(~early), y[~early], pick(early), y[early], feature_names,
                         categorical, labels=_spend)
        started = time.perf_counter()
        lgb_params = self._lgb_params()
        internal = [f"f{i}" for i in range(len(data.names))]
        cat_spec = [data.names.index(c) for c in data.categorical]
        dtrain = lgb.Dataset(data.X_train, label=data.y_train, feature_name=internal,
                             categorical_feature=cat_spec, free_raw_data=False,
                             params={"verbosity": -1, "seed": params.seed,
                                     "num_threads": lgb_params["num_threads"]})
        dvalid = dtrain.create_valid(data.X_valid, label=data.y_valid)
        booster = lgb.train(lgb_params, dtrain, num_boost_round=params.max_rounds,
                            valid_sets=[dvalid], valid_names=["validation"],
                            callbacks=[lgb.early_stopping(params.early_stopping_rounds,
                                                          verbose=False)])
        best = int(booster.best_iteration or booster.current_iteration())
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
        self.feature_names_ = data.names
        self.categorical_ = data.categorical
        self.n_features_in_ = len(data.names)
        self.input_kind_ = "frame" if hasattr(X, "iloc") else "array"
        self.best_iteration_ = best
        self.params_ = lgb_params
        self.fit_seconds_ = round(time.perf_counter() - started, 3)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Expected value per row over the horizon (≥ 0)."""
        return value_from_raw(self.predict_raw(X))

    def summary(self) -> dict[str, Any]:
        """What a run records about the trees: shape, trees, loss, features."""
        self._check_fitted("booster_")
        return {"best_iteration": self.best_iteration_, "num_leaves": self.params_["num_leaves"],
                "max_depth": self.params_["max_depth"], "objective": "tweedie",
                "tweedie_variance_power": self.params_["tweedie_variance_power"],
                "features": len(self.feature_names_)}

    def _lgb_params(self) -> dict[str, Any]:
        p = self.params
        return {"objective": "tweedie", "metric": "tweedie",
                "tweedie_variance_power": p.tweedie_variance_power,
                "num_leaves": p.num_leaves, "max_depth": p.max_depth,
                "learning_rate": p.learning_rate, "min_data_in_leaf": p.min_data_in_leaf,
                "feature_fraction": p.feature_fraction, "bagging_fraction": p.bagging_fraction,
                "bagging_freq": p.bagging_freq, "lambda_l2": p.lambda_l2, "seed": p.seed,
                "deterministic": True, "force_row_wise": True,
                "num_threads": _threads(p), "verbosity": -1}


def value_from_raw(raw: np.ndarray) -> np.ndarray:
    """The trees' raw output is log(expected value)."""
    return np.exp(np.asarray(raw, dtype=float))


def _spend(y: Any, rows: int, what: str) -> np.ndarray:
    spend = np.asarray(y, dtype=float).ravel()
    if spend.size != rows:
        raise DataError(f"The {what} set has {rows} feature rows but {spend.size} values.")
    if not np.isfinite(spend).all() or (spend < 0).any():
        raise DataError(f"The {what} values must be finite and ≥ 0 (net spend per customer).")
    if not (spend > 0).any():
        raise DataError(f"Nobody spent anything in the {what} set: the value model needs buyers.",
                        detail={"set": what, "rows": rows})
    return spend


# -- buy till you die ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BuyTillYouDie:
    """BG/NBD × Gamma-Gamma, with times in days; fitted on one :func:`btyd.rfm_summary`."""

    transactions: btyd.BGNBDParams
    spend: btyd.GammaGammaParams

    @classmethod
    def fit(cls, rfm: dict[str, np.ndarray]) -> BuyTillYouDie:
        """Fit both models on summary columns ``frequency``, ``recency``, ``T``, ``monetary``."""
        transactions = btyd.fit_bgnbd(rfm["frequency"], rfm["recency"], rfm["T"])
        spend = btyd.fit_gamma_gamma(rfm["frequency"], rfm["monetary"])
        return cls(transactions, spend)

    def predict(self, rfm: dict[str, np.ndarray], horizon_days: int
                ) -> dict[str, np.ndarray]:
        """Per customer: expected purchases, probability active, expected value.

        Rows whose ``T`` is missing never bought before the date: the model starts a customer at
        their first purchase, so it expects nothing of them (0 purchases, value 0) and cannot
        say whether they are active (NaN).
        """
        x, t_x, T = (np.nan_to_num(np.asarray(rfm[c], dtype=float)) for c in
                     ("frequency", "recency", "T"))
        known = ~np.isnan(np.asarray(rfm["T"], dtype=float))
        purchases = np.where(known, btyd.expected_purchases(self.transactions, horizon_days,
                                                            x, t_x, T), 0.0)
        active = np.where(known, btyd.probability_active(self.transactions, x, t_x, T), np.nan)
        spend = btyd.expected_spend(self.spend, x, np.asarray(rfm["monetary"], dtype=float))
        return {"expected_purchases": purchases, "probability_active": active,
                "predicted_value": purchases * spend}

    def to_dict(self) -> dict[str, Any]:
        return {"bgnbd": self.transactions.to_dict(), "gamma_gamma": self.spend.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuyTillYouDie:
        return cls(btyd.BGNBDParams.from_dict(data["bgnbd"]),
                   btyd.GammaGammaParams.from_dict(data["gamma_gamma"]))


def rfm_columns(purchases: ir.Table, population: ir.Table, cutoff: Any) -> dict[str, np.ndarray]:
    """The population's purchase summary at ``cutoff``, in population order (``profile_id``
    sorted); profiles without purchases get NaN. One grouped query in the engine."""
    summary = btyd.rfm_summary(purchases, cutoff=cutoff)
    people = population.select(PROFILE_ID).distinct()
    joined = people.left_join(summary, PROFILE_ID).select(
        people[PROFILE_ID], "frequency", "recency", "T", "monetary").order_by(PROFILE_ID)
    table = joined.to_pyarrow()
    return {c: np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=float)
            if c != PROFILE_ID else table.column(c) for c in table.column_names}


# -- the saved pair ------------------------------------------------------------------------------


@dataclass
class ValueModels:
    """What a CLV run trains and a re-scoring run reads: the trees, the baseline, the choice."""

    trees: ValueModel
    baseline: BuyTillYouDie
    chosen: Choice
    horizon_days: int
    meta: dict[str, Any] | None = None


def save_value_model(models: ValueModels, path: str | Path, *, config: dict[str, Any],
                     instance_id: str, run_id: str) -> str:
    """Write both models and the choice atomically; return the content hash."""
    import lightgbm as lgb

    trees = models.trees
    body = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "meta": {"instance_id": instance_id, "run_id": run_id, "config": config,
                 "feature_names": list(trees.feature_names_),
                 "categorical": list(trees.categorical_), "input_kind": trees.input_kind_,
                 "likely_version": _likely_version(), "lightgbm_version": lgb.__version__,
                 "train_params": trees.params.to_dict(), "lgb_params": trees.params_,
                 "best_iteration": trees.best_iteration_},
        "chosen": models.chosen, "horizon_days": models.horizon_days,
        "baseline": models.baseline.to_dict(),
        "booster": trees.fitted_booster().model_to_string(),
    }
    digest = _content_hash(body)
    document = {**body, "content_sha256": digest}
    ordered = {k: document[k] for k in (*[k for k in document if k != "booster"], "booster")}
    write_bytes(json.dumps(ordered, indent=1, default=str).encode(), path)
    return digest


def load_value_model(path: str | Path, *, expected_sha256: str | None = None) -> ValueModels:
    """Read what :func:`save_value_model` wrote; refuse a changed or foreign file."""
    document = _read_json(Path(path), FORMAT, FORMAT_VERSION)
    body = {k: v for k, v in document.items() if k != "content_sha256"}
    actual = _content_hash(body)
    if document.get("content_sha256") != actual or (
            expected_sha256 is not None and actual != expected_sha256):
        raise ModelFileError(f"Model file {path} was changed after it was saved. Retrain the "
                             "instance to write a fresh model.", what="hash")
    meta = document["meta"]
    _check_lightgbm(meta, path)
    trees = restore_trees(ValueModel(ValueParams.from_dict(meta["train_params"])), document)
    return ValueModels(trees, BuyTillYouDie.from_dict(document["baseline"]), document["chosen"],
                       int(document["horizon_days"]), meta)

