"""The buy-till-you-die CLV baseline: BG/NBD and Gamma-Gamma against hand-computed closed forms,
rfm_summary against a brute-force Python version, and both models against the published CDNOW
parameters; plus the holdout metrics on hand-checked arrays."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from likely.errors import ConfigError, DataError
from likely.model.btyd import (
    BGNBDParams,
    GammaGammaParams,
    bgnbd_log_likelihood,
    clv,
    expected_purchases,
    expected_purchases_new,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    probability_active,
    rfm_summary,
)
from likely.model.clv_metrics import (
    decile_mape,
    decile_totals,
    normalised_gini,
    top_decile_capture,
)

# Fader, Hardie & Lee (2005) on CDNOW's 2,357-customer sample, weeks 1-39; log-likelihood -9582.4.
PUBLISHED_BGNBD = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
# Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value", same customers and weeks.
PUBLISHED_GG = GammaGammaParams(p=6.25, q=3.74, v=15.44)
CDNOW_CACHE = Path(__file__).resolve().parent / "artifacts" / "cdnow"
CALIBRATION_END = datetime(1997, 10, 1)


def _values(params: BGNBDParams | GammaGammaParams) -> dict[str, float]:
    return {k: v for k, v in params.to_dict().items() if k != "model"}


# -- hand-computed closed forms --------------------------------------------------------------------


def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _bgnbd_by_hand(p: BGNBDParams, x: int, t_x: float, T: float) -> float:
    """Eq. 6 of the paper, term by term in plain floats."""
    r, alpha, a, b = p.r, p.alpha, p.a, p.b
    nbd = math.exp(math.lgamma(r + x) - math.lgamma(r) + r * math.log(alpha))
    alive = math.exp(_lbeta(a, b + x) - _lbeta(a, b)) * nbd / (alpha + T) ** (r + x)
    gone = 0.0
    if x > 0:
        gone = math.exp(_lbeta(a + 1, b + x - 1) - _lbeta(a, b)) * nbd / (alpha + t_x) ** (r + x)
    return math.log(alive + gone)


def _hyp2f1_series(a: float, b: float, c: float, z: float) -> float:
    """Gauss's series, summed until the terms no longer matter."""
    term, total, n = 1.0, 1.0, 0
    while abs(term) > 1e-18 * abs(total):
        term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z
        total += term
        n += 1
    return total


def _eq10_by_hand(p: BGNBDParams, t: float, x: int, t_x: float, T: float) -> float:
    r, alpha, a, b = p.r, p.alpha, p.a, p.b
    f = _hyp2f1_series(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    head = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * f)
    odds = a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x) if x > 0 else 0.0
    return head / (1 + odds)


@pytest.mark.parametrize(("x", "t_x", "T"), [(0, 0.0, 38.86), (1, 1.71, 38.86),
                                             (2, 30.43, 38.86), (7, 29.43, 35.0)])
def test_bgnbd_log_likelihood_is_eq6(x: int, t_x: float, T: float) -> None:
    got = bgnbd_log_likelihood(PUBLISHED_BGNBD, x, t_x, T)[0]
    assert got == pytest.approx(_bgnbd_by_hand(PUBLISHED_BGNBD, x, t_x, T), rel=1e-10, abs=1e-10)


def test_bgnbd_log_likelihood_stays_finite_for_heavy_buyers() -> None:
    # (alpha + T)^(r + x) overflows a float long before x = 5,000; the log form does not
    ll = bgnbd_log_likelihood(PUBLISHED_BGNBD, [5000, 5000], [38.0, 1.0], [39.0, 39.0])
    assert np.all(np.isfinite(ll))


def test_gamma_gamma_log_likelihood_is_the_density_of_mean_spend() -> None:
    params = GammaGammaParams(p=6.25, q=3.74, v=15.44)
    for x, m in [(1, 20.0), (3, 35.5), (12, 101.25)]:
        p, q, v = params.p, params.q, params.v
        by_hand = (math.lgamma(p * x + q) - math.lgamma(p * x) - math.lgamma(q) + q * math.log(v)
                   + (p * x - 1) * math.log(m) + p * x * math.log(x)
                   - (p * x + q) * math.log(v + m * x))
        assert gamma_gamma_log_likelihood(params, x, m)[0] == pytest.approx(by_hand, rel=1e-12)
    with pytest.raises(DataError, match="positive mean spend"):
        gamma_gamma_log_likelihood(params, [1, 0], [10.0, 10.0])


# -- zero and one repeat purchase ---------------------------------------------------------------


def test_probability_active_for_zero_and_one_repeat_purchase() -> None:
    r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
    got = probability_active(PUBLISHED_BGNBD, [0, 0, 1, 1], [0, 0, 10.0, 38.0],
                             [5, 38.86, 38.86, 38.86])
    # no repeat purchase: the model lets a customer drop out only right after a purchase
    assert got[:2].tolist() == [1.0, 1.0]
    one = [1 / (1 + a / b * ((alpha + 38.86) / (alpha + t_x)) ** (r + 1)) for t_x in (10.0, 38.0)]
    assert got[2:] == pytest.approx(one, rel=1e-12)
    assert got[2] < got[3] < 1  # a recent last purchase makes a customer likelier alive


@pytest.mark.parametrize(("t", "x", "t_x", "T"), [(39, 0, 0.0, 38.86), (39, 1, 1.71, 38.86),
                                                  (39, 2, 30.43, 38.86), (5, 1, 20.0, 30.0),
                                                  (52, 6, 33.0, 35.0)])
def test_expected_purchases_is_eq10(t: float, x: int, t_x: float, T: float) -> None:
    got = expected_purchases(PUBLISHED_BGNBD, t, x, t_x, T)[0]
    assert got == pytest.approx(_eq10_by_hand(PUBLISHED_BGNBD, t, x, t_x, T), rel=1e-9)


def test_expected_purchases_matches_the_papers_worked_example() -> None:
    # Fader, Hardie & Lee (2005): x = 2, t_x = 30.43, T = 38.86 expects 1.226 purchases in 39 weeks
    assert expected_purchases(PUBLISHED_BGNBD, 39, 2, 30.43, 38.86)[0] == pytest.approx(1.226,
                                                                                         abs=5e-4)


def test_expected_purchases_over_a_short_horizon_is_the_rate_of_the_living() -> None:
    # E[Y(t)] / t -> P(alive) * E[lambda | history] = P(alive) * (r + x) / (alpha + T)
    x, t_x, T = np.array([0, 1, 4]), np.array([0.0, 12.0, 30.0]), np.array([38.86, 38.86, 33.0])
    rate = probability_active(PUBLISHED_BGNBD, x, t_x, T) * (PUBLISHED_BGNBD.r + x) / (
        PUBLISHED_BGNBD.alpha + T)
    assert expected_purchases(PUBLISHED_BGNBD, 1e-6, x, t_x, T) / 1e-6 == pytest.approx(rate,
                                                                                      rel=1e-5)


def test_expected_purchases_for_heavy_buyers_and_long_horizons() -> None:
    # the direct hypergeometric series returns nan here; its Euler transform does not
    horizons = np.array([1.0, 39.0, 1e3, 1e5])
    got = expected_purchases(PUBLISHED_BGNBD, horizons, 1000, 38.5, 39.0)
    assert np.all(np.isfinite(got)) and np.all(np.diff(got) > 0)


def test_expected_purchases_at_a_equal_to_one() -> None:
    # eq. 10 divides by (a - 1); at a = 1 the value lies between its neighbours
    near = [expected_purchases(BGNBDParams(0.243, 4.414, a, 2.426), 39, [0, 3], [0, 20], 38.86)
            for a in (1 - 1e-4, 1.0, 1 + 1e-4)]
    assert np.all(np.isfinite(near[1]))
    assert np.all((np.minimum(near[0], near[2]) <= near[1]) & (near[1] <= np.maximum(near[0],
                                                                                    near[2])))


def test_expected_purchases_of_a_new_customer_is_eq9() -> None:
    r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
    for t in (1.0, 39.0, 78.0):
        by_hand = (a + b - 1) / (a - 1) * (
            1 - (alpha / (alpha + t)) ** r * _hyp2f1_series(r, b, a + b - 1, t / (alpha + t)))
        assert expected_purchases_new(PUBLISHED_BGNBD, t)[0] == pytest.approx(by_hand, rel=1e-9)


def test_expected_spend_for_zero_and_one_repeat_purchase() -> None:
    p, q, v = 6.25, 3.74, 15.44
    population = p * v / (q - 1)
    got = expected_spend(PUBLISHED_GG, [0, 1, 1], [np.nan, 20.0, 80.0])
    assert got[0] == pytest.approx(population, rel=1e-12)
    for spend, m in zip(got[1:], (20.0, 80.0)):
        assert spend == pytest.approx((q - 1) / (p + q - 1) * population + p / (p + q - 1) * m,
                                      rel=1e-12)
    assert expected_spend(PUBLISHED_GG, 40, 80.0)[0] > got[2]  # more purchases, less shrinkage


def test_spend_without_a_population_mean_is_refused() -> None:
    with pytest.raises(DataError, match="at most 1"):
        expected_spend(GammaGammaParams(p=2.0, q=0.9, v=10.0), [1, 2], [10.0, 20.0])


# -- non-positive spend --------------------------------------------------------------------------


def _spenders(n: int = 400, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Mean spend of n customers drawn from a Gamma-Gamma with p=4, q=3, v=30."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 8, n)
    nu = rng.gamma(3.0, 1 / 30.0, n)
    m = np.array([rng.gamma(4.0, 1 / nu_i, k).mean() for nu_i, k in zip(nu, x)])
    return x.astype(float), m


def test_gamma_gamma_leaves_out_customers_without_positive_spend() -> None:
    x, m = _spenders()
    clean = fit_gamma_gamma(x, m)
    # no repeat purchase, missing spend, free orders and net refunds: left out of the fit
    odd_x = np.array([0.0, 0.0, 2.0, 1.0, 3.0])
    odd_m = np.array([np.nan, 25.0, np.nan, 0.0, -12.5])
    mixed = fit_gamma_gamma(np.r_[x, odd_x], np.r_[m, odd_m])
    assert mixed == clean
    assert expected_spend(mixed, odd_x, odd_m) == pytest.approx([clean.mean_spend] * 5, rel=1e-12)
    with pytest.raises(DataError, match="at least two customers"):
        fit_gamma_gamma(odd_x, odd_m)


def test_gamma_gamma_fit_recovers_simulated_parameters_roughly() -> None:
    x, m = _spenders(n=3000, seed=11)
    fitted = fit_gamma_gamma(x, m)
    assert fitted.mean_spend == pytest.approx(4.0 * 30.0 / 2.0, rel=0.1)
    assert fitted.p == pytest.approx(4.0, rel=0.15) and fitted.q == pytest.approx(3.0, rel=0.25)


# -- fitting details, saving, value ----------------------------------------------------------------


def _simulated_histories(n: int, seed: int) -> list[np.ndarray]:
    """(x, t_x, T) of n customers drawn from BG/NBD with the published parameters, in whole
    days counted in weeks (so that many histories repeat)."""
    rng = np.random.default_rng(seed)
    r, alpha, a, b = 0.243, 4.414, 0.793, 2.426
    rows = []
    for _ in range(n):
        rate, drop, T = rng.gamma(r, 1 / alpha), rng.beta(a, b), rng.integers(189, 273) / 7
        x, t_x, now = 0, 0.0, rng.exponential(1 / rate)
        while now <= T:
            x, t_x = x + 1, math.floor(now * 7) / 7
            if rng.random() < drop:
                break
            now += rng.exponential(1 / rate)
        rows.append((x, t_x, T))
    return [np.array(column, dtype=float) for column in zip(*rows)]


def test_fit_on_distinct_rows_with_weights_equals_fit_on_every_customer() -> None:
    x, t_x, T = _simulated_histories(600, seed=2)
    everyone = fit_bgnbd(x, t_x, T)
    rows, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
    assert len(rows) < len(x)
    weighted = fit_bgnbd(rows[:, 0], rows[:, 1], rows[:, 2], weights=counts)
    assert _values(weighted) == pytest.approx(_values(everyone), rel=1e-6)
    penalised = fit_bgnbd(x, t_x, T, penalty=0.01)
    assert penalised.alpha < everyone.alpha  # the penalty pulls large parameters down


def test_fit_recovers_the_parameters_customers_were_drawn_from() -> None:
    x, t_x, T = _simulated_histories(5000, seed=1)
    fitted = fit_bgnbd(x, t_x, T)
    assert _values(fitted) == pytest.approx(_values(PUBLISHED_BGNBD), rel=0.15)
    assert fitted.r / fitted.alpha == pytest.approx(0.243 / 4.414, rel=0.03)  # mean rate


def test_fit_says_when_the_data_cannot_pin_the_model_down() -> None:
    with pytest.raises(DataError, match="did not settle"):
        fit_bgnbd([0, 0, 0, 0], [0.0] * 4, [30.0, 31.0, 35.0, 38.0])


def test_fit_refuses_histories_the_model_cannot_produce() -> None:
    with pytest.raises(DataError, match=r"t_x outside 0\.\.T"):
        fit_bgnbd([1, 2], [5.0, 40.0], [30.0, 30.0])
    with pytest.raises(DataError, match="no repeat purchase"):
        fit_bgnbd([0, 2], [5.0, 10.0], [30.0, 30.0])
    with pytest.raises(DataError, match="whole number"):
        fit_bgnbd([1.5, 2], [5.0, 10.0], [30.0, 30.0])


def test_parameters_round_trip_through_json() -> None:
    for params in (PUBLISHED_BGNBD, PUBLISHED_GG):
        saved = json.dumps(params.to_dict())
        assert type(params).from_dict(json.loads(saved)) == params
    with pytest.raises(DataError, match="for model 'bg/nbd', not 'gamma-gamma'"):
        GammaGammaParams.from_dict(PUBLISHED_BGNBD.to_dict())
    with pytest.raises(DataError, match="need exactly"):
        BGNBDParams.from_dict({"model": "bg/nbd", "r": 1, "alpha": 1, "a": 1})
    with pytest.raises(DataError, match="positive and finite"):
        BGNBDParams(r=0.2, alpha=-1.0, a=0.5, b=2.0)


def test_clv_is_purchases_times_spend_and_discounting_lowers_it() -> None:
    x, t_x, T, m = [0, 1, 4], [0.0, 10.0, 30.0], [38.86] * 3, [np.nan, 20.0, 55.0]
    plain = clv(PUBLISHED_BGNBD, PUBLISHED_GG, 39, x, t_x, T, m)
    purchases = expected_purchases(PUBLISHED_BGNBD, 39, x, t_x, T)
    assert plain == pytest.approx(purchases * expected_spend(PUBLISHED_GG, x, m), rel=1e-12)
    discounted = clv(PUBLISHED_BGNBD, PUBLISHED_GG, 3, x, t_x, T, m, discount=0.1)
    steps = [expected_purchases(PUBLISHED_BGNBD, k, x, t_x, T) for k in (0, 1, 2, 3)]
    by_hand = sum((steps[k] - steps[k - 1]) / 1.1**k for k in (1, 2, 3))
    assert discounted == pytest.approx(by_hand * expected_spend(PUBLISHED_GG, x, m), rel=1e-12)
    assert np.all(discounted < clv(PUBLISHED_BGNBD, PUBLISHED_GG, 3, x, t_x, T, m))
    with pytest.raises(ConfigError):
        clv(PUBLISHED_BGNBD, PUBLISHED_GG, 0, x, t_x, T, m)


# -- rfm_summary -----------------------------------------------------------------------------------

CUTOFF = datetime(2024, 3, 10)


def _awkward() -> pd.DataFrame:
    rows = [
        ("a", datetime(2024, 1, 1, 9), 10.0),        # two purchases the same day: one, 15
        ("a", datetime(2024, 1, 1, 18, 30), 5.0),
        ("a", datetime(2024, 1, 5, 12), 20.0),       # the same order twice: one day, 40
        ("a", datetime(2024, 1, 5, 12), 20.0),
        ("a", datetime(2024, 2, 1), 7.0),            # a date-only timestamp (midnight)
        ("a", datetime(2024, 3, 9, 23, 59, 59), 3.0),  # the last moment before the cutoff
        ("a", CUTOFF, 100.0),                        # exactly at the cutoff: the future
        ("b", datetime(2024, 2, 20, 10), 50.0),      # one purchase only
        ("c", CUTOFF, 9.0),                          # only at the cutoff: not a customer yet
        ("d", datetime(2024, 1, 10), 10.0),          # a repeat purchase without a value
        ("d", datetime(2024, 1, 20), None),
        ("e", datetime(2024, 1, 1), 30.0),           # a refund bigger than the repeat order
        ("e", datetime(2024, 1, 15, 8), 10.0),
        ("e", datetime(2024, 1, 15, 9), -25.0),
    ]
    return pd.DataFrame(rows, columns=["profile_id", "timestamp", "value"])


def _summary_by_hand(frame: pd.DataFrame, cutoff: datetime, period_days: float) -> dict:
    """The obvious Python version: calendar days, their summed values, counted and timed."""
    last_day = (cutoff - timedelta(microseconds=1)).date()
    out: dict[str, tuple] = {}
    for pid, rows in frame[frame.timestamp < cutoff].groupby("profile_id"):
        days: dict[date, list[float]] = {}
        for ts, value in zip(rows.timestamp, rows.value):
            days.setdefault(ts.date(), []).append(value)
        ordered = sorted(days)
        first = ordered[0]
        spends = [sum(v for v in days[d] if pd.notna(v)) if any(pd.notna(v) for v in days[d])
                  else None for d in ordered[1:]]
        known = [s for s in spends if s is not None]
        out[pid] = (len(ordered) - 1, (ordered[-1] - first).days / period_days,
                    (last_day - first).days / period_days,
                    sum(known) / len(known) if known else None)
    return out


def _run_summary(table: ibis.Table, period_days: float = 1, cutoff: datetime = CUTOFF) -> dict:
    got = rfm_summary(table, cutoff=cutoff, period_days=period_days).to_pandas()
    return {r.profile_id: (r.frequency, r.recency, r.T, None if pd.isna(r.monetary) else r.monetary)
            for r in got.itertuples()}


def _assert_same(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for pid, row in expected.items():
        assert got[pid][:3] == pytest.approx(row[:3], rel=1e-12), pid
        assert (got[pid][3] is None) == (row[3] is None), pid
        if row[3] is not None:
            assert got[pid][3] == pytest.approx(row[3], rel=1e-12), pid


def test_rfm_summary_on_awkward_purchases() -> None:
    con = ibis.duckdb.connect()
    got = _run_summary(con.create_table("purchases", _awkward()))
    assert got == {
        "a": (3, 68.0, 68.0, pytest.approx((40 + 7 + 3) / 3)),
        "b": (0, 0.0, 18.0, None),
        "d": (1, 10.0, 59.0, None),
        "e": (1, 14.0, 68.0, -15.0),
    }


def test_rfm_summary_in_weeks_counts_days_and_measures_fractional_weeks() -> None:
    con = ibis.duckdb.connect()
    got = _run_summary(con.create_table("purchases", _awkward()), period_days=7)
    assert got["a"][:3] == (3, pytest.approx(68 / 7), pytest.approx(68 / 7))
    _assert_same(got, _summary_by_hand(_awkward(), CUTOFF, 7))


def test_rfm_summary_reads_a_date_column() -> None:
    frame = _awkward()
    frame = frame[frame.timestamp.dt.normalize() == frame.timestamp]  # the midnight rows
    arrow = pa.table({"profile_id": frame.profile_id.tolist(),
                      "timestamp": pa.array(frame.timestamp.dt.date.tolist(), pa.date32()),
                      "value": pa.array(frame.value.tolist(), pa.float64())})
    table = ibis.duckdb.connect().create_table("purchases", arrow)
    assert table.timestamp.type().is_date()
    _assert_same(_run_summary(table), _summary_by_hand(frame, CUTOFF, 1))


def test_rfm_summary_agrees_with_brute_force_on_random_purchases() -> None:
    rng = np.random.default_rng(7)
    n = 600
    start = datetime(2024, 1, 1)
    seconds = rng.integers(0, 80 * 86400, n)
    seconds[:40] = (CUTOFF - start).total_seconds()  # some exactly at the cutoff
    seconds[40:120] = seconds[40:120] // 86400 * 86400  # some at midnight
    frame = pd.DataFrame({
        "profile_id": [f"p{i}" for i in rng.integers(0, 60, n)],
        "timestamp": [start + timedelta(seconds=int(s)) for s in seconds],
        "value": np.where(rng.random(n) < 0.05, np.nan, rng.gamma(2.0, 20.0, n).round(2)),
    })
    table = ibis.duckdb.connect().create_table("purchases", frame)
    for period_days, cutoff in ((1, CUTOFF), (7, CUTOFF), (1, CUTOFF + timedelta(hours=15))):
        _assert_same(_run_summary(table, period_days, cutoff),
                     _summary_by_hand(frame, cutoff, period_days))


def test_rfm_summary_refuses_a_table_without_its_columns() -> None:
    table = ibis.duckdb.connect().create_table("p", _awkward().drop(columns="value"))
    with pytest.raises(DataError, match="no column value"):
        rfm_summary(table, cutoff=CUTOFF)


# -- CDNOW -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lifetimes_wheel() -> Path:
    """The lifetimes wheel (only for its CDNOW data files), downloaded once into the cache."""
    pattern = "[Ll]ifetimes-0.11.3-*.whl"
    found = sorted(CDNOW_CACHE.glob(pattern))
    if not found:
        CDNOW_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                               "--only-binary=:all:", "lifetimes==0.11.3", "-d", str(CDNOW_CACHE)],
                              capture_output=True, text=True, check=False)
        found = sorted(CDNOW_CACHE.glob(pattern))
        if not found:
            pytest.skip("Could not download the lifetimes wheel, which holds the CDNOW data: "
                        f"{done.stderr.strip()[-300:]}")
    return found[0]


def _cdnow(wheel: Path, member: str) -> pd.DataFrame:
    """Purchases from one of the wheel's CDNOW files (the sample has an extra panel-id column)."""
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(f"lifetimes/datasets/{member}")
    sample = member == "CDNOW_sample.txt"
    names = ["customer", "panel", "day", "cds", "amount"] if sample else [
        "customer", "day", "cds", "amount"]
    raw = pd.read_csv(io.BytesIO(text), sep=r"\s+", header=None if sample else 0, names=names,
                      dtype={"day": str})
    return pd.DataFrame({"profile_id": raw.customer.astype(str),
                         "timestamp": pd.to_datetime(raw.day, format="%Y%m%d"),
                         "value": raw.amount.astype(float)})


def _calibration(wheel: Path, member: str) -> pd.DataFrame:
    table = ibis.duckdb.connect().create_table("purchases", _cdnow(wheel, member))
    return rfm_summary(table, cutoff=CALIBRATION_END, period_days=7).to_pandas()


def test_cdnow_sample_reproduces_the_published_fits(lifetimes_wheel: Path) -> None:
    summary = _calibration(lifetimes_wheel, "CDNOW_sample.txt")
    with zipfile.ZipFile(lifetimes_wheel) as archive:
        published = pd.read_csv(io.BytesIO(archive.read(
            "lifetimes/datasets/cdnow_customers_summary.csv")))
    # the same 2,357 (x, t_x, T) as the papers' data, to its two decimals
    ours = sorted(zip(summary.frequency, summary.recency.round(2), summary["T"].round(2)))
    theirs = sorted(zip(published.frequency, published.recency, published["T"]))
    assert ours == theirs

    bg = fit_bgnbd(summary.frequency, summary.recency, summary["T"])
    assert _values(bg) == pytest.approx(_values(PUBLISHED_BGNBD), rel=0.02)
    ll = bgnbd_log_likelihood(bg, summary.frequency, summary.recency, summary["T"]).sum()
    assert ll == pytest.approx(-9582.4, abs=0.1)
    gg = fit_gamma_gamma(summary.frequency, summary.monetary)
    assert _values(gg) == pytest.approx(_values(PUBLISHED_GG), rel=0.02)


def test_cdnow_master_fits(lifetimes_wheel: Path) -> None:
    summary = _calibration(lifetimes_wheel, "CDNOW_master.txt")
    assert len(summary) == 23_570
    bg = fit_bgnbd(summary.frequency, summary.recency, summary["T"])
    # All 23,570 customers, not the papers' 1/10 sample: the same shape, somewhat different
    # values (r 0.2516, alpha 4.789, a 0.7234, b 2.161 when written); pinned to catch drift.
    assert _values(bg) == pytest.approx(
        {"r": 0.2516, "alpha": 4.789, "a": 0.7234, "b": 2.161}, rel=0.002)
    gg = fit_gamma_gamma(summary.frequency, summary.monetary)
    assert gg.q > 1
    spenders = summary[(summary.frequency > 0) & (summary.monetary > 0)]
    assert gg.mean_spend == pytest.approx(spenders.monetary.mean(), rel=0.02)
    assert _values(gg) == pytest.approx(_values(PUBLISHED_GG), rel=0.05)


# -- holdout metrics -------------------------------------------------------------------------------


def test_normalised_gini_of_ideal_reversed_and_constant_rankings() -> None:
    actual = np.array([0.0, 3.0, 1.0, 10.0, 0.0, 6.0])
    assert normalised_gini(actual, actual) == pytest.approx(1.0)
    assert normalised_gini(actual, actual * 2 + 1) == pytest.approx(1.0)  # only order counts
    assert normalised_gini(actual, -actual + 0.5 * (actual == 0)) == pytest.approx(-1.0)
    assert normalised_gini(actual, np.ones(6)) == pytest.approx(0.0, abs=1e-12)
    # by hand: order [10, 0, 6, 3, 1, 0] of total 20 -> cumulative shares
    shares = np.cumsum([10, 0, 6, 3, 1, 0]) / 20
    ideal = np.cumsum([10, 6, 3, 1, 0, 0]) / 20
    by_hand = (shares.sum() / 6 - 7 / 12) / (ideal.sum() / 6 - 7 / 12)
    assert normalised_gini(actual, [5, 3, 2, 6, 1, 4]) == pytest.approx(by_hand, rel=1e-12)


def test_metrics_do_not_depend_on_the_order_of_tied_predictions() -> None:
    actual = np.array([5.0, 0.0, 0.0, 9.0, 1.0, 0.0, 2.0, 0.0])
    predicted = np.array([1.0, 1.0, 1.0, 3.0, 2.0, 2.0, 1.0, 1.0])
    flipped = slice(None, None, -1)
    assert normalised_gini(actual, predicted) == pytest.approx(
        normalised_gini(actual[flipped], predicted[flipped]), rel=1e-12)
    assert top_decile_capture(actual, predicted, 0.25) == pytest.approx(
        top_decile_capture(actual[flipped], predicted[flipped], 0.25), rel=1e-12)
    # top quarter = the 3 (actual 9) and one of the two 2s (actual 1 or 0: 0.5 on average)
    assert top_decile_capture(actual, predicted, 0.25) == pytest.approx(9.5 / 17)


def test_top_decile_capture_and_decile_mape_by_hand() -> None:
    actual = np.arange(1, 21, dtype=float)  # 1..20, total 210
    assert top_decile_capture(actual, actual) == pytest.approx((20 + 19) / 210)
    assert top_decile_capture(actual, -actual) == pytest.approx((1 + 2) / 210)
    assert top_decile_capture(actual, actual, share=0.125) == pytest.approx((20 + 19 + 9) / 210)
    deciles = decile_totals(actual, actual)
    assert deciles.actual.tolist() == [39, 35, 31, 27, 23, 19, 15, 11, 7, 3]
    assert deciles.customers.tolist() == [2] * 10
    assert decile_mape(actual, actual) == 0.0
    assert decile_mape(actual, actual * 1.1) == pytest.approx(0.1)
    assert decile_mape([1.0, 3.0], [2.0, 2.0], groups=1) == pytest.approx(0.0)
    with pytest.raises(DataError, match="zero"):
        decile_mape([0.0, 0.0, 5.0], [1.0, 2.0, 3.0], groups=3)
