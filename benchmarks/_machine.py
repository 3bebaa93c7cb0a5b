"""What machine a benchmark ran on, printed with every figure."""

from __future__ import annotations

import os
import platform
import resource
import sys


def describe() -> str:
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{platform.machine()} {os.cpu_count()} cores, {mem_gb:.0f} GiB RAM, "
            f"Python {sys.version.split()[0]}, {platform.platform()}")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
