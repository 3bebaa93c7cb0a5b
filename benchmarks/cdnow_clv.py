"""CDNOW: what will each customer spend in the next 39 weeks? The BG/NBD + Gamma-Gamma baseline.

The data is the CDNOW master file (23,570 customers who first bought in Q1 1997, every purchase to
June 1998) from the ``lifetimes`` wheel, downloaded once by ``benchmarks/cdnow.py``'s
``cdnow_file``. The classic split: the models are fitted on weeks 1-39 (purchases before
1997-10-01, summarised in weeks by ``rfm_summary``), then each customer's purchases and spend in
weeks 40-78 (1997-10-01 to 1998-06-30) are predicted and compared with what happened.

For scale, one naive baseline: each customer's spend so far, per week observed, times 39.

Then the same question through likely: a ``type: clv`` instance with a 273-day (39-week) horizon
scored on 1998-06-30, whose only training window starts 1997-10-01, the classic split. With one
window, its holdout is a random 20% of the customers; the run fits its trees on the other 80% and
the BG/NBD + Gamma-Gamma baseline on the calibration weeks, and prints both models' holdout
metrics as the run recorded them.

The published parameters (Fader, Hardie & Lee 2005; Fader & Hardie 2013) come from the papers'
1/10 sample of 2,357 customers, also in the wheel; its fit is printed beside them.

Run: .venv/bin/python benchmarks/cdnow_clv.py
"""

from __future__ import annotations

import io
import tempfile
import time
import zipfile
from datetime import date, datetime
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
from _machine import describe, peak_rss_mb
from cdnow import CACHE, cdnow_file, purchases
from scipy.stats import spearmanr

from likely.model.btyd import (
    clv,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    rfm_summary,
)
from likely.model.clv_metrics import (
    decile_mape,
    decile_totals,
    normalised_gini,
    top_decile_capture,
)
from likely.workspace import Workspace

CUTOFF = datetime(1997, 10, 1)
HOLDOUT_END = datetime(1998, 7, 1)
WEEKS = 39.0
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "v": 15.44}


def holdout(table: ibis.Table) -> ibis.Table:
    """Per customer: purchase days and total spend in weeks 40-78."""
    later = table.filter((table.timestamp >= CUTOFF) & (table.timestamp < HOLDOUT_END))
    return later.group_by("profile_id").aggregate(
        actual_purchases=later.timestamp.date().nunique(), actual_value=later.value.sum())


def sample_events() -> pd.DataFrame:
    """The papers' 2,357-customer sample, read from the cached lifetimes wheel."""
    wheel = next(p for p in CACHE.glob("*.whl") if p.name.lower().startswith("lifetimes-"))
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read("lifetimes/datasets/CDNOW_sample.txt")
    raw = pd.read_csv(io.BytesIO(text), sep=r"\s+", header=None, dtype={2: str},
                      names=["customer", "panel", "day", "quantity", "amount"])
    return pd.DataFrame({"profile_id": raw.customer.astype(str),
                         "timestamp": pd.to_datetime(raw.day, format="%Y%m%d"),
                         "value": raw.amount.astype(float)})


def compared(fitted: dict, published: dict) -> str:
    return ", ".join(f"{k} {fitted[k]:.4g} ({published[k]:g}, {fitted[k] / published[k] - 1:+.1%})"
                     for k in published)


def report(name: str, actual: np.ndarray, predicted: np.ndarray) -> None:
    rho = spearmanr(actual, predicted).statistic
    print(f"  {name:<26} {normalised_gini(actual, predicted):>6.3f} {rho:>8.3f} "
          f"{decile_mape(actual, predicted):>8.1%} {top_decile_capture(actual, predicted):>8.1%} "
          f"{predicted.sum():>12,.0f}")


def main() -> None:
    print(f"machine: {describe()}")
    con = ibis.duckdb.connect()
    events = purchases(cdnow_file())[["profile_id", "timestamp", "value"]]
    table = con.create_table("purchases", events)
    started = time.perf_counter()
    summary = rfm_summary(table, cutoff=CUTOFF, period_days=7).to_pandas()
    later = holdout(table).to_pandas()
    summary_s = time.perf_counter() - started
    data = summary.merge(later, on="profile_id", how="left").fillna(
        {"actual_purchases": 0, "actual_value": 0.0})
    x, t_x, T, m = data.frequency, data.recency, data["T"], data.monetary
    print(f"CDNOW: {len(events):,} purchase rows, {len(data):,} customers; calibration summary "
          f"and holdout totals in {summary_s:.2f} s")

    started = time.perf_counter()
    bg = fit_bgnbd(x, t_x, T)
    bg_s = time.perf_counter() - started
    started = time.perf_counter()
    gg = fit_gamma_gamma(x, m)
    gg_s = time.perf_counter() - started
    spenders = (x > 0) & (m > 0)
    print(f"BG/NBD on all 23,570 ({bg_s:.2f} s): {compared(bg.to_dict(), PUBLISHED_BGNBD)}")
    print(f"Gamma-Gamma on {spenders.sum():,} repeat buyers ({gg_s:.2f} s): "
          f"{compared(gg.to_dict(), PUBLISHED_GG)}; model mean spend {gg.mean_spend:.2f}, "
          f"observed mean of m {m[spenders].mean():.2f}, corr(x, m) "
          f"{np.corrcoef(x[spenders], m[spenders])[0, 1]:+.3f}")
    sample = rfm_summary(con.create_table("sample", sample_events()), cutoff=CUTOFF,
                         period_days=7).to_pandas()
    bg_sample = fit_bgnbd(sample.frequency, sample.recency, sample["T"])
    gg_sample = fit_gamma_gamma(sample.frequency, sample.monetary)
    print(f"the papers' 2,357-customer sample: BG/NBD "
          f"{compared(bg_sample.to_dict(), PUBLISHED_BGNBD)}")
    print(f"  Gamma-Gamma {compared(gg_sample.to_dict(), PUBLISHED_GG)}")

    started = time.perf_counter()
    purchases_hat = expected_purchases(bg, WEEKS, x, t_x, T)
    value_hat = clv(bg, gg, WEEKS, x, t_x, T, m)
    predict_s = time.perf_counter() - started
    actual = data.actual_value.to_numpy()
    past_rate = (x.to_numpy() * m.fillna(0).to_numpy()) / T.to_numpy() * WEEKS
    print(f"Weeks 40-78, {len(data):,} customers (predicted in {predict_s:.3f} s):")
    print(f"  repeat purchase days: predicted {purchases_hat.sum():,.0f}, actual "
          f"{data.actual_purchases.sum():,.0f}")
    print(f"  value: predicted {value_hat.sum():,.0f}, actual {actual.sum():,.0f} "
          f"({value_hat.sum() / actual.sum() - 1:+.1%})")
    print(f"  {'model':<26} {'Gini':>6} {'Spearman':>8} {'dec.MAPE':>8} {'top 10%':>8} "
          f"{'total':>12}")
    report("BG/NBD x Gamma-Gamma", actual, value_hat)
    report("past spend rate x 39 wks", actual, past_rate)
    deciles = decile_totals(actual, value_hat)
    print("  deciles by predicted value (predicted / actual):")
    print("  " + "  ".join(f"{p:,.0f}/{a:,.0f}" for p, a in zip(deciles.predicted,
                                                                 deciles.actual)))
    through_likely()
    print(f"peak RSS {peak_rss_mb():.0f} MiB")


def through_likely() -> None:
    """The clv instance on the same data: both models judged on the run's holdout."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "cdnow.parquet"
        purchases(cdnow_file()).to_parquet(source, index=False)
        ws = Workspace.create(Path(tmp) / "ws")
        ws.ingest_events([source], "cdnow")
        ws.create_instance({"name": "clv-39w", "type": "clv", "horizon_days": 273,
                            "datasets": {"events": "cdnow"},
                            "population": {"lookback_days": 365}})
        started = time.perf_counter()
        run = ws.run("clv-39w", as_of=date(1998, 6, 30))
        seconds = time.perf_counter() - started
    compared = run.metrics["value_models"]
    holdout = run.metrics["holdout"]
    print(f"likely, type: clv, horizon 273 days, as of 1998-06-30 ({seconds:.1f} s): training "
          f"window from {run.metrics['windows']['anchors'][0][:10]}, "
          f"{run.counts['training_rows']:,} training + {holdout['rows']:,} holdout customers "
          f"({holdout['buyers']:,} bought), chosen: {compared['chosen']}")
    print(f"  {'model':<26} {'Gini':>6} {'Spearman':>8} {'dec.MAPE':>8} {'top 10%':>8} "
          f"{'predicted':>12} {'actual':>10}")
    for name, words in (("trees", "trees (Tweedie)"), ("btyd", "BG/NBD x Gamma-Gamma")):
        m = compared[name]
        print(f"  {words:<26} {m['gini']:>6.3f} {m['spearman']:>8.3f} {m['decile_mape']:>8.1%} "
              f"{m['top_decile_capture']:>8.1%} {m['predicted_total']:>12,.0f} "
              f"{m['actual_total']:>10,.0f}")


if __name__ == "__main__":
    main()
