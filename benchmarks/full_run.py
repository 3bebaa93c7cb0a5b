"""Time a full run (examples/purchase-30d.yaml) on demo data, per stage, with peak memory.

Demo data is generated in chunks of at most 100k profiles (each chunk its own seed and id
prefix), so a million profiles never have to fit the generator's memory at once. The run's own
stage timings are printed with the peak resident memory sampled during each stage (the process
holds DuckDB, so its memory counts too).

Run: .venv/bin/python benchmarks/full_run.py --profiles 100000 --days 180
     .venv/bin/python benchmarks/full_run.py --profiles 1000000 --days 120 --keep /tmp/bench1m
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from _machine import describe, peak_rss_mb

from likely.data import demo
from likely.workspace import Workspace

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "purchase-30d.yaml"
CHUNK = 100_000


class StageMemory:
    """Samples this process's resident memory and keeps the peak per current stage."""

    def __init__(self) -> None:
        self.stage = "setup"
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> StageMemory:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def progress(self, what: str, done: int, total: int) -> None:
        if done == 0 and total == 1:  # a stage starts
            self.stage = what

    def _sample(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.wait(0.1):
            with open("/proc/self/statm") as handle:
                rss = int(handle.read().split()[1]) * page / 2**20
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0.0), rss)


def generate(out: Path, profiles: int, days: int) -> tuple[list[Path], list[Path], int]:
    events, people, total = [], [], 0
    for k, start in enumerate(range(0, profiles, CHUNK)):
        n = min(CHUNK, profiles - start)
        data = demo.generate(out / f"chunk{k}", profiles=n, days=days, seed=100 + k)
        for source, bucket in ((data.events_path, events), (data.profiles_path, people)):
            table = pq.read_table(source)
            ids = pc.binary_join_element_wise(f"c{k}-", table["profile_id"], "")
            table = table.set_column(table.schema.get_field_index("profile_id"), "profile_id",
                                     ids.cast(pa.string()))
            path = out / f"{source.stem}-{k}.parquet"
            pq.write_table(table, path)
            bucket.append(path)
        total += data.events
        shutil.rmtree(out / f"chunk{k}")
        print(f"  generated {start + n:,} profiles, {total:,} events", flush=True)
    return events, people, total


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--keep", type=Path, help="Keep the workspace here (default: a temp dir); "
                        "when it already holds one, reuse its data and train again.")
    return parser.parse_args()


def prepare(root: Path, profiles: int, days: int) -> Workspace:
    """Generate the demo data, ingest it into a new workspace and create the instance."""
    started = time.perf_counter()
    events, people, total = generate(root / "data", profiles, days)
    print(f"demo data: {profiles:,} profiles x {days} days, {total:,} events in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    ws = Workspace.create(root / "ws")
    started = time.perf_counter()
    ws.ingest_events(events, "demo-events")
    ws.ingest_profiles(people, "demo-profiles")
    print(f"ingest: {time.perf_counter() - started:.0f} s", flush=True)
    ws.create_instance(yaml.safe_load(EXAMPLE.read_text()))
    return ws


def main() -> None:
    args = _arguments()
    root = args.keep or Path(tempfile.mkdtemp(prefix="likely-bench-"))
    print(f"machine: {describe()}", flush=True)
    reuse = args.keep is not None and (root / "ws" / "catalog.sqlite").exists()
    ws = Workspace(root / "ws") if reuse else prepare(root, args.profiles, args.days)
    if reuse:
        print(f"reusing the data and instance in {root / 'ws'}", flush=True)
    with StageMemory() as memory:
        started = time.perf_counter()
        run = ws.run("purchase-30d", progress=memory.progress, retrain=True)
        wall = time.perf_counter() - started
    counts, holdout = run.counts, run.metrics["holdout"]
    print(f"run {run.status} in {wall:.0f} s: {counts['anchors']} training windows, "
          f"{counts['training_rows']:,} training + {counts['holdout_rows']:,} holdout rows, "
          f"{counts['features']} features, {counts['scored_profiles']:,} scored; "
          f"holdout AUC {holdout['auc']:.3f}, ECE {holdout['ece']:.3f}; model "
          f"{run.metrics['model']['num_leaves']} leaves x {run.metrics['model']['best_iteration']}"
          " trees")
    for note in run.notes:
        print(f"  note: {note}")
    print(f"{'stage':<14}{'seconds':>9}{'peak RSS MiB':>14}")
    for stage, seconds in run.timings.items():
        print(f"{stage:<14}{seconds:>9.1f}{memory.peaks.get(stage, 0):>14.0f}")
    explained = counts["scored_profiles"] / max(run.timings.get("explanations", 0), 1e-9)
    print(f"scoring + explanations: {explained:,.0f} profiles/s")
    print(f"peak RSS overall {peak_rss_mb():.0f} MiB")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
