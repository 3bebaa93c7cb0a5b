"""Folder destinations: one data file and one manifest per activation, both written atomically.

A consumer (an SFTP sync, a warehouse loader) watches the folder for ``*.manifest.json``. The
manifest is written after its data file and names it with its size and SHA-256, so a consumer
that sees a manifest can trust the file whole. ``manifest.json`` indexes every drop in the
folder; it is rebuilt from the drops' own manifests each time, so two activations writing at
once cannot lose an entry for good.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from likely.activation.base import Delivery, Outcome, slug
from likely.activation.members import CHANGE, json_rows
from likely.errors import DataError
from likely.storage import atomic_path, sha256_file, write_json, write_table

INDEX = "manifest.json"
_JSONL_CHUNK = 20_000


def deliver(job: Delivery) -> Outcome:
    folder = job.resolve(job.config["path"])
    folder.mkdir(parents=True, exist_ok=True)
    fmt = job.config.get("format", "csv")
    stem = f"{slug(job.segment_name)}-{job.score_date or 'live'}-{job.activation_id}"
    data = folder / f"{stem}.{fmt}"
    _write(job.rows, data, fmt)
    job.report(job.rows.num_rows)
    manifest = _manifest(job, data, fmt)
    manifest_path = write_json(manifest, folder / f"{stem}.manifest.json")
    _rebuild_index(folder)
    detail = {"folder": str(folder), "file": str(data), "manifest": str(manifest_path),
              "format": fmt, "sha256": manifest["sha256"], "bytes": manifest["bytes"]}
    return Outcome("success", sent=job.rows.num_rows, batches=1, detail=detail)


def _write(rows: pa.Table, target: Path, fmt: str) -> None:
    if fmt == "parquet":
        write_table(rows, target)
    elif fmt == "csv":
        import pyarrow.csv as pcsv

        with atomic_path(target) as tmp:
            try:
                pcsv.write_csv(rows, tmp)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataError(f"These member columns cannot be written as CSV ({exc}); use "
                                "format parquet or jsonl.") from None
    else:
        with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as out:
            for start in range(0, rows.num_rows, _JSONL_CHUNK):
                for row in json_rows(rows.slice(start, _JSONL_CHUNK)):
                    out.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")


def _manifest(job: Delivery, data: Path, fmt: str) -> dict[str, Any]:
    return {
        "activation_id": job.activation_id,
        "segment": {"id": job.segment_id, "name": job.segment_name},
        "score_date": job.score_date,
        "mode": job.mode,
        "file": data.name,
        "format": fmt,
        "rows": job.rows.num_rows,
        "bytes": data.stat().st_size,
        "sha256": sha256_file(data),
        "columns": job.rows.column_names,
        "change_column": CHANGE if job.mode == "delta" else None,
        "counts": {"members": job.members.num_rows, "entered": job.entered, "left": job.left},
        "activated_at": job.activated_at,
    }


def _rebuild_index(folder: Path) -> None:
    drops = []
    for path in sorted(folder.glob("*.manifest.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a stranger's file, or one being replaced this instant
        if isinstance(entry, dict) and "activation_id" in entry:
            drops.append({"manifest": path.name, **{k: entry.get(k) for k in (
                "activation_id", "segment", "score_date", "mode", "file", "rows", "sha256",
                "activated_at")}})
    drops.sort(key=lambda d: (str(d.get("activated_at")), str(d.get("activation_id"))))
    write_json({"drops": drops}, folder / INDEX)
