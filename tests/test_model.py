"""The ML stages: training, calibration, evaluation, explanations and the model file.

Data are synthetic with a known logistic signal, so each test knows what the right answer is.
Models are trained once per module (small data, fast settings) and shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from likely.errors import ConfigError, DataError, LikelyError, NotFoundError
from likely.model import explain as ex
from likely.model.calibration import EPS, Calibrator, choose_calibrator
from likely.model.evaluate import evaluate
from likely.model.store import ModelFileError, _content_hash, load_model, save_model
from likely.model.train import (
    Candidate,
    NotFittedError,
    PropensityModel,
    TrainParams,
    choose_candidate,
    shap_cost,
)

FAST = TrainParams(learning_rate=0.1, max_rounds=400, early_stopping_rounds=30, num_threads=1)
NAMES = [f"feat_{i}" for i in range(8)]
# Known signal: feat_0 raises the log-odds, feat_1 lowers it, feat_2 a little; the rest is noise.
COEF = np.array([1.6, -1.2, 0.5, 0, 0, 0, 0, 0])


def logistic_data(rows: int, seed: int, intercept: float = -2.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, len(COEF)))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values, as real features have
    logit = intercept + np.nan_to_num(X) @ COEF
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


@pytest.fixture(scope="module")
def data():
    """Train / holdout / later test sets from one distribution, base rate about 15%."""
    return logistic_data(6000, 1), logistic_data(3000, 2), logistic_data(3000, 3)


@pytest.fixture(scope="module")
def model(data) -> PropensityModel:
    (X, y), (Xv, yv), _ = data
    return PropensityModel(FAST).fit(X, y, Xv, yv, NAMES)


# -- training -------------------------------------------------------------------------------------


def test_model_learns_the_signal_and_prefers_shallow_trees(model, data):
    _, _, (Xt, yt) = data
    assert roc_auc_score(yt, model.predict_proba(Xt)) > 0.8
    assert model.holdout_auc_ > 0.8
    # An additive signal: the shallowest shape is as good, so it is kept.
    assert (model.params_["num_leaves"], model.params_["max_depth"]) == (7, 3)
    assert len(model.search_) == 3
    assert [c.chosen for c in model.search_].count(True) == 1
    best = max(c.holdout_auc for c in model.search_)
    chosen = next(c for c in model.search_ if c.chosen)
    assert chosen.holdout_auc >= best - FAST.auc_tolerance
    assert model.booster_.num_trees() == model.best_iteration_


def test_choice_keeps_a_deeper_shape_only_when_it_is_clearly_better():
    def cand(leaves, depth, auc, trees=100):
        return Candidate(leaves, depth, trees, auc, 0.3, trees * leaves * depth**2, 0.1)

    close = [cand(7, 3, 0.801, trees=300), cand(15, 4, 0.802), cand(31, 6, 0.8025)]
    assert choose_candidate(close, 0.002) == 0
    apart = [cand(7, 3, 0.79, trees=300), cand(15, 4, 0.80), cand(31, 6, 0.803)]
    assert choose_candidate(apart, 0.002) == 2
    # Cost counts trees too: a shallow shape that needs far more trees loses to a cheaper one.
    many_trees = [cand(7, 3, 0.80, trees=5000), cand(15, 4, 0.80, trees=100)]
    assert choose_candidate(many_trees, 0.002) == 1
    # LightGBM's unlimited depth (-1) never counts as cheap.
    assert shap_cost(100, 31, -1) > shap_cost(100, 31, 6) > shap_cost(100, 7, 3) == 6300


def test_training_is_deterministic_and_reports_each_shape(data, model):
    (X, y), (Xv, yv), (Xt, _) = data
    heard: list[tuple[int, int]] = []
    again = PropensityModel(FAST).fit(X, y, Xv, yv, NAMES,
                                      progress=lambda done, total: heard.append((done, total)))
    np.testing.assert_array_equal(again.predict_raw(Xt), model.predict_raw(Xt))
    shapes = len(again.search_)
    assert heard == [(i, shapes) for i in range(1, shapes + 1)]


def test_large_data_compares_shapes_on_a_sample_then_fits_the_chosen_one_on_all(data, model):
    (X, y), (Xv, yv), (Xt, yt) = data
    sampled = PropensityModel(TrainParams(**{**FAST.__dict__, "search_rows": 2000})).fit(
        X, y, Xv, yv, NAMES)
    compared = [c for c in sampled.search_ if c.sample_rows == 2000]
    final = [c for c in sampled.search_ if c.sample_rows is None]
    assert len(compared) == len(FAST.grid) - 1 and len(final) == 1 and final[0].chosen
    assert sampled.booster_.num_trees() == final[0].best_iteration  # trained on every row
    assert (final[0].num_leaves, final[0].max_depth) not in {
        (c.num_leaves, c.max_depth) for c in compared}
    full_auc = roc_auc_score(yt, model.predict_raw(Xt))
    assert abs(roc_auc_score(yt, sampled.predict_raw(Xt)) - full_auc) < 0.01


def test_fit_refuses_one_class_and_wrong_shapes(data):
    (X, y), (Xv, yv), _ = data
    with pytest.raises(DataError, match="both outcomes"):
        PropensityModel(FAST).fit(X, np.zeros_like(y), Xv, yv, NAMES)
    with pytest.raises(DataError, match="shape"):
        PropensityModel(FAST).fit(X, y, Xv[:, :5], yv, NAMES)


def test_unfitted_model_raises_a_clear_error(data):
    _, _, (Xt, _) = data
    with pytest.raises(NotFittedError, match="not fitted") as info:
        PropensityModel().predict_proba(Xt)
    assert isinstance(info.value, LikelyError)
    with pytest.raises(NotFittedError):
        ex.explain(PropensityModel(), Xt)
    with pytest.raises(NotFittedError):
        Calibrator("isotonic").transform([0.1])


def test_predict_checks_the_feature_columns(model, data):
    _, _, (Xt, _) = data
    frame = pd.DataFrame(Xt, columns=NAMES)
    np.testing.assert_array_equal(model.predict_raw(frame), model.predict_raw(Xt))
    with pytest.raises(DataError, match="feat_7"):
        model.predict_raw(frame.drop(columns="feat_7"))
    with pytest.raises(DataError, match="different order"):
        model.predict_raw(frame[NAMES[::-1]])


# -- calibration ----------------------------------------------------------------------------------


def test_calibration_repairs_probabilities_of_a_reweighted_model(data):
    """Balancing the classes inflates raw probabilities; the holdout calibration undoes it."""
    (X, y), (Xv, yv), (Xt, yt) = data
    balanced = PropensityModel(TrainParams(**{**FAST.to_dict(), "balance_classes": True}))
    balanced.fit(X, y, Xv, yv, NAMES)
    raw_probability = 1 / (1 + np.exp(-balanced.predict_raw(Xt)))
    raw_ece = evaluate(yt, raw_probability).ece
    calibrated_ece = evaluate(yt, balanced.predict_proba(Xt)).ece
    assert raw_ece > 0.1
    assert calibrated_ece < 0.03
    assert abs(balanced.predict_proba(Xt).mean() - yt.mean()) < 0.02


def test_calibrator_choice_is_cross_fitted_and_recorded():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=4000)
    step = rng.random(4000) < np.where(raw < 0, 0.05, 0.6)  # not a sigmoid: isotonic wins
    chosen = choose_calibrator(raw, step)
    cmp = chosen.comparison_
    assert chosen.method == cmp["chosen"] == "isotonic"
    assert cmp["isotonic"]["log_loss"] < cmp["sigmoid"]["log_loss"]
    assert cmp["folds"] == 5 and set(cmp["raw"]) == {"log_loss", "brier"}

    few = rng.normal(size=300)
    logistic = rng.random(300) < 1 / (1 + np.exp(-(2 * few + 1)))  # a true sigmoid, few rows
    chosen = choose_calibrator(few, logistic)
    assert chosen.method == "sigmoid"
    assert chosen.comparison_["sigmoid"]["log_loss"] < chosen.comparison_["isotonic"]["log_loss"]
    assert chosen.coef_ == pytest.approx(2, abs=0.6)


def test_isotonic_stays_inside_zero_one_and_monotone():
    raw = np.linspace(-4, 4, 400)
    y = (raw > 0).astype(int)  # separable: the plain fit would reach exactly 0 and 1
    cal = Calibrator("isotonic").fit(raw, y)
    out = cal.transform(np.linspace(-10, 10, 1000))
    assert out.min() >= EPS and out.max() <= 1 - EPS
    assert out.min() > 0 and out.max() < 1
    assert np.all(np.diff(out) >= 0)
    again = Calibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(again.transform(raw), cal.transform(raw))


# -- evaluation -----------------------------------------------------------------------------------


def test_evaluate_matches_sklearn_and_brute_force():
    y = np.array([0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1])
    p = np.array([0.1, 0.2, 0.7, 0.3, 0.4, 0.05, 0.15, 0.9, 0.6, 0.25,
                  0.12, 0.33, 0.8, 0.45, 0.02, 0.55, 0.18, 0.22, 0.5, 0.65])  # fmt: skip
    e = evaluate(y, p)
    assert e.auc == pytest.approx(roc_auc_score(y, p))
    assert e.pr_auc == pytest.approx(average_precision_score(y, p))
    assert e.brier == pytest.approx(brier_score_loss(y, p))
    assert e.log_loss == pytest.approx(log_loss(y, p))
    assert (e.rows, e.positives, e.negatives, e.base_rate) == (20, 7, 13, 0.35)

    # Brute force: 10 equal-frequency bins of 2 rows each, in probability order.
    order = np.argsort(p)
    bins = [order[i : i + 2] for i in range(0, 20, 2)]
    ece = sum(len(b) / 20 * abs(p[b].mean() - y[b].mean()) for b in bins)
    assert e.ece == pytest.approx(ece)
    assert [b["rows"] for b in e.calibration] == [2] * 10
    assert e.calibration[-1]["mean_predicted"] == pytest.approx((0.9 + 0.8) / 2)

    top = e.lift[0]  # the two highest probabilities, 0.9 and 0.8, are both positives
    assert (top["decile"], top["rows"], top["positives"], top["rate"]) == (1, 2, 2, 1.0)
    assert top["lift"] == pytest.approx(1 / 0.35)
    gains = [d["cumulative_gain"] for d in e.lift]
    assert gains[-1] == 1.0 and gains == sorted(gains)
    assert sum(d["positives"] for d in e.lift) == 7
    json.dumps(e.to_dict())  # JSON-ready


def test_evaluate_refuses_one_class_and_bad_input():
    with pytest.raises(DataError, match="all 20 outcome rows are negative"):
        evaluate(np.zeros(20), np.linspace(0, 1, 20))
    with pytest.raises(DataError, match="20 outcomes but 19"):
        evaluate([0, 1] * 10, np.linspace(0, 1, 19))
    with pytest.raises(DataError, match="within"):
        evaluate([0, 1] * 10, np.linspace(0, 2, 20))


# -- explanations ---------------------------------------------------------------------------------


def test_shap_contributions_add_up_to_the_raw_score(model, data):
    _, _, (Xt, _) = data
    contribs = ex.contributions(model, Xt)
    assert contribs.shape == (len(Xt), len(NAMES) + 1)
    np.testing.assert_allclose(contribs.sum(axis=1), model.predict_raw(Xt), atol=1e-6)

    calls = []
    expl = ex.explain(model, Xt, top_k=3, batch_rows=700, progress=lambda d, t: calls.append(d))
    assert calls == [700, 1400, 2100, 2800, 3000]
    np.testing.assert_allclose(expl.raw_score, model.predict_raw(Xt), atol=1e-6)
    np.testing.assert_allclose(expl.base_value, contribs[:, -1])


def test_top_factors_are_ordered_and_signed(model, data):
    _, _, (Xt, _) = data
    contribs = ex.contributions(model, Xt)[:, :-1]
    expl = ex.explain(model, Xt, top_k=3)
    strength = np.abs(expl.contribution)
    assert np.all(np.diff(strength, axis=1) <= 0)
    np.testing.assert_array_equal(expl.feature_index[:, 0], np.abs(contribs).argmax(axis=1))
    np.testing.assert_array_equal(
        expl.contribution, np.take_along_axis(contribs, expl.feature_index, axis=1)
    )

    # The known signal: a high feat_0 raises the likelihood, a high feat_1 lowers it.
    for feature, sign in ((0, 1), (1, -1)):
        row = np.nanargmax(np.where(np.isnan(Xt[:, feature]), -np.inf, Xt[:, feature]))
        top = dict(zip(expl.feature_index[row].tolist(), expl.contribution[row], strict=True))
        assert feature in top and np.sign(top[feature]) == sign


def test_streamed_global_importance_matches_one_pass(model, data):
    _, _, (Xt, _) = data
    acc = ex.ShapAccumulator(len(NAMES))
    for start in range(0, len(Xt), 1000):  # the caller's chunks
        ex.explain_batch(model, Xt[start : start + 1000], accumulator=acc)
    streamed = ex.global_importance(acc, NAMES)
    whole = ex.global_importance(ex.contributions(model, Xt), NAMES)
    assert [n for n, _ in streamed] == [n for n, _ in whole]
    np.testing.assert_allclose([v for _, v in streamed], [v for _, v in whole], rtol=1e-12)
    assert [n for n, _ in streamed[:2]] == ["feat_0", "feat_1"]
    assert streamed[-1][1] < 0.1 * streamed[0][1]


# -- categorical features -------------------------------------------------------------------------


def tier_frame(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    tiers = rng.choice(["bronze", "silver", "gold"], size=rows)
    visits = rng.poisson(3, size=rows).astype(float)
    logit = -2 + 0.4 * visits + np.select([tiers == "gold", tiers == "silver"], [1.5, 0.5], 0.0)
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {"visits_30d": visits, "tier": pd.Categorical(tiers, ["bronze", "silver", "gold"])}
    )
    return frame, y


def test_categorical_frame_trains_explains_and_round_trips(tmp_path: Path):
    (X, y), (Xv, yv), (Xt, yt) = tier_frame(4000, 1), tier_frame(2000, 2), tier_frame(2000, 3)
    model = PropensityModel(FAST).fit(X, y, Xv, yv)
    assert model.feature_names_ == ["visits_30d", "tier"] and model.categorical_ == ["tier"]
    assert roc_auc_score(yt, model.predict_proba(Xt)) > 0.7

    expl = ex.explain(model, Xt, top_k=2)
    gold = np.flatnonzero(Xt["tier"] == "gold")
    tier = np.take_along_axis(expl.contribution, (expl.feature_index == 1).argmax(axis=1)[:, None],
                              axis=1)[:, 0]
    assert (tier[gold] > 0).all()  # top_k=2 of 2 features: tier is always there

    path = tmp_path / "model.json"
    save_model(model, path, config={"goal": "buy"}, instance_id="i1", run_id="r1")
    loaded = load_model(path, expected_features=["visits_30d", "tier"])
    np.testing.assert_array_equal(loaded.predict_proba(Xt), model.predict_proba(Xt))
    with pytest.raises(DataError, match="DataFrame"):
        loaded.predict_raw(Xt.assign(tier=Xt["tier"].cat.codes).to_numpy(dtype=float))


# -- the model file -------------------------------------------------------------------------------


def test_save_and_load_round_trip(model, data, tmp_path: Path):
    _, _, (Xt, _) = data
    path = tmp_path / "models" / "m.json"
    config = {"goal": "commerce.purchases", "window_days": 30}
    digest = save_model(model, path, config=config, instance_id="buy-30d", run_id="run-1")
    document = json.loads(path.read_text())
    assert document["content_sha256"] == digest and len(digest) == 64
    assert document["meta"]["config"] == config
    assert document["meta"]["feature_names"] == NAMES
    assert {"likely_version", "lightgbm_version"} <= set(document["meta"])
    assert "pickle" not in path.read_text()[:2000]

    loaded = load_model(path, expected_features=NAMES, expected_sha256=digest)
    np.testing.assert_array_equal(loaded.predict_proba(Xt), model.predict_proba(Xt))
    np.testing.assert_array_equal(ex.contributions(loaded, Xt), ex.contributions(model, Xt))
    assert loaded.summary() == model.summary()
    assert loaded.meta_["instance_id"] == "buy-30d"


def test_load_refuses_a_changed_file(model, tmp_path: Path):
    path = tmp_path / "m.json"
    save_model(model, path, config={}, instance_id="i", run_id="r")
    document = json.loads(path.read_text())
    document["booster"] = document["booster"].replace("leaf_value=", "leaf_value=1", 1)
    path.write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match="changed after it was saved") as info:
        load_model(path)
    assert info.value.what == "hash" and isinstance(info.value, ConfigError)


def test_load_refuses_other_features_and_lightgbm_major(model, tmp_path: Path):
    path = tmp_path / "m.json"
    digest = save_model(model, path, config={}, instance_id="i", run_id="r")
    other = [*NAMES[:-1], "days_since_last_visit"]
    with pytest.raises(ModelFileError, match="days_since_last_visit") as info:
        load_model(path, expected_features=other)
    assert info.value.detail["missing"] == ["days_since_last_visit"]
    assert info.value.detail["unexpected"] == ["feat_7"]
    with pytest.raises(ModelFileError, match="different order"):
        load_model(path, expected_features=NAMES[::-1])
    with pytest.raises(ModelFileError, match="not the model recorded"):
        load_model(path, expected_sha256="0" * 64)
    with pytest.raises(ConfigError, match="feature"):
        save_model(model, tmp_path / "x.json", config={}, instance_id="i", run_id="r",
                   feature_names=other)  # fmt: skip

    document = json.loads(path.read_text())
    body = {k: v for k, v in document.items() if k != "content_sha256"}
    body["meta"]["lightgbm_version"] = "3.3.5"
    path.write_text(json.dumps({**body, "content_sha256": _content_hash(body)}))
    assert digest != _content_hash(body)
    with pytest.raises(ModelFileError, match=r"LightGBM 3\.3\.5") as info:
        load_model(path)
    assert info.value.what == "lightgbm"


def test_load_missing_or_foreign_file(tmp_path: Path):
    with pytest.raises(NotFoundError):
        load_model(tmp_path / "nope.json")
    foreign = tmp_path / "f.json"
    foreign.write_text('{"hello": 1}')
    with pytest.raises(ModelFileError, match="not a likely model"):
        load_model(foreign)
