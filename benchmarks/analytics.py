"""Analytics over a score history of N profiles × R runs (target: each answer < 2 s).

A real instance is run on demo data at two score dates. Its two `scores.parquet` files are then
replicated into R runs of N rows each: new run folders and catalog `runs` rows (status
`success`, one score date a week), ids P00000000…, rows resampled per date so that buckets
change from run to run, and each run scoring a random 95% of a pool of N / 0.95 ids so that
profiles enter and leave. N profiles with attributes are ingested (a snapshot, one row each) for
the attribute filter and the cohorts, and a published segment gives the segment filter.

Run: .venv/bin/python benchmarks/analytics.py --profiles 1000000 --runs 20
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _machine import describe, peak_rss_mb
from _workspace import demo_workspace

from likely.scoring import records
from likely.storage import write_table
from likely.workspace import Workspace

INSTANCE = {
    "name": "buyers", "datasets": {"events": "events", "profiles": "profiles"},
    "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
    "exclusions": ["event_type = 'directMarketing.emailSent'"],
    "min_positives": 100, "min_negatives": 100, "max_anchors": 2,
}
FIRST_DATE = date(2025, 3, 1)


def build(root: Path, seed_profiles: int) -> tuple[Workspace, Path]:
    ws, data = demo_workspace(root, seed_profiles)
    ws.create_instance(INSTANCE)
    ws.run("buyers", as_of=date(2025, 6, 1))
    ws.run("buyers")
    return ws, data.profiles_path


def replicate(ws: Workspace, profiles: int, runs: int, source: Path, root: Path) -> None:
    """Replace the real runs by ``runs`` runs of ``profiles`` rows each (see the docstring)."""
    instance = ws.instance("buyers")
    real = records.successful_runs(ws.catalog, instance.id)
    seeds = [pq.read_table(records.run_dir(ws.path, instance.id, r.id) / "scores.parquet")
             for r in real]
    pool = int(profiles / 0.95)
    names = np.array([f"P{i:08d}" for i in range(pool)], dtype=object)
    rng = np.random.default_rng(0)
    for r in real:  # the replicated runs take their place
        ws.catalog.update("runs", "id", r.id, {"status": records.SUPERSEDED})
    for i in range(runs):
        as_of = FIRST_DATE + timedelta(days=7 * i)
        run_id = f"run-{uuid.uuid4().hex[:12]}"
        seed = seeds[i % len(seeds)]
        ids = np.sort(rng.choice(pool, profiles, replace=False))
        rows = seed.take(rng.integers(0, seed.num_rows, profiles))
        rows = (rows.set_column(0, "profile_id", pa.array(names[ids], pa.string()))
                .set_column(rows.schema.get_field_index("score_date"), "score_date",
                            pa.array(np.full(profiles, as_of), pa.date32()))
                .set_column(rows.schema.get_field_index("run_id"), "run_id",
                            pa.array([run_id] * profiles, pa.string())))
        folder = records.run_dir(ws.path, instance.id, run_id)
        folder.mkdir(parents=True)
        write_table(rows, folder / "scores.parquet")
        counts = {"scored_profiles": profiles, "buckets": {
            b: int(pc.sum(pc.equal(rows.column("bucket"), b)).as_py() or 0)
            for b in ("High", "Medium", "Low")}}
        ws.catalog.insert("runs", {"id": run_id, "instance_id": instance.id,
                                   "as_of": as_of.isoformat(), "status": records.SUCCESS,
                                   "started_at": f"{as_of}T06:00:00+00:00",
                                   "finished_at": f"{as_of}T06:10:00+00:00",
                                   "model_id": real[-1].model_id, "counts": counts})
    people = pq.read_table(source)
    big = people.take(rng.integers(0, people.num_rows, pool)).set_column(
        0, "profile_id", pa.array(names, pa.string()))
    pq.write_table(big, root / "profiles-big.parquet")
    ws.ingest_profiles([root / "profiles-big.parquet"], "profiles")


def timed(what: str, call, repeat: int = 3) -> None:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    print(f"{what:64} {min(times):6.2f} s  (median {sorted(times)[len(times) // 2]:.2f})  "
          f"{_size(result)}")


def _size(result: dict) -> str:
    kind = result["kind"]
    if kind == "trend":
        return f"{sum(d['profiles'] for d in result['dates']):,} rows counted"
    if kind == "flow":
        return f"{sum(p['profiles'] for p in result['pairs']):,} transitions"
    if kind == "overlap":
        return f"{result['union']:,} profiles in {result['bucket']} at least once"
    if kind == "distribution":
        return f"{sum(h['profiles'] for h in result['histograms']):,} scores binned"
    if kind == "reasons":
        return f"{result['profiles']:,} profiles' top reasons"
    if kind == "cohorts":
        return f"{len(result['series'])} cohorts × {len(result['runs'])} dates"
    return f"{len(result['measured'])} measured, {len(result['pending'])} pending"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed-profiles", type=int, default=5_000)
    parser.add_argument("--keep", type=Path, default=None,
                        help="Build the history in this folder and keep it (reused when it "
                             "is there already).")
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        if (folder / "ws" / "catalog.sqlite").exists():
            ws = Workspace(folder / "ws")
            print(f"reusing the history in {folder}")
        else:
            ws = prepare(folder, args)
        a = lambda kind, **o: lambda: ws.analytics("buyers", kind, **o)  # noqa: E731
        cases = [
            ("trend (every run)", a("trend")),
            ("flow (newest pair)", a("flow")),
            (f"flow (each consecutive pair: {args.runs - 1} pairs)", a("flow", runs="all")),
            ("overlap (High in the newest 3 runs)", a("overlap")),
            ("overlap (High in 6 runs, UpSet)", a("overlap", runs=_dates(args.runs)[-6:])),
            ("distribution (newest 4 runs, 20 bins)", a("distribution")),
            ("distribution (every run)", a("distribution", runs="all")),
            ("reasons (newest run)", a("reasons")),
            ("cohorts by loyalty_tier (every run)", a("cohorts", attribute="loyalty_tier")),
            ("cohorts by signup month (every run)", a("cohorts", attribute="signup_date")),
            ("outcomes", a("outcomes")),
            ("trend, segment=bench top", a("trend", segment="bench top")),
            ("trend, bucket=High", a("trend", bucket="High")),
            ("trend, where loyalty_tier = 'gold'", a("trend", where="loyalty_tier = 'gold'")),
            ("flow, bucket=High (newest pair)", a("flow", bucket="High")),
            ("flow, where loyalty_tier = 'gold' (newest pair)",
             a("flow", where="loyalty_tier = 'gold'")),
            ("reasons, segment=bench top", a("reasons", segment="bench top")),
            ("cohorts by loyalty_tier, where signup_date >= '2024-01-01'",
             a("cohorts", attribute="loyalty_tier", where="signup_date >= '2024-01-01'")),
            ("all three filters: trend", a("trend", segment="bench top", bucket="High",
                                           where="country = 'DE'")),
            ("flow, bucket=High (each consecutive pair)", a("flow", runs="all", bucket="High")),
            ("cohorts by signup month, segment + where",
             a("cohorts", attribute="signup_date", segment="bench top",
               where="loyalty_tier IN ('gold', 'platinum')")),
        ]
        print(f"{'analytic (best of 3)':64} {'best':>8}")
        for what, call in cases:
            timed(what, call)
    print(f"peak RSS {peak_rss_mb():.0f} MiB")


def prepare(folder: Path, args: argparse.Namespace) -> Workspace:
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ws, profiles_path = build(folder, args.seed_profiles)
    print(f"real runs on {args.seed_profiles:,} demo profiles: "
          f"{time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    replicate(ws, args.profiles, args.runs, profiles_path, folder)
    print(f"replicated to {args.runs} runs × {args.profiles:,} profiles: "
          f"{time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    ws.create_segment("bench top", "buyers.percentile >= 90")
    print(f"segment 'bench top' published: {time.perf_counter() - started:.1f} s")
    return ws


def _dates(runs: int) -> list[str]:
    return [(FIRST_DATE + timedelta(days=7 * i)).isoformat() for i in range(runs)]


if __name__ == "__main__":
    main()
