"""Segment rules and publishing over three instances × N scored profiles (target: < 2 s each).

Three instances are run on demo data, then each run's scores are replicated to N profiles
(rows resampled, the same new ids in every instance, sorted by id as runs write them) and N
profiles with attributes are ingested, so rules join three full score tables and the profiles.
Timed: a preview (size) of rules over scores, reasons and attributes, and publishing one
(the membership written, and who entered and left against the previous one counted).

Run: .venv/bin/python benchmarks/segments.py --profiles 1000000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _machine import describe, peak_rss_mb
from _workspace import demo_workspace

from likely.scoring import records
from likely.segments import publish
from likely.storage import write_table
from likely.workspace import Workspace

BASE = {"datasets": {"events": "events", "profiles": "profiles"},
        "min_positives": 100, "min_negatives": 100}
INSTANCES = [
    {**BASE, "name": "buyers",
     "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30}},
    {**BASE, "name": "churn_60d", "type": "churn",
     "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 60,
              "occurs": False}},
    {**BASE, "name": "carts",
     "goal": {"conditions": ["event_type = 'commerce.productListAdds'"], "window_days": 14}},
]
EARLIER = date(2025, 6, 1)


def build(root: Path, seed_profiles: int) -> tuple[Workspace, Path]:
    ws, data = demo_workspace(root, seed_profiles)
    for config in INSTANCES:
        ws.create_instance(config)
    ws.run("buyers", as_of=EARLIER)
    for config in INSTANCES:
        ws.run(config["name"])
    return ws, data.profiles_path


def replicate(ws: Workspace, profiles: int, source: Path, root: Path) -> None:
    """Every successful run's scores blown up to ``profiles`` rows with ids P00000000…, and
    as many profiles with attributes ingested (a snapshot: one row each)."""
    ids = pa.array([f"P{i:08d}" for i in range(profiles)])
    rng = np.random.default_rng(0)
    for config in INSTANCES:
        instance = ws.instance(config["name"])
        for run in records.successful_runs(ws.catalog, instance.id):
            path = records.run_dir(ws.path, instance.id, run.id) / "scores.parquet"
            scores = pq.read_table(path)
            pick = rng.integers(0, scores.num_rows, profiles)
            write_table(scores.take(pick).set_column(0, "profile_id", ids), path)
    people = pq.read_table(source)
    big = people.take(rng.integers(0, people.num_rows, profiles)).set_column(0, "profile_id",
                                                                            ids)
    pq.write_table(big, root / "profiles-big.parquet")
    ws.ingest_profiles([root / "profiles-big.parquet"], "profiles")


def timed(what: str, call, repeat: int = 3, unit: str = "profiles") -> None:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    size = result["profiles"] if isinstance(result, dict) else result
    print(f"{what:70} {min(times):6.2f} s  (median {sorted(times)[len(times) // 2]:.2f})  "
          f"{size:>11,} {unit}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--seed-profiles", type=int, default=5_000)
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ws, profiles_path = build(Path(tmp), args.seed_profiles)
        print(f"3 instances run on {args.seed_profiles:,} demo profiles: "
              f"{time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        replicate(ws, args.profiles, profiles_path, Path(tmp))
        print(f"replicated to {args.profiles:,} profiles × 3 instances: "
              f"{time.perf_counter() - started:.1f} s")
        reason = ws.preview_segment("carts.score >= 0", sample=1)["sample"][0].get(
            "carts.top_reason") or "page views"
        rules = {
            "3 instances' scores": "buyers.bucket = 'High' AND churn_60d.score < 40 "
                                   "AND carts.percentile >= 50",
            "3 instances + a reason": "buyers.percentile >= 80 AND churn_60d.bucket <> 'High' "
                                      f"AND '{reason}' IN carts.reasons",
            "3 instances + attributes": "buyers.score > 20 AND churn_60d.score < 50 AND "
                                        "carts.bucket IN ('High', 'Medium') AND "
                                        "loyalty_tier IN ('gold', 'platinum')",
        }
        print(f"{'rule (preview: size and a 20-row sample)':70} {'best':>8}")
        for what, rule in rules.items():
            timed(what, lambda rule=rule: ws.preview_segment(rule))
        published = (f"buyers.percentile >= 50 OR ('{reason}' IN carts.reasons AND "
                     "churn_60d.score < 50)")  # at the earlier date only buyers had scores
        segment = ws.create_segment("bench", published, published=False)
        ws.edit_segment("bench", published=True)
        publish(ws.catalog, ws.con, ws.path, ws.segment("bench"), EARLIER)
        print(f"publishing {published}")
        timed("publish: membership written + entered/left vs the previous one",
              lambda: publish(ws.catalog, ws.con, ws.path, ws.segment("bench")))
        kept = ws.segment_history("bench")[-1]
        print(f"  published {kept['profiles']:,} members; entered {kept['entered']:,}, "
              f"left {kept['left']:,}")
        timed("size of the published segment (the list and pages: from the catalog)",
              lambda: ws.segment_size("bench"))
        timed("show: history, 20 members, 20 who entered and 20 who left",
              lambda: ws.show_segment("bench"))
        timed("export CSV of the published members",
              lambda: ws.export_segment(segment.name, Path(tmp) / "m.csv").stat().st_size,
              unit="bytes")
    print(f"peak RSS {peak_rss_mb():.0f} MiB")


if __name__ == "__main__":
    main()
