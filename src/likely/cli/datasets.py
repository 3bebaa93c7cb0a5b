"""`likely datasets ...`: ingest, list, show, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from likely.cli.common import (
    JsonOption,
    WorkspaceOption,
    confirm_or_abort,
    console,
    fmt_count,
    open_workspace,
    print_json,
    progress_bar,
)
from likely.data.ingest import IngestReport
from likely.data.sources import parse_column_map

app = typer.Typer(help="Ingest and inspect datasets.", no_args_is_help=True)

#: What a profiles dataset's shape is, and what it means for predictions in one sentence.
SHAPE_MEANING = {
    "snapshot": ("one row per profile; its updated_at says when the row was written",
                 "Attributes are known only as they are now; instances use the ones declared "
                 "in static_attributes for past training windows."),
    "history": ("several versions per profile, each valid from its updated_at",
                "Each version is used from its updated_at on."),
}


@app.command("ingest")
def ingest(
    kind: Annotated[str, typer.Argument(help="events or profiles")],
    paths: Annotated[list[str], typer.Argument(help="Files or glob patterns.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Dataset name.")],
    format: Annotated[str | None, typer.Option(
        "--format", "-f", help="parquet, csv, jsonl or xdm-json (default: from extension)")] = None,
    map: Annotated[list[str] | None, typer.Option(
        "--map", "-m", help="canonical=source column, repeatable.")] = None,
    on_error: Annotated[str, typer.Option(help="fail, or skip bad rows.")] = "fail",
    allow_duplicate_file: Annotated[bool, typer.Option(
        help="Ingest a file even if it was ingested before.")] = False,
    dedupe: Annotated[str, typer.Option(
        help="auto: drop rows whose event_id was already seen, if there is one, else keep every "
             "row; exact: drop identical rows; none: keep everything.")] = "auto",
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Add files to a dataset (created if new).

    Example: likely datasets ingest events 'exports/*.csv' --name web --map profile_id=cust_id
    """
    if kind not in ("events", "profiles"):
        raise typer.BadParameter(f"'{kind}' is not a dataset kind; use events or profiles.")
    ws = open_workspace(workspace, create=True)
    with progress_bar(not json) as progress:
        report = ws.ingest(kind, paths, name, format=format, column_map=parse_column_map(map or []),
                           on_error=on_error, allow_duplicate_file=allow_duplicate_file,
                           dedupe=dedupe, progress=progress)
    if json:
        return print_json(report.to_dict())
    console.print(
        f"Ingested [bold]{fmt_count(report.rows_ingested)}[/] rows into {report.kind} dataset "
        f"'[bold]{report.dataset}[/]' from {len(report.files)} file(s) in {report.seconds:.1f}s; "
        f"{_dropped(report)}, {fmt_count(report.rows_skipped)} bad row(s) skipped."
    )
    if report.exact_duplicates_kept:
        console.print(
            f"  kept {fmt_count(report.exact_duplicates_kept)} row(s) identical to another row "
            "(repeat orders look like this when there is no order id; --dedupe exact drops them)"
        )
    for p in report.problems:
        shown = ", ".join(f"row {r} {v!r}" for r, v in p["examples"])
        console.print(f"  [yellow]skipped[/] {p['rows']} row(s) of {p['file']} with {p['issue']} "
                      f"in '{p['column']}': {shown}")
    _print_quality(ws.dataset(report.dataset))


@app.command("list")
def list_(workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """List datasets with their size and time span.

    Example: likely datasets list --json
    """
    datasets = open_workspace(workspace).datasets()
    if json:
        return print_json([d.to_dict() for d in datasets])
    table = Table("name", "kind", "rows", "profiles", "first", "last", "days", "updated")
    for d in datasets:
        q = d.quality
        table.add_row(d.name, d.kind, fmt_count(q.get("rows")), fmt_count(q.get("profiles")),
                      _day(q.get("first")), _day(q.get("last")), str(q.get("days_of_history", "")),
                      d.updated_at[:19])
    console.print(table if datasets else "No datasets yet. Ingest one: likely datasets ingest")


@app.command("show")
def show(
    name: str, workspace: WorkspaceOption = None, json: JsonOption = False,
) -> None:
    """Show a dataset's data-quality report.

    Example: likely datasets show web
    """
    dataset = open_workspace(workspace).dataset(name)
    if json:
        return print_json(dataset.to_dict())
    _print_quality(dataset)


@app.command("delete")
def delete(
    name: str,
    force: Annotated[bool, typer.Option(help="Delete even if instances use it.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Delete a dataset's files and catalog entry.

    Example: likely datasets delete old-web --yes
    """
    ws = open_workspace(workspace)
    ws.dataset(name)
    confirm_or_abort(f"Delete dataset '{name}' and its files?", yes)
    stopped = ws.delete_dataset(name, force=force)
    console.print(f"Deleted dataset '{name}'.")
    if stopped:
        console.print(f"[yellow]These instances can no longer run:[/] {', '.join(stopped)}")


def _dropped(report: IngestReport) -> str:
    """How many rows were dropped as duplicates, and by what rule (the --dedupe mode)."""
    n = fmt_count(report.duplicates_dropped)
    if report.dedupe_applied == "event_id":
        return f"{n} row(s) dropped as repeated event_id (--dedupe {report.dedupe})"
    if report.dedupe_applied == "exact":
        return f"{n} exact duplicate row(s) dropped (--dedupe exact)"
    return f"no rows dropped as duplicates (--dedupe {report.dedupe})"


def _print_quality(dataset) -> None:
    q = dataset.quality
    summary = Table(title=f"{dataset.kind} dataset '{dataset.name}'", show_header=False)
    for label, key in [("rows", "rows"), ("profiles", "profiles"), ("first", "first"),
                       ("last", "last"), ("days of history", "days_of_history"),
                       ("days with no events", "gap_days"),
                       ("freshness (days since last)", "freshness_days"),
                       ("exact duplicate rows", "exact_duplicate_rows"),
                       ("rows repeating an event_id", "event_id_duplicates"),
                       ("profiles with several rows", "profiles_with_several_rows"),
                       ("profiles with several versions", "versioned_profiles")]:
        if key in q:
            summary.add_row(label, fmt_count(q[key]))
    console.print(summary)
    if q.get("shape") in SHAPE_MEANING:
        what, meaning = SHAPE_MEANING[q["shape"]]
        console.print(f"Shape: [bold]{q['shape']}[/] ({what}). {meaning}")
    if q.get("gaps"):
        gaps = ", ".join(f"{g['from']}..{g['to']}" for g in q["gaps"][:5])
        console.print(f"Gaps: {gaps}{' ...' if len(q['gaps']) > 5 else ''}")
    if q.get("event_types"):
        types = Table("event type", "events", title="Events per type")
        for event_type, n in q["event_types"].items():
            types.add_row(event_type, fmt_count(n))
        console.print(types)
    columns = Table("column", "type", "complete %", title="Columns")
    types_by_name = {c["name"]: c["type"] for c in dataset.columns}
    for column, pct in q.get("completeness", {}).items():
        columns.add_row(column, types_by_name.get(column, ""), f"{pct:.1f}")
    console.print(columns)


def _day(value: str | None) -> str:
    return (value or "")[:10]


_ = Path  # typer resolves annotations at runtime
