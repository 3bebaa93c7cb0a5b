"""CDNOW: will a customer buy again within 90 days of 1998-01-01? likely against two baselines.

The data is the CDNOW master file (23,570 customers who first bought in Q1 1997, every purchase to
June 1998) from the ``lifetimes`` wheel on PyPI; the script downloads the wheel once into
``benchmarks/.cache`` and reads the file from it (the package itself is never installed).

- likely: an instance "purchase within 90 days", population "a purchase in the last 365 days"
  (everyone who bought before 1998-01-01), run as of 1997-12-31. It trains on earlier 90-day
  windows and reports its own holdout AUC (the newest training window); its scores are then
  judged on what really happened in the 90 days after 1998-01-01.
- recency only: days since the last purchase (fewer = more likely), nothing fitted.
- RFM logistic regression: recency, frequency (purchase days) and monetary value (mean and total
  spend), log-scaled, fitted on the window before (features at 1997-10-03, outcome to 1998-01-01),
  then applied at 1998-01-01 — the same out-of-time setting as likely's scores.

Each model is judged out of time on ranking (AUC) and, where it gives probabilities, on their
calibration: ECE (10 equal-frequency bins) and the mean probability against the realised rate.

Run: .venv/bin/python benchmarks/cdnow.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from _machine import describe, peak_rss_mb
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from likely.model.evaluate import evaluate
from likely.workspace import Workspace

CACHE = Path(__file__).resolve().parent / ".cache"
MEMBER = "lifetimes/datasets/CDNOW_master.txt"
CUTOFF = datetime(1998, 1, 1)
WINDOW = 90


def cdnow_file() -> Path:
    target = CACHE / "CDNOW_master.txt"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "lifetimes==0.11.3", "-d", str(CACHE)], check=True)
    wheel = next(p for p in CACHE.glob("*.whl") if p.name.lower().startswith("lifetimes-"))
    with zipfile.ZipFile(wheel) as archive:
        target.write_bytes(archive.read(MEMBER))
    return target


def purchases(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, sep=r"\s+", header=0,
                      names=["customer", "day", "quantity", "amount"], dtype={"day": str})
    return pd.DataFrame({
        "profile_id": "c" + raw.customer.astype(str),
        # noon, so no purchase sits exactly on a window boundary
        "timestamp": pd.to_datetime(raw.day, format="%Y%m%d") + pd.Timedelta(hours=12),
        "event_type": "commerce.purchases",
        "value": raw.amount.astype(float),
        "quantity": raw.quantity.astype(int),
    })


def rfm(events: pd.DataFrame, anchor: datetime) -> pd.DataFrame:
    """Recency, frequency, monetary per customer from purchases strictly before ``anchor``."""
    past = events[events.timestamp < anchor]
    days = (anchor - past.timestamp).dt.total_seconds() / 86400
    grouped = past.assign(days=days, day=past.timestamp.dt.date).groupby("profile_id")
    return pd.DataFrame({
        "recency": grouped.days.min(),
        "frequency": grouped.day.nunique(),
        "monetary_mean": grouped.value.mean(),
        "monetary_total": grouped.value.sum(),
    })


def outcome(events: pd.DataFrame, anchor: datetime, index: pd.Index) -> np.ndarray:
    end = anchor + timedelta(days=WINDOW)
    buyers = set(events.profile_id[(events.timestamp > anchor) & (events.timestamp <= end)])
    return np.array([p in buyers for p in index], dtype=int)


def design(frame: pd.DataFrame) -> np.ndarray:
    return np.log1p(frame[["recency", "frequency", "monetary_mean", "monetary_total"]]
                    .clip(lower=0).to_numpy())


def main() -> None:
    events = purchases(cdnow_file())
    print(f"machine: {describe()}")
    print(f"CDNOW: {events.profile_id.nunique():,} customers, {len(events):,} purchases, "
          f"{events.timestamp.min():%Y-%m-%d} to {events.timestamp.max():%Y-%m-%d}")
    test = rfm(events, CUTOFF)
    y_test = outcome(events, CUTOFF, test.index)
    print(f"outcome: {y_test.mean():.1%} of {len(test):,} customers bought in the 90 days after "
          f"{CUTOFF:%Y-%m-%d}")

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "cdnow.parquet"
        events.to_parquet(source, index=False)
        ws = Workspace.create(Path(tmp) / "ws")
        ingested = ws.ingest_events([source], "cdnow")
        print(f"ingested {ingested.rows_ingested:,} of {ingested.rows_read:,} rows "
              f"({ingested.quality['exact_duplicate_rows']:,} identical repeat orders kept)")
        ws.create_instance({
            "name": "buy-90d", "datasets": {"events": "cdnow"},
            "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": WINDOW},
            "population": {"conditions": ["event_type = 'commerce.purchases'"],
                           "lookback_days": 365},
        })
        started = time.perf_counter()
        run = ws.run("buy-90d", as_of=date(1997, 12, 31))
        seconds = time.perf_counter() - started
        scores = ws.scores("buy-90d").to_pandas().set_index("profile_id")
        top = [f["name"] for f in ws.factors("buy-90d")["factors"][:5]]
    likely_p = scores.probability.reindex(test.index)
    assert likely_p.notna().all(), "likely should score every customer who bought before"

    anchor = CUTOFF - timedelta(days=WINDOW)
    train = rfm(events, anchor)
    y_train = outcome(events, anchor, train.index)
    logistic = LogisticRegression(max_iter=1000).fit(design(train), y_train)
    rows = [
        ("likely (automatic model)", likely_p.to_numpy()),
        ("recency only", None),
        ("RFM logistic regression", logistic.predict_proba(design(test))[:, 1]),
    ]
    print(f"likely run: {seconds:.1f} s, holdout AUC {run.metrics['holdout']['auc']:.3f} "
          f"(training windows {', '.join(a[:10] for a in run.metrics['windows']['anchors'])}), "
          f"{run.counts['features']} features, model {run.metrics['model']['num_leaves']} "
          f"leaves x {run.metrics['model']['best_iteration']} trees")
    print(f"likely top factors: {'; '.join(top)}")
    print(f"likely holdout: ECE {run.metrics['holdout']['ece']:.4f} (cross-fitted), expected "
          f"{run.metrics['expected']['expected_goal_profiles']:,.0f} buyers of "
          f"{run.metrics['expected']['scored_profiles']:,} scored; the last window had "
          f"{run.metrics['expected']['last_window']['goal_profiles']:,} of "
          f"{run.metrics['expected']['last_window']['rows']:,}")
    print(f"Out of time, the 90 days after {CUTOFF:%Y-%m-%d} ({len(test):,} customers, "
          f"{int(y_test.sum()):,} buyers, realised rate {y_test.mean():.3f}):")
    print(f"  {'model':<28} {'AUC':>6} {'ECE':>7} {'mean p':>7}")
    for name, probability in rows:
        if probability is None:
            auc = roc_auc_score(y_test, -test.recency)
            print(f"  {name:<28} {auc:>6.4f} {'-':>7} {'-':>7}")
            continue
        judged = evaluate(y_test, probability)
        print(f"  {name:<28} {judged.auc:>6.4f} {judged.ece:>7.4f} {probability.mean():>7.3f}")
    print(f"peak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
