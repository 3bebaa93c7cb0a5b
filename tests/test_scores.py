"""Score, percentile, bucket and reasons (behaviours, importance)."""

from __future__ import annotations

import numpy as np
import pytest

from likely.data.schema import CART_ADD, PRODUCT_VIEW, VALUE
from likely.features.plan import FeatureDef
from likely.scoring.scores import (
    Behaviours,
    ImportanceScale,
    Reasons,
    buckets,
    percentiles,
    reason_codes,
    relative_scores,
    top_reasons,
)


def test_score_is_relative_to_the_99th_percentile_and_capped():
    p = np.linspace(0.001, 0.2, 1000)
    score, reference = relative_scores(p)
    assert reference == pytest.approx(np.quantile(p, 0.99))
    assert score.max() == 100.0
    assert score[0] == pytest.approx(100 * 0.001 / reference, abs=0.01)
    assert (np.diff(score) >= 0).all()


def test_percentile_is_the_rank_and_ties_share_it():
    p = np.array([0.1, 0.5, 0.5, 0.9] * 25)
    pct = percentiles(p)
    assert set(pct[p == 0.1]) == {25} and set(pct[p == 0.5]) == {75}
    assert set(pct[p == 0.9]) == {100}
    spread = percentiles(np.linspace(0, 1, 1000))
    assert spread.min() == 1 and spread.max() == 100 and (np.diff(spread) >= 0).all()
    assert pct[p == 0.9].min() > pct[p == 0.5].max() > pct[p == 0.1].max()


def test_buckets_apply_cutoffs_to_the_score():
    assert list(buckets(np.array([0, 24.9, 25, 74.9, 75, 100]), (25, 75))) == [
        "Low", "Low", "Medium", "Medium", "High", "High"]


def feature(fid: str, source: str, kind: str = "numeric") -> FeatureDef:
    return FeatureDef(fid, f"words for {fid}", kind, source, "count", None)


FEATURES = [feature("views_30d", PRODUCT_VIEW), feature("cart_30d", CART_ADD),
            feature("views_last", PRODUCT_VIEW), feature("tier", "tier", "categorical"),
            feature("spend_90d", VALUE)]
BEHAVIOURS = Behaviours.from_features(FEATURES)
VALUES = [np.array([3.0, 0.0, 12.5]), np.array([1.0, np.nan, 2.0]), np.array([2.0, 40.0, 1.0]),
          np.array(["gold", None, "silver"], dtype=object), np.array([10.0, 0.0, 99.0])]
CONTRIB = np.array([
    # views_30d, cart,  views_last, tier,  spend
    [0.30,      -0.50,  0.40,       0.0,   0.20],   # views 0.7 > cart -0.5 > spend 0.2; tier 0
    [0.80,       0.10, -0.80,      -0.05,  0.0],    # views cancel out: no reason, though large
    [-0.05,      0.0,   0.0,        0.0,   0.0],    # one reason only
])


def test_behaviours_group_features_by_source_in_plan_order():
    assert BEHAVIOURS.sources == (PRODUCT_VIEW, CART_ADD, "tier", VALUE)
    assert BEHAVIOURS.words == ("product views", "cart adds", "tier", "spend")
    assert BEHAVIOURS.of_feature.tolist() == [0, 1, 0, 2, 3]
    sums = BEHAVIOURS.sums(CONTRIB)
    np.testing.assert_allclose(sums[:, 0], CONTRIB[:, 0] + CONTRIB[:, 2])
    np.testing.assert_allclose(sums.sum(axis=1), CONTRIB.sum(axis=1))
    assert BEHAVIOURS.strongest(CONTRIB)[:, 0].tolist() == [2, 0, 0]  # ties: plan order


def test_reasons_are_distinct_behaviours_told_by_their_strongest_feature():
    reasons = top_reasons(CONTRIB, VALUES, BEHAVIOURS)
    assert reasons.counts.tolist() == [3, 2, 1]  # zero sums are no reason
    codes = reason_codes(reasons, BEHAVIOURS, ImportanceScale(reference=1.0)).to_pylist()
    first = codes[0]
    assert [r["behaviour"] for r in first] == ["product views", "cart adds", "spend"]
    assert first[0] == {
        "factor": "views_last", "name": "words for views_last", "value": "2",
        "contribution": pytest.approx(0.7), "direction": "+", "importance": "high",
        "behaviour": "product views", "factor_contribution": 0.4}
    assert [(r["factor"], r["direction"], r["importance"]) for r in first[1:]] == [
        ("cart_30d", "-", "high"), ("spend_90d", "+", "medium")]
    assert first[1]["value"] == "1" and first[2]["value"] == "10"
    assert [(r["factor"], r["value"], r["importance"]) for r in codes[1]] == [
        ("cart_30d", None, "medium"), ("tier", None, "low")]
    assert [r["behaviour"] for r in codes[2]] == ["product views"]
    assert codes[2][0]["value"] == "12.5" and codes[2][0]["direction"] == "-"
    for row in codes:
        magnitudes = [abs(r["contribution"]) for r in row]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert len({r["behaviour"] for r in row}) == len(row)


def test_reasons_stream_in_batches_and_keep_at_most_top():
    whole = top_reasons(CONTRIB, VALUES, BEHAVIOURS, top=2)
    parts = [top_reasons(CONTRIB[i:i + 1], [v[i:i + 1] for v in VALUES], BEHAVIOURS, top=2)
             for i in range(3)]
    scale = ImportanceScale(reference=0.5)
    expected = reason_codes(whole, BEHAVIOURS, scale).to_pylist()
    assert reason_codes(Reasons.concat(parts), BEHAVIOURS, scale).to_pylist() == expected
    assert [len(r) for r in expected] == [2, 2, 1]
    empty = top_reasons(np.zeros((0, 5)), [v[:0] for v in VALUES], BEHAVIOURS)
    assert reason_codes(empty, BEHAVIOURS, scale).to_pylist() == []
    assert reason_codes(Reasons.concat([]), BEHAVIOURS, scale).to_pylist() == []


def test_importance_is_one_yardstick_monotone_in_the_contribution():
    scale = ImportanceScale.from_mean_abs([0.2, 1.0, 0.05])
    assert scale.reference == 1.0
    assert scale.labels(np.array([0.6, -0.5, 0.3, -0.1, 0.09])).tolist() == [
        "high", "high", "medium", "medium", "low"]
    magnitudes = np.linspace(0, 2, 201)
    assert (np.diff(scale.levels(magnitudes)) >= 0).all()
    assert ImportanceScale.from_mean_abs([0.0, 0.0]).labels(np.array([1.0])).tolist() == ["low"]
    assert ImportanceScale.from_mean_abs([]).reference == 0.0
