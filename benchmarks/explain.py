"""Explanations: LightGBM's pred_contrib against likely's exact fast TreeSHAP.

For each model shape (trees × leaves × depth; ``likely`` = what ``PropensityModel`` chooses with
its default settings) a LightGBM model is trained on synthetic customer-like data (28 numeric
features: continuous, counts and rounded amounts with 5% missing; 2 pandas-category features with
missing values; a logit with interactions), then N scoring rows are explained in 100k-row batches,
as a scoring run does (``likely.model.explain.contributions`` on DataFrames), once through the
fast path and once through ``pred_contrib``. Printed per shape: the one-off plan time, the fast
time (plan included), the pred_contrib time, the speed-up and the largest absolute difference over
every row and column (base value included).

pred_contrib on every row takes long (about 0.3-1 ms per row for 200 depth-5 trees on 2 cores);
``--baseline-rows`` times it on the first rows only and scales to N (it is linear in rows), and
says so.

Run: .venv/bin/python benchmarks/explain.py --rows 1000000 --shapes 200x31x5,likely
"""

from __future__ import annotations

import argparse
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
from _machine import describe, peak_rss_mb

from likely.engine import physical_cores
from likely.model import explain, treeshap
from likely.model.train import PropensityModel, TrainParams

BATCH = 100_000
COUNTRIES = [f"country_{i}" for i in range(25)]
TIERS = ["bronze", "silver", "gold", "platinum"]


def frame(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for j in range(28):
        kind = j % 3
        values = (rng.normal(size=rows) if kind == 0 else
                  rng.poisson(1 + j % 6, size=rows).astype(float) if kind == 1 else
                  np.round(rng.exponential(40, size=rows), 1))
        values[rng.random(rows) < 0.05] = np.nan
        columns[f"f{j:02d}"] = values
    country = rng.choice(COUNTRIES, rows).astype(object)
    country[rng.random(rows) < 0.05] = None
    tier = rng.choice(TIERS, rows, p=[0.5, 0.3, 0.15, 0.05]).astype(object)
    tier[rng.random(rows) < 0.03] = None
    columns["country"] = pd.Categorical(country, categories=COUNTRIES)
    columns["tier"] = pd.Categorical(tier, categories=TIERS)
    X = pd.DataFrame(columns)
    Z = X.iloc[:, :28].fillna(0).to_numpy()
    effect = {c: (i % 5 - 2) / 4 for i, c in enumerate(COUNTRIES)}
    logit = (-2.0 + 0.7 * Z[:, 0] - 0.25 * Z[:, 1] + 0.01 * Z[:, 2] + 0.4 * Z[:, 3] * Z[:, 6]
             + 0.3 * (Z[:, 4] > 3) * (Z[:, 5] < 30) - 0.3 * np.isnan(X["f07"].to_numpy())
             + np.array([effect.get(c, 0.0) for c in country]) + 0.6 * (tier == "gold"))
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def train(shape: str, threads: int):
    """``(model for contributions, description)``: a Booster of the given shape, or the
    PropensityModel likely trains with its defaults."""
    X, y = frame(60_000, 1)
    if shape == "likely":
        Xv, yv = frame(20_000, 2)
        model = PropensityModel(TrainParams(num_threads=threads)).fit(X, y, Xv, yv)
        s = model.summary()
        return model, (f"likely default: {s['best_iteration']} trees × {s['num_leaves']} leaves, "
                       f"max depth {s['max_depth']}")
    trees, leaves, depth = (int(v) for v in shape.split("x"))
    params = {"objective": "binary", "num_leaves": leaves, "max_depth": depth,
              "learning_rate": 0.05, "min_data_in_leaf": 20, "feature_fraction": 0.8,
              "bagging_fraction": 0.8, "bagging_freq": 1, "verbosity": -1,
              "num_threads": threads, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=trees)
    return booster, f"{trees} trees × {leaves} leaves, max depth {depth}"


def bench(shape: str, rows: int, baseline_rows: int, threads: int) -> None:
    started = time.perf_counter()
    model, what = train(shape, threads)
    trained = time.perf_counter() - started
    booster = model.fitted_booster() if hasattr(model, "fitted_booster") else model
    X, _ = frame(rows, 3)
    started = time.perf_counter()
    plan = treeshap.plan_for(booster)
    plan_s = time.perf_counter() - started
    fast_s = slow_s = 0.0
    diff = 0.0
    checked = 0
    for start in range(0, rows, BATCH):
        batch = X.iloc[start:start + BATCH]
        t = time.perf_counter()
        values = explain.contributions(model, batch, num_threads=threads)
        fast_s += time.perf_counter() - t
        timed = min(len(batch), baseline_rows - start)
        if timed > 0:
            t = time.perf_counter()
            reference = explain.contributions(model, batch.iloc[:timed], num_threads=threads,
                                              method="lightgbm")
            slow_s += time.perf_counter() - t
            diff = max(diff, float(np.abs(values[:timed] - reference).max()))
            checked += timed
    total_fast = plan_s + fast_s
    scaled = slow_s * rows / checked
    label = "" if checked == rows else f" (timed on {checked:,} rows, × {rows / checked:g})"
    print(f"{what}  [trained in {trained:.0f} s]")
    print(f"  plan: {plan_s:.2f} s, {plan.fast_trees} trees tabulated "
          f"({len(plan.units)} units, {plan.table_cells * 8 / 2**20:.0f} MiB kept, "
          f"{sum(map(len, plan.transient))} trees rebuilt per batch), "
          f"{plan.lightgbm_trees} left to pred_contrib")
    print(f"  {rows:,} rows: fast {total_fast:.1f} s (plan included) | pred_contrib "
          f"{scaled:.1f} s{label} | {scaled / total_fast:.1f}× | max |diff| {diff:.2e} "
          f"over {checked:,} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shapes", default="200x31x5,likely",
                        help="comma-separated TREESxLEAVESxDEPTH (depth -1: unlimited) or likely")
    parser.add_argument("--baseline-rows", type=int, default=None,
                        help="time pred_contrib on the first rows only (default: all)")
    parser.add_argument("--threads", type=int, default=0, help="default: physical cores")
    args = parser.parse_args()
    threads = args.threads or physical_cores()
    print(describe())
    print(f"threads: {threads} (LightGBM and the fast path alike); batches of {BATCH:,} rows")
    for shape in args.shapes.split(","):
        bench(shape.strip(), args.rows, args.baseline_rows or args.rows, threads)
    print(f"peak RSS: {peak_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
