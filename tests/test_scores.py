"""Score, percentile, bucket, reason codes, and the run windows with their history checks."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pytest

from likely.config import parse_instance_config
from likely.errors import RunError
from likely.scoring.scores import FactorNames, buckets, percentiles, reason_codes, relative_scores
from likely.scoring.windows import plan_windows


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


def test_reason_codes_are_the_top_factors_by_magnitude_with_signs():
    contrib = np.array([[0.1, -2.0, 0.5], [3.0, 0.0, -0.2]])
    values = [np.array([1.0, 2.0]), np.array([7.0, np.nan]), np.array(["gold", "silver"],
                                                                      dtype=object)]
    names = FactorNames(["a", "b", "c"], ["Factor A", "Factor B", "Factor C"])
    codes = reason_codes(contrib, values, names, np.array([1.0, 1.0, 1.0]), top=2).to_pylist()
    assert [f["factor"] for f in codes[0]] == ["b", "c"]
    assert codes[0][0] == {"factor": "b", "name": "Factor B", "value": "7", "contribution": -2.0,
                           "direction": "-", "importance": "high"}
    assert codes[0][1]["importance"] == "medium" and codes[0][1]["value"] == "gold"
    assert [f["factor"] for f in codes[1]] == ["a", "c"]
    assert codes[1][1]["value"] == "silver" and codes[1][1]["importance"] == "low"


CONFIG = {"name": "x", "datasets": {"events": "e"},
          "goal": {"conditions": ["event_type = 'buy'"], "window_days": 30}}


def test_windows_step_back_one_outcome_window_at_a_time():
    cfg = parse_instance_config(CONFIG)
    w = plan_windows(cfg, datetime(2025, 1, 1), datetime(2025, 6, 29, 18), None)
    assert w.as_of == date(2025, 6, 29) and w.cutoff == datetime(2025, 6, 30)
    assert w.anchors[0] == datetime(2025, 5, 31) and len(w.anchors) == 5
    assert all((a - b).days == 30 for a, b in zip(w.anchors, w.anchors[1:], strict=False))
    assert (w.anchors[-1] - datetime(2025, 1, 1)).days == 30  # 30 days of history at least
    assert w.short_lookback == (w.anchors[-1],)  # less than the 45-day lookback there
    cfg = parse_instance_config({**CONFIG, "population": {"lookback_days": 30}})
    assert plan_windows(cfg, datetime(2025, 1, 1), datetime(2025, 6, 29, 18), None).notes() == []


def test_a_lookback_longer_than_the_data_keeps_anchors_and_says_so():
    cfg = parse_instance_config({**CONFIG, "population": {"lookback_days": 365}})
    w = plan_windows(cfg, datetime(2025, 1, 1), datetime(2025, 6, 29, 18), None)
    assert len(w.anchors) == 5 and (w.anchors[-1] - datetime(2025, 1, 1)).days >= 30
    assert w.short_lookback == w.anchors
    assert "reaches before the data starts (2025-01-01)" in w.notes()[0]


def test_not_enough_history_is_error_407_with_the_numbers():
    cfg = parse_instance_config(CONFIG)
    with pytest.raises(RunError, match=r"\[407\] Not enough history: 50 days available .* 60 "
                                       r"required \(30 days of history \+ outcome window 30\)"):
        plan_windows(cfg, datetime(2025, 1, 1), datetime(2025, 2, 19, 12), None)


def test_no_recent_data_is_error_408():
    cfg = parse_instance_config(CONFIG)
    with pytest.raises(RunError, match=r"\[408\] No recent data"):
        plan_windows(cfg, datetime(2024, 1, 1), datetime(2024, 6, 1), date(2024, 12, 31))
