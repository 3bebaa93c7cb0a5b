"""The fast exact TreeSHAP (likely.model.treeshap) equals LightGBM's pred_contrib within 1e-9.

Every model here is small (seconds to train on 2 cores) but has what the fast path must get
right: shallow and deep trees, interactions, NaN with each missing-value handling, zeros treated
as missing, categorical splits on pandas categories and on integer codes (with unseen, negative,
fractional and huge codes), values lying exactly on thresholds, tiny values LightGBM reads as 0,
infinities; a PropensityModel trained by a real run on demo data, through the streaming scoring
path; and every fall-back to pred_contrib.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.sparse

from conftest import scored_features
from likely.model import explain as ex
from likely.model import treeshap
from likely.model.train import PropensityModel, TrainParams
from likely.scoring import outputs
from likely.scoring.records import run_dir
from likely.workspace import Workspace

TOL = 1e-9
BASE = {"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 3,
        "deterministic": True, "learning_rate": 0.1}


def train(X, y, rounds: int, **params) -> lgb.Booster:
    categorical = params.pop("categorical_feature", "auto")
    data = lgb.Dataset(X, label=y, categorical_feature=categorical,
                       params={"verbosity": -1, "min_data_in_bin": 1})
    return lgb.train({**BASE, **params}, data, num_boost_round=rounds)


def fast(booster: lgb.Booster, X) -> treeshap.Result:
    """The fast result, asserted equal to pred_contrib on every row and column."""
    result = treeshap.contributions(booster, X, num_threads=1, min_rows=0)
    assert result is not None
    reference = booster.predict(X, pred_contrib=True, num_threads=1)
    assert result.values.shape == reference.shape
    diff = np.abs(result.values - reference).max()
    assert diff <= TOL, diff
    assert result.fast_trees + result.lightgbm_trees <= booster.num_trees()
    return result


def numeric_data(rows: int, seed: int, features: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Continuous, count-like and rounded features, 5% NaN, a logit with interactions."""
    rng = np.random.default_rng(seed)
    X = np.empty((rows, features))
    for j in range(features):
        kind = j % 3
        X[:, j] = (rng.normal(size=rows) if kind == 0 else rng.poisson(2 + j, size=rows)
                   if kind == 1 else np.round(rng.exponential(20, size=rows), 1))
    X[rng.random(X.shape) < 0.05] = np.nan
    Z = np.nan_to_num(X)
    logit = (-1 + 0.9 * Z[:, 0] - 0.3 * Z[:, 1] + 0.03 * Z[:, 2] + 0.6 * Z[:, 3] * Z[:, 6]
             + 0.5 * (Z[:, 4] > 4) * (Z[:, 5] < 20) - 0.4 * np.isnan(X[:, 7]))
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def thresholds_by_feature(booster: lgb.Booster) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}

    def walk(node):
        if "split_index" in node:
            if node["decision_type"] == "<=":
                out.setdefault(node["split_feature"], []).append(float(node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    return out


def edge_rows(booster: lgb.Booster, X: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rows of ``X`` with values put exactly on thresholds, one ulp either side, at ±0, at
    tiny values LightGBM reads as 0, at ±inf and NaN."""
    rng = np.random.default_rng(seed)
    rows = X[rng.integers(0, len(X), 600)].copy()
    special = [0.0, -0.0, 1e-40, -1e-40, 1e-35, -1e-30, np.inf, -np.inf, np.nan]
    for f, ts in thresholds_by_feature(booster).items():
        values = [*ts, *np.nextafter(ts, np.inf), *np.nextafter(ts, -np.inf), *special]
        picks = rng.integers(0, len(rows), len(values))
        rows[picks, f] = values
    return rows


# -- numerical models -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def numeric():
    return numeric_data(4000, 1), numeric_data(3000, 2)


def test_shallow_trees_with_interactions_and_nan_match_pred_contrib(numeric):
    (X, y), (Xt, _) = numeric
    booster = train(X, y, 120, num_leaves=31, max_depth=5, min_data_in_leaf=20)
    result = fast(booster, Xt)
    assert result.fast_trees == booster.num_trees() and result.lightgbm_trees == 0
    fast(booster, edge_rows(booster, Xt))
    # a float32 matrix and an int matrix are read as LightGBM reads them (float32)
    fast(booster, Xt.astype(np.float32))
    fast(booster, np.nan_to_num(Xt).astype(np.int64))


@pytest.mark.parametrize("params", [
    {"num_leaves": 7, "max_depth": 3},
    {"num_leaves": 15, "max_depth": 4},
    {"num_leaves": 63, "max_depth": 6, "min_data_in_leaf": 5},
    {"num_leaves": 40, "max_depth": 10, "min_data_in_leaf": 5, "feature_fraction": 0.5},
])
def test_tree_shapes_match_pred_contrib(numeric, params):
    (X, y), (Xt, _) = numeric
    booster = train(X, y, 40, **params)
    fast(booster, Xt)
    fast(booster, edge_rows(booster, Xt, seed=1))


def test_deep_trees_match_pred_contrib(numeric):
    (X, y), (Xt, _) = numeric
    booster = train(X, y, 12, num_leaves=255, max_depth=-1, min_data_in_leaf=3,
                    min_sum_hessian_in_leaf=0)
    result = fast(booster, Xt[:1000])  # deep, but at most 8 distinct features on a path
    assert result.fast_trees == booster.num_trees()
    fast(booster, edge_rows(booster, Xt, seed=2)[:300])
    # with 24 features some paths have more than MAX_PATH_FEATURES: those trees go to LightGBM
    (X, y), (Xt, _) = numeric_data(4000, 1, features=24), numeric_data(500, 2, features=24)
    booster = train(X, y, 12, num_leaves=255, max_depth=-1, min_data_in_leaf=3,
                    min_sum_hessian_in_leaf=0)
    result = fast(booster, Xt)
    assert result.fast_trees > 0 and result.lightgbm_trees > 0


@pytest.mark.parametrize("params", [
    {"zero_as_missing": True},  # missing type Zero: 0.0 (and NaN) go the default way
    {"use_missing": False},  # missing type None: NaN is read as 0.0
])
def test_missing_value_handlings_match_pred_contrib(numeric, params):
    (X, y), (Xt, _) = numeric
    X = X.copy()
    X[::4, 1] = 0.0  # counts with many zeros
    X[::6, 0] = 0.0
    booster = train(X, y, 40, num_leaves=15, max_depth=4, **params)
    kinds = {n["missing_type"] for t in booster.dump_model()["tree_info"]
             for n in _nodes(t["tree_structure"])}
    assert kinds == ({"Zero"} if params.get("zero_as_missing") else {"None"})
    fast(booster, Xt)
    fast(booster, edge_rows(booster, Xt, seed=3))


def _nodes(node):
    if "split_index" in node:
        yield node
        yield from _nodes(node["left_child"])
        yield from _nodes(node["right_child"])


# -- categorical models ---------------------------------------------------------------------------


COLOURS = [f"c{i}" for i in range(30)]


def category_frame(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    colour = rng.choice(COLOURS, rows).astype(object)
    colour[rng.random(rows) < 0.08] = None
    tier = rng.choice(["bronze", "silver", "gold"], rows).astype(object)
    tier[rng.random(rows) < 0.05] = None
    visits = rng.poisson(3, rows).astype(float)
    visits[rng.random(rows) < 0.05] = np.nan
    frame = pd.DataFrame({
        "visits": visits,
        "colour": pd.Categorical(colour, categories=COLOURS),
        "spend": np.round(rng.exponential(50, rows), 2),
        "tier": pd.Categorical(tier, categories=["bronze", "silver", "gold"]),
    })
    weight = {c: (i % 7 - 3) / 2 for i, c in enumerate(COLOURS)}
    logit = (-1 + np.array([weight.get(c, 1.0) if c else 1.0 for c in colour])
             + 0.8 * (tier == "gold") + 0.2 * np.nan_to_num(visits) - 0.01 * frame["spend"])
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame, y


@pytest.fixture(scope="module")
def categorical():
    X, y = category_frame(5000, 1)
    booster = train(X, y, 80, num_leaves=31, max_depth=6, min_data_per_group=5, cat_smooth=1,
                    max_cat_to_onehot=4, min_data_in_leaf=10)
    return booster, category_frame(3000, 2)[0]


def test_categorical_frames_match_pred_contrib(categorical):
    booster, Xt = categorical
    kinds = {n["decision_type"] for t in booster.dump_model()["tree_info"]
             for n in _nodes(t["tree_structure"])}
    assert kinds == {"<=", "=="}
    many = [n["threshold"] for t in booster.dump_model()["tree_info"]
            for n in _nodes(t["tree_structure"]) if n["decision_type"] == "=="]
    assert any("||" in str(t) for t in many)  # many-vs-many category sets
    result = fast(booster, Xt)
    assert result.fast_trees == booster.num_trees()


def test_unseen_and_missing_categories_match_pred_contrib(categorical):
    booster, Xt = categorical
    # a scoring frame whose categories differ from training: unseen values become NaN for LightGBM
    colours = ["new", *reversed(COLOURS)]
    values = Xt["colour"].astype(object).to_numpy().copy()
    values[::5] = "new"
    other = Xt.assign(colour=pd.Categorical(values, categories=colours))
    fast(booster, other)


def test_categorical_codes_in_arrays_match_pred_contrib(categorical):
    booster, Xt = categorical
    codes = Xt.assign(colour=Xt["colour"].cat.codes.replace(-1, np.nan).astype(float),
                      tier=Xt["tier"].cat.codes.replace(-1, np.nan).astype(float))
    matrix = codes.to_numpy(dtype=float)
    odd = np.array([-1.0, -0.5, -1e-40, 0.5, 2.7, 29.999, 31, 64, 1e6, 3e9, -3e9, np.inf,
                    -np.inf, np.nan])
    rng = np.random.default_rng(4)
    for column in (1, 3):
        matrix[rng.integers(0, len(matrix), 300), column] = rng.choice(odd, 300)
    # an array model: same trees, no pandas categories to map
    array_booster = lgb.Booster(model_str=booster.model_to_string())
    fast(array_booster, matrix)


@pytest.mark.parametrize("seed", range(6))
def test_random_models_on_mixed_frames_match_pred_contrib(seed):
    """Shapes, missing-value settings and categorical options drawn at random."""
    rng = np.random.default_rng(100 + seed)
    X, y = category_frame(3000, seed)
    Xn = numeric_data(3000, seed)[0]
    X = X.assign(**{f"n{j}": Xn[:, j] for j in range(4)})
    X.loc[rng.random(len(X)) < 0.2, "n1"] = 0.0
    params = {
        "num_leaves": int(rng.choice([7, 31, 63])), "max_depth": int(rng.choice([3, 6, -1])),
        "min_data_in_leaf": int(rng.choice([3, 20])), "zero_as_missing": bool(rng.random() < 0.4),
        "use_missing": bool(rng.random() < 0.8), "max_cat_to_onehot": int(rng.choice([4, 40])),
        "min_data_per_group": 5, "cat_smooth": 1, "feature_fraction": 0.7,
    }
    booster = train(X, y, 25, **params)
    Xt, _ = category_frame(1500, seed + 50)
    Xtn = numeric_data(1500, seed + 50)[0]
    Xt = Xt.assign(**{f"n{j}": Xtn[:, j] for j in range(4)})
    fast(booster, Xt)
    # the same trees reading float codes, with values on and around every threshold
    numeric = Xt.assign(colour=Xt["colour"].cat.codes.astype(float).replace(-1, np.nan),
                        tier=Xt["tier"].cat.codes.astype(float).replace(-1, np.nan))
    array_booster = lgb.Booster(model_str=booster.model_to_string())
    fast(array_booster, edge_rows(array_booster, numeric.to_numpy(dtype=float), seed))


def test_float32_frames_are_read_as_lightgbm_reads_them(categorical):
    booster, Xt = categorical
    fast(booster, Xt.astype({"visits": np.float32, "spend": np.float32}))


# -- likely's own model, and the streaming scoring path --------------------------------------------


def test_propensity_model_on_frames_and_explain_batches(categorical):
    X, y = category_frame(4000, 5)
    Xv, yv = category_frame(2000, 6)
    params = TrainParams(learning_rate=0.1, max_rounds=200, early_stopping_rounds=20,
                         num_threads=1, grid=((15, 4), (31, 6)))
    model = PropensityModel(params).fit(X, y, Xv, yv)
    Xt, _ = category_frame(3000, 7)
    slow = ex.contributions(model, Xt, method="lightgbm")
    quick = ex.contributions(model, Xt, method="fast")
    assert np.abs(quick - slow).max() <= TOL
    # batches, top factors and the streamed global importance are the same either way
    acc_fast, acc_slow = ex.ShapAccumulator(4), ex.ShapAccumulator(4)
    batches = [Xt.iloc[i:i + 700] for i in range(0, len(Xt), 700)]
    for batch in batches:
        a = ex.explain_batch(model, batch, top_k=3, accumulator=acc_fast)
        b_ = ex.explain_batch(model, batch, top_k=3, accumulator=acc_slow)
        np.testing.assert_allclose(a.raw_score, b_.raw_score, atol=TOL)
        np.testing.assert_allclose(a.contribution, b_.contribution, atol=TOL)
    np.testing.assert_allclose(acc_fast.mean_abs(), acc_slow.mean_abs(), atol=TOL)


@pytest.fixture(scope="module")
def fast_run(demo_workspace: Path, tmp_path_factory):
    """A real run on demo data that explains through the fast path in 1,000-row batches."""
    path = tmp_path_factory.mktemp("fast-run") / "ws"
    shutil.copytree(demo_workspace, path)
    ws = Workspace(path)
    ws.create_instance({
        "name": "buyers", "datasets": {"events": "events", "profiles": "profiles"},
        "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
        "min_positives": 150, "min_negatives": 150,
    })
    patch = pytest.MonkeyPatch()
    calls = []
    original = treeshap.contributions

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(result)
        return result

    patch.setattr(treeshap, "MIN_ROWS", 0)
    patch.setattr(treeshap, "contributions", spy)
    patch.setattr(outputs, "BATCH_ROWS", 1000)
    try:
        run = ws.run("buyers")
    finally:
        patch.undo()
    return ws, run, calls


def test_a_run_on_demo_data_explains_through_the_fast_path_exactly(fast_run):
    ws, run, calls = fast_run
    assert len(calls) >= 3 and all(c is not None and c.fast_trees for c in calls)
    folder = run_dir(ws.path, run.instance_id, run.id)
    model, plan, features, frame = scored_features(folder)
    reference = model.fitted_booster().predict(frame, pred_contrib=True)
    assert np.abs(ex.contributions(model, frame, method="fast") - reference).max() <= TOL
    # the stored reasons are sums of exact contributions
    index = {f.id: i for i, f in enumerate(plan.features)}
    ids = features.column("profile_id").to_pylist()
    row_of = {p: i for i, p in enumerate(ids)}
    checked = 0
    for record in pq.read_table(folder / "scores.parquet").to_pylist():
        for reason in record["influential_factors"] or []:
            value = reference[row_of[record["profile_id"]], index[reason["factor"]]]
            assert reason["factor_contribution"] == pytest.approx(value, abs=TOL)
            checked += 1
    assert checked > 0
    mean_abs = np.abs(reference[:, :-1]).mean(axis=0)
    for factor in ws.factors("buyers")["factors"]:
        assert factor["mean_abs_shap"] == pytest.approx(mean_abs[index[factor["factor"]]],
                                                        rel=1e-9, abs=1e-12)


# -- fall-backs -----------------------------------------------------------------------------------


def test_multiclass_and_other_inputs_fall_back_to_pred_contrib(numeric):
    (X, y), (Xt, _) = numeric
    classes = (np.nan_to_num(X[:, 0]) > 0).astype(int) + y
    booster = lgb.train({**BASE, "objective": "multiclass", "num_class": 3, "num_leaves": 7},
                        lgb.Dataset(X, classes), num_boost_round=5)
    assert treeshap.contributions(booster, Xt, min_rows=0) is None
    np.testing.assert_array_equal(ex.contributions(booster, Xt, method="fast"),
                                  booster.predict(Xt, pred_contrib=True))
    binary = train(X, y, 10, num_leaves=7)
    sparse = scipy.sparse.csr_matrix(np.nan_to_num(Xt))
    assert treeshap.contributions(binary, sparse, min_rows=0) is None
    assert treeshap.contributions(binary, Xt[:, :5], min_rows=0) is None
    with pytest.raises(Exception, match="number of features"):
        ex.contributions(binary, Xt[:, :5], method="fast")
    # few rows: 'auto' leaves them to pred_contrib
    assert treeshap.contributions(binary, Xt[:100]) is None


def test_linear_trees_are_left_to_pred_contrib(numeric):
    (X, y), (Xt, _) = numeric
    booster = train(np.nan_to_num(X), y, 10, num_leaves=7, linear_tree=True)
    assert treeshap.contributions(booster, np.nan_to_num(Xt), min_rows=0) is None
    with pytest.raises(lgb.basic.LightGBMError, match="linear trees"):  # LightGBM's own answer
        ex.contributions(booster, np.nan_to_num(Xt), method="fast")


def test_trees_beyond_the_limits_are_explained_by_lightgbm_tree_by_tree(numeric, monkeypatch):
    (X, y), (Xt, _) = numeric
    booster = train(X, y, 30, num_leaves=15, max_depth=4)
    monkeypatch.setattr(treeshap, "MAX_PATH_FEATURES", 3)  # trees with longer paths: LightGBM
    result = fast(booster, Xt)
    assert result.lightgbm_trees > 0 and result.fast_trees > 0
    monkeypatch.setattr(treeshap, "MAX_PATH_FEATURES", 1)  # no tree has such short paths only
    other = train(X, y, 31, num_leaves=15, max_depth=4)
    plan = treeshap.plan_for(other)
    assert plan.fast_trees == 0 and plan.lightgbm_trees == other.num_trees()
    assert treeshap.contributions(other, Xt, min_rows=0) is None  # nothing to gain: pred_contrib
    np.testing.assert_array_equal(ex.contributions(other, Xt, method="fast"),
                                  other.predict(Xt, pred_contrib=True))


def test_tables_beyond_the_budget_are_built_batch_by_batch(numeric, monkeypatch):
    (X, y), (Xt, _) = numeric
    monkeypatch.setattr(treeshap, "TABLE_BUDGET", 20_000)  # the first trees' tables are kept
    booster = train(X, y, 40, num_leaves=15, max_depth=4)
    plan = treeshap.plan_for(booster)
    assert plan.units and len(plan.transient) > 1 and plan.table_cells <= 20_000
    result = fast(booster, Xt)
    assert result.fast_trees == booster.num_trees() and result.lightgbm_trees == 0


def test_a_wrong_table_is_caught_and_pred_contrib_used(numeric):
    (X, y), (Xt, _) = numeric
    booster = train(X, y, 20, num_leaves=15, max_depth=4)
    plan = treeshap.plan_for(booster)
    assert plan is not None and plan.units
    plan.units[0].table[:] += 1e-6  # as a wrong decision rule would
    with pytest.warns(RuntimeWarning, match="differs from LightGBM"):
        assert treeshap.contributions(booster, Xt, min_rows=0) is None
    assert plan.broken  # not used again for this model
    np.testing.assert_array_equal(ex.contributions(booster, Xt, method="fast"),
                                  booster.predict(Xt, pred_contrib=True, num_threads=0))


def test_the_plan_is_built_once_and_rebuilt_when_the_model_changes(numeric):
    (X, y), (Xt, _) = numeric
    booster = train(X, y, 10, num_leaves=7)
    plan = treeshap.plan_for(booster)
    assert treeshap.plan_for(booster) is plan
    other = train(X, y, 12, num_leaves=15)
    booster.model_from_string(other.model_to_string())
    assert treeshap.plan_for(booster) is not plan
    fast(booster, Xt)
