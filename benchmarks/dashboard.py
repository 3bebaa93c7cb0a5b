"""Dashboard server time per page with a million scored profiles (p50/p95 of Server-Timing).

Pages read the run's summary file and profile lookups read one profile, so page time should not
grow with the population. To measure that at 1M without a 1M-profile model run (that is the
scale benchmark's job), a real run on demo data is made first, then its scores and features are
replicated to N profiles (rows resampled, new ids, sorted by id as runs write them) and the
summary is rebuilt from them through the same code a run uses: that build's time is reported too.

Run: .venv/bin/python benchmarks/dashboard.py --profiles 1000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import uvicorn
from _machine import describe, peak_rss_mb
from _workspace import demo_workspace

from likely.engine import read_parquet
from likely.scoring import records
from likely.scoring.summary import SUMMARY_FILE, value_distribution
from likely.storage import write_json, write_table
from likely.web import create_app
from likely.workspace import Workspace

INSTANCE = {
    "name": "buyers", "datasets": {"events": "events", "profiles": "profiles"},
    "goal": {"conditions": ["event_type = 'commerce.purchases'"], "window_days": 30},
    "exclusions": ["event_type = 'directMarketing.emailSent'"],
    "static_attributes": ["loyalty_tier", "country"],
}


def build(root: Path, seed_profiles: int) -> Workspace:
    ws, _ = demo_workspace(root, seed_profiles)
    ws.create_instance(INSTANCE)
    ws.run("buyers", as_of=date(2025, 6, 1))
    ws.run("buyers")
    return ws


def replicate(ws: Workspace, profiles: int) -> tuple[str, float]:
    """Blow the current run's scores and features up to ``profiles`` rows; returns a profile id
    and the seconds the summary took to rebuild."""
    instance = ws.instance("buyers")
    run = records.latest_success(ws.catalog, instance.id)
    folder = records.run_dir(ws.path, instance.id, run.id)
    rng = np.random.default_rng(0)
    scores = pq.read_table(folder / "scores.parquet")
    pick = rng.integers(0, scores.num_rows, profiles)
    ids = pa.array([f"P{i:08d}" for i in range(profiles)])
    big = scores.take(pick).set_column(0, "profile_id", ids)
    for name in ("scores.parquet", "profile_scores.parquet"):
        write_table(big, folder / name)
    features = pq.read_table(folder / "features.parquet")
    order = {p: i for i, p in enumerate(features.column("profile_id").to_pylist())}
    rows = [order[p] for p in scores.column("profile_id").to_pylist()]
    write_table(features.take(np.asarray(rows)[pick]).set_column(0, "profile_id", ids),
                folder / "features.parquet")
    started = time.perf_counter()
    _refresh_factor_distributions(ws, folder)
    print(f"factors.json distributions over {profiles:,} profiles (the explanations stage "
          f"computes these): {time.perf_counter() - started:.2f} s")
    (folder / SUMMARY_FILE).unlink()
    started = time.perf_counter()
    ws.summary("buyers")
    return "P00123456" if profiles > 123456 else "P00000001", time.perf_counter() - started


def _refresh_factor_distributions(ws: Workspace, folder: Path) -> None:
    """Recompute factors.json's per-bucket distributions over the replicated rows, as the run's
    explanations stage does, so the summary reuses figures of the same data."""
    document = json.loads((folder / "factors.json").read_text())
    features = read_parquet(ws.con, [folder / "features.parquet"])
    scores = read_parquet(ws.con, [folder / "scores.parquet"]).select("profile_id", "bucket")
    joined = features.join(scores, "profile_id")
    for entry in document["factors"]:
        if "by_bucket" in entry:
            entry["by_bucket"] = value_distribution(joined, entry["factor"], entry["kind"])
    write_json(document, folder / "factors.json")


def serve(path: Path) -> tuple[str, uvicorn.Server]:
    server = uvicorn.Server(uvicorn.Config(create_app(path), host="127.0.0.1", port=8791,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return "http://127.0.0.1:8791", server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--seed-profiles", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ws = build(Path(tmp), args.seed_profiles)
        print(f"real run on {args.seed_profiles:,} demo profiles: "
              f"{time.perf_counter() - started:.1f} s")
        profile, summary_s = replicate(ws, args.profiles)
        print(f"summary rebuilt over {args.profiles:,} scored profiles in {summary_s:.2f} s "
              f"({summary_size(ws):,} bytes)")
        url, server = serve(ws.path)
        pages = ["/instances", "/instances/buyers", "/instances/buyers/evaluation",
                 "/instances/buyers/performance", "/instances/buyers/runs",
                 f"/instances/buyers/profiles?id={profile}", "/segments", "/data",
                 "/api/instances/buyers/scores", "/api/instances/buyers/targeting?size=10000",
                 f"/api/instances/buyers/profiles/{profile}"]
        print(f"{'page':48} {'p50 ms':>8} {'p95 ms':>8}")
        with httpx.Client(base_url=url, timeout=60) as client:
            for page in pages:
                times = []
                for _ in range(args.requests + 2):
                    response = client.get(page)
                    response.raise_for_status()
                    times.append(float(response.headers["server-timing"].split("dur=")[1]))
                times = sorted(times[2:])  # the first two warm the worker threads
                p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
                print(f"{page:48} {statistics.median(times):8.1f} {p95:8.1f}")
        server.should_exit = True
    print(f"peak RSS {peak_rss_mb():.0f} MiB")


def summary_size(ws: Workspace) -> int:
    instance = ws.instance("buyers")
    run = records.latest_success(ws.catalog, instance.id)
    return (records.run_dir(ws.path, instance.id, run.id) / SUMMARY_FILE).stat().st_size


if __name__ == "__main__":
    main()
