"""Time ingesting a 1M-event CSV into a fresh workspace.

Run: .venv/bin/python benchmarks/ingest_csv.py [--events 1000000] [--repeat N]

Prints the wall time, the process's CPU time (both cores together) and each stage's share, as
timed by the ingest's progress callback.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from _machine import describe
from ingest_parquet import timed_ingest

from likely.workspace import Workspace

TYPES = ["commerce.productViews", "web.webpagedetails.pageViews", "commerce.purchases",
         "commerce.productListAdds", "directMarketing.emailOpened", "search"]


def make_csv(path: Path, events: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2025-01-01T00:00:00")
    seconds = rng.integers(0, 180 * 86400, events)
    event_type = rng.choice(TYPES, events, p=[0.4, 0.3, 0.05, 0.1, 0.1, 0.05])
    value = np.where(event_type == "commerce.purchases", rng.lognormal(3, 1, events).round(2),
                     np.nan)
    table = pa.table({
        "profile_id": [f"p{i}" for i in rng.integers(0, 100_000, events)],
        "timestamp": [str(t) + "Z" for t in (start + seconds.astype("timedelta64[s]"))],
        "event_type": event_type,
        "value": pa.array(value, mask=np.isnan(value)),
        "channel": rng.choice(["web", "app", "email"], events),
        "category": rng.choice([f"cat{i}" for i in range(12)], events),
    })
    pacsv.write_csv(table, path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="ingest the file this many times")
    parser.add_argument("--file", type=Path, help="ingest this CSV file instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = args.file or Path(tmp) / "events.csv"
        if not args.file:
            make_csv(src, args.events)
        size_mb = src.stat().st_size / 2**20
        print(f"machine: {describe()}")
        for i in range(args.repeat):
            ws = Workspace.create(Path(tmp) / f"ws{i}")
            timed_ingest(ws, [src], f"csv: {{events:,}} events, {size_mb:.0f} MiB")


if __name__ == "__main__":
    main()
