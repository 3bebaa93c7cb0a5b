"""Time the demo generator at 100k profiles × 180 days.

Run: .venv/bin/python benchmarks/demo_data.py [--profiles 100000 --days 180]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from _machine import describe, peak_rss_mb

from likely.data.demo import generate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=180)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = generate(tmp, profiles=args.profiles, days=args.days, seed=1)
        seconds = time.perf_counter() - started
        oracle = json.loads(result.ground_truth_path.read_text())["oracle"]
    print(f"machine: {describe()}")
    print(f"demo data: {args.profiles:,} profiles x {args.days} days -> {result.events:,} events "
          f"in {seconds:.1f} s, peak RSS {peak_rss_mb():.0f} MiB")
    print(f"oracle (last {oracle['window_days']} days): mean probability "
          f"{oracle['mean_probability']:.4f}, realised rate {oracle['realised_rate']:.4f}, "
          f"AUC {oracle['auc']:.3f}")


if __name__ == "__main__":
    main()
