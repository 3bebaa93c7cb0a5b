"""Time ingesting a 10M-event Parquet file (the demo generator's columns) into a fresh workspace.

Run: .venv/bin/python benchmarks/ingest_parquet.py [--events 10000000] [--files N]
    [--event-ids] [--dedupe auto|exact|none] [--repeat N] [--demo-profiles N | --file PATH]

The events have the demo generator's nine columns (profile_id, timestamp, event_type, value,
channel, category, sku, page_name, campaign_id), sorted by profile then time as the demo writes
them, in 100k-row groups. They are synthetic arrays so that 10M events take seconds to make;
``--demo-profiles N`` times ``likely.data.demo.generate`` output instead (about 109 events per
profile over 180 days). Stage times come from the ingest's progress callback.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from _machine import describe, peak_rss_mb

from likely.storage import write_table
from likely.workspace import Workspace

TYPES = np.array(["commerce.productViews", "web.webpagedetails.pageViews", "commerce.purchases",
                  "commerce.productListAdds", "directMarketing.emailOpened", "search",
                  "directMarketing.emailSent", "application.launches"], dtype=object)
SHARES = [0.3, 0.3, 0.03, 0.07, 0.08, 0.05, 0.12, 0.05]
CATEGORIES = np.array([f"cat{i:02d}" for i in range(12)], dtype=object)
PAGES = np.array([f"/page/{i}" for i in range(40)], dtype=object)


def _lookup(values: np.ndarray, index: np.ndarray, mask: np.ndarray | None) -> pa.Array:
    indices = pa.array(index.astype(np.int32), mask=None if mask is None else ~mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(values, pa.string())).cast(pa.string())


def make_events(events: int, seed: int = 0, *, event_ids: bool = False,
                first_profile: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    profiles = max(1, events // 100)
    who = np.sort(rng.integers(0, profiles, events))
    seconds = rng.integers(0, 180 * 86400, events)
    order = np.lexsort((seconds, who))
    who, seconds = who[order], seconds[order]
    what = rng.choice(len(TYPES), events, p=SHARES)
    event_type = TYPES[what]
    product = what <= 3
    email = (what == 4) | (what == 6)
    category_idx = rng.integers(0, len(CATEGORIES), events)
    skus = np.array([f"{c}-{k:03d}" for c in CATEGORIES for k in range(200)], dtype=object)
    value = np.where(what == 2, rng.lognormal(3.6, 0.6, events).round(2), np.nan)
    channel = np.where(email, "email", np.where(what == 7, "app", "web"))
    campaigns = np.array([f"cmp-{w:03d}" for w in range(27)], dtype=object)
    ids = np.array([f"p{first_profile + i:08d}" for i in range(profiles)], dtype=object)
    base = np.datetime64("2025-01-01T00:00:00", "s")
    ids_of_events = ({"event_id": pa.array(np.char.add(f"e{seed}-", np.arange(events).astype(str)))}
                     if event_ids else {})
    return pa.table({
        "profile_id": _lookup(ids, who, None),
        "timestamp": pa.array(base + seconds.astype("timedelta64[s]"), pa.timestamp("us")),
        "event_type": pa.array(event_type, pa.string()),
        "value": pa.array(value, mask=np.isnan(value)),
        "channel": pa.array(channel, pa.string()),
        "category": _lookup(CATEGORIES, category_idx, product),
        "sku": _lookup(skus, category_idx * 200 + rng.integers(0, 200, events), product),
        "page_name": _lookup(PAGES, rng.integers(0, len(PAGES), events), what == 1),
        "campaign_id": _lookup(campaigns, seconds // (7 * 86400), email),
        **ids_of_events,
    })


def timed_ingest(ws: Workspace, sources: list[Path], heading: str, **options) -> None:
    """Ingest ``sources`` as events and print the time, speed, CPU, counts and stages
    (``heading`` may name ``{events}``)."""
    stages = Stages()
    started, cpu = time.perf_counter(), time.process_time()
    report = ws.ingest_events(sources, "events", progress=stages, **options)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    events = report.rows_read
    print(heading.format(events=events))
    print(f"ingest: {seconds:.1f} s ({events / seconds:,.0f} events/s, CPU {cpu:.1f} s), "
          f"rows ingested {report.rows_ingested:,}, duplicates dropped "
          f"{report.duplicates_dropped:,}, peak RSS {peak_rss_mb():.0f} MiB")
    print(f"stages: {stages.finish()}")


class Stages:
    """Wall and CPU seconds between the ingest's progress calls."""

    def __init__(self) -> None:
        self.last = (time.perf_counter(), time.process_time())
        self.current = "hashing"
        self.seconds: dict[str, list[float]] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        now = (time.perf_counter(), time.process_time())
        spent = self.seconds.setdefault(self.current, [0.0, 0.0])
        spent[0] += now[0] - self.last[0]
        spent[1] += now[1] - self.last[1]
        self.current, self.last = what.split(" ")[0], now

    def finish(self) -> str:
        self("done", 0, 0)
        return ", ".join(f"{k} {wall:.1f} s (CPU {cpu:.1f} s)"
                         for k, (wall, cpu) in self.seconds.items() if wall >= 0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--demo-profiles", type=int, default=0,
                        help="ingest likely.data.demo output for this many profiles instead")
    parser.add_argument("--repeat", type=int, default=1, help="ingest the file this many times")
    parser.add_argument("--file", type=Path, help="ingest this Parquet file instead")
    parser.add_argument("--dedupe", default="auto", choices=["auto", "exact", "none"])
    parser.add_argument("--event-ids", action="store_true",
                        help="give every event an event_id (so --dedupe auto goes by id)")
    parser.add_argument("--files", type=int, default=1,
                        help="split the events over this many files (other profiles in each)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        made = time.perf_counter()
        if args.file:
            sources = [args.file]
        elif args.demo_profiles:
            from likely.data import demo

            data = demo.generate(Path(tmp) / "demo", profiles=args.demo_profiles, days=180)
            sources = [data.events_path]
        else:
            sources = [Path(tmp) / f"events-{i}.parquet" for i in range(args.files)]
            for i, path in enumerate(sources):
                write_table(make_events(args.events // args.files, seed=i,
                                        event_ids=args.event_ids, first_profile=i * 10**7), path)
        made = time.perf_counter() - made
        size_mb = sum(p.stat().st_size for p in sources) / 2**20
        print(f"machine: {describe()}")
        for i in range(args.repeat):
            ws = Workspace.create(Path(tmp) / f"ws{i}")
            timed_ingest(ws, sources, f"parquet: {{events:,}} events in {len(sources)} file(s), "
                                      f"{size_mb:.0f} MiB (made in {made:.1f} s)",
                         dedupe=args.dedupe)

if __name__ == "__main__":
    main()
