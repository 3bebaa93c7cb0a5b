"""`likely analytics ...`: how an instance's scores changed over its runs, as readable tables."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from likely.cli.common import (
    JsonOption,
    WorkspaceOption,
    console,
    fmt_count,
    open_workspace,
    print_json,
)

app = typer.Typer(help="Analytics over an instance's score history: trend, flow, overlap, "
                       "distribution, reasons, cohorts, outcomes.", no_args_is_help=True)

SegmentOption = Annotated[str | None, typer.Option(
    "--segment", help="Only the members of this segment (at its newest score date).")]
BucketOption = Annotated[str | None, typer.Option(
    "--bucket", help="Only profiles in this bucket (High, Medium, Low) at each score date.")]
WhereOption = Annotated[str | None, typer.Option(
    "--where", help="Only profiles whose attributes meet this condition at each score date, "
                    "e.g. \"loyalty_tier = 'gold'\".")]
RunsOption = Annotated[list[str] | None, typer.Option(
    "--runs", help="Run ids or score dates (repeat, or comma-separated; 'all' for every run).")]
BUCKETS = ("High", "Medium", "Low")


def _analyse(workspace, name: str, kind: str, segment, bucket, where, runs, **options) -> dict:
    return open_workspace(workspace).analytics(name, kind, segment=segment, bucket=bucket,
                                               where=where, runs=runs or None, **options)


def _heading(data: dict[str, Any], what: str) -> None:
    console.print(f"[bold]{data['instance']}[/]: {what} — {data['filter']['in_words']}",
                  highlight=False)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


@app.command("trend")
def trend(name: str, segment: SegmentOption = None, bucket: BucketOption = None,
          where: WhereOption = None, runs: RunsOption = None, workspace: WorkspaceOption = None,
          json: JsonOption = False) -> None:
    """Profiles per bucket and mean score per score date.

    Example: likely analytics trend buyers --where "loyalty_tier = 'gold'"
    """
    data = _analyse(workspace, name, "trend", segment, bucket, where, runs)
    if json:
        return print_json(data)
    _heading(data, "buckets per score date")
    table = Table("score date", "profiles", *BUCKETS, "mean score", "mean probability")
    for d in data["dates"]:
        table.add_row(d["score_date"], fmt_count(d["profiles"]),
                      *[fmt_count(d["buckets"][b]) for b in BUCKETS], _num(d["mean_score"]),
                      _num(d["mean_probability"], 3))
    console.print(table)


@app.command("flow")
def flow(name: str, segment: SegmentOption = None, bucket: BucketOption = None,
         where: WhereOption = None, runs: RunsOption = None, workspace: WorkspaceOption = None,
         json: JsonOption = False) -> None:
    """Bucket transitions between consecutive runs (default: the newest two), with profiles
    that entered or left the scored population ("Not scored").

    Example: likely analytics flow buyers --runs 2025-06-15,2025-07-19
    """
    data = _analyse(workspace, name, "flow", segment, bucket, where, runs)
    if json:
        return print_json(data)
    _heading(data, "bucket flow")
    states = data["states"]
    for pair in data["pairs"]:
        before, after = pair["from"]["score_date"], pair["to"]["score_date"]
        cells = {(t["from"], t["to"]): t["profiles"] for t in data["transitions"]
                 if t["from_date"] == before and t["to_date"] == after}
        table = Table(f"{before} ↓ / {after} →", *states,
                      title=f"{fmt_count(pair['stayed'])} stayed, {fmt_count(pair['up'])} up, "
                            f"{fmt_count(pair['down'])} down, {fmt_count(pair['entered'])} "
                            f"entered, {fmt_count(pair['left'])} left")
        for f in states:
            table.add_row(f, *[fmt_count(cells.get((f, t), 0)) for t in states])
        console.print(table)


@app.command("overlap")
def overlap(name: str, segment: SegmentOption = None, bucket: BucketOption = None,
            where: WhereOption = None, runs: RunsOption = None,
            workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """Who is in a bucket (--bucket, default High) in each of 2+ runs (default: the newest 3):
    every combination of runs counted.

    Example: likely analytics overlap buyers --bucket High --runs all
    """
    data = _analyse(workspace, name, "overlap", segment, bucket, where, runs)
    if json:
        return print_json(data)
    _heading(data, f"in {data['bucket']} across runs")
    dates = [r["score_date"] for r in data["runs"]]
    table = Table(*dates, "profiles", title=f"{fmt_count(data['union'])} in {data['bucket']} "
                                            f"at least once, {fmt_count(data['in_all'])} in all")
    for region in data["regions"]:
        table.add_row(*["●" if m else "" for m in region["mask"]], fmt_count(region["profiles"]))
    table.add_row(*[fmt_count(n) for n in data["sizes"]], "(each run)", style="dim")
    console.print(table)


@app.command("distribution")
def distribution(name: str, segment: SegmentOption = None, bucket: BucketOption = None,
                 where: WhereOption = None, runs: RunsOption = None,
                 bins: Annotated[int, typer.Option(help="Score bins (2–100).")] = 10,
                 workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """Score histograms per run, side by side (default: the newest 4 runs).

    Example: likely analytics distribution buyers --bins 20 --runs all
    """
    data = _analyse(workspace, name, "distribution", segment, bucket, where, runs, bins=bins)
    if json:
        return print_json(data)
    _heading(data, "profiles per score")
    edges = data["edges"]
    hist = data["histograms"]
    table = Table("score", *[h["score_date"] for h in hist])
    for i in range(len(edges) - 1):
        close = "]" if i == len(edges) - 2 else ")"
        table.add_row(f"[{edges[i]:g}, {edges[i + 1]:g}{close}",
                      *[fmt_count(h["counts"][i]) for h in hist])
    table.add_row("all", *[fmt_count(h["profiles"]) for h in hist], style="bold")
    console.print(table)


@app.command("reasons")
def reasons(name: str, segment: SegmentOption = None, bucket: BucketOption = None,
            where: WhereOption = None, runs: RunsOption = None,
            top: Annotated[int, typer.Option(help="Reasons to list.")] = 10,
            workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """Top reason × bucket for one run (default: the newest): each bucket's share per reason.

    Example: likely analytics reasons buyers --segment "gold top fifth"
    """
    data = _analyse(workspace, name, "reasons", segment, bucket, where, runs, top=top)
    if json:
        return print_json(data)
    _heading(data, f"top reasons at {data['run']['score_date']}")
    table = Table("top reason", "profiles",
                  *[f"{b} ({fmt_count(data['buckets'][b])})" for b in BUCKETS])
    for line in data["reasons"]:
        table.add_row(line["reason"], fmt_count(line["profiles"]),
                      *[_pct(line["by_bucket"][b]["share_pct"]) for b in BUCKETS])
    console.print(table)


@app.command("cohorts")
def cohorts(name: str,
            attribute: Annotated[str, typer.Option(
                "--attribute", "-a", help="Profile attribute to group by (a date attribute is "
                                          "grouped by month).")],
            segment: SegmentOption = None, bucket: BucketOption = None,
            where: WhereOption = None, runs: RunsOption = None,
            top: Annotated[int, typer.Option(help="Values (or newest months) kept apart.")]
            = 12,
            workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """Mean probability and High share per attribute value (or signup month) per score date.

    Example: likely analytics cohorts buyers --attribute loyalty_tier
    """
    data = _analyse(workspace, name, "cohorts", segment, bucket, where, runs,
                    attribute=attribute, top=top)
    if json:
        return print_json(data)
    by = "month of " if data["by"] == "month" else ""
    _heading(data, f"cohorts by {by}{data['attribute']} (mean probability · High share)")
    table = Table(data["attribute"], *[r["score_date"] for r in data["runs"]])
    for series in data["series"]:
        table.add_row(series["value"], *[
            f"{_num(p['mean_probability'], 3)} · {_pct(p['shares_pct']['High'])}"
            if p["profiles"] else "-" for p in series["points"]])
    console.print(table)


@app.command("outcomes")
def outcomes(name: str, runs: RunsOption = None, workspace: WorkspaceOption = None,
             json: JsonOption = False) -> None:
    """Expected against actual goal rate per bucket, and AUC and calibration error, of every run
    whose outcome window has passed.

    Example: likely analytics outcomes buyers
    """
    data = _analyse(workspace, name, "outcomes", None, None, None, runs)
    if json:
        return print_json(data)
    console.print(f"[bold]{data['instance']}[/]: outcomes ({data['window_days']}-day window)",
                  highlight=False)
    table = Table("score date", "profiles", "expected", "actual", "AUC", "ECE",
                  *[f"{b} exp → act" for b in BUCKETS])
    for run in data["measured"]:
        per = {b["bucket"]: b for b in run["buckets"]}
        table.add_row(run["score_date"], fmt_count(run["profiles"]),
                      _pct(_times100(run["expected_rate"])), _pct(_times100(run["actual_rate"])),
                      _num(run["auc"], 3), _num(run["ece"], 3),
                      *[f"{_pct(_rate(per, b, 'expected_rate'))} → "
                        f"{_pct(_rate(per, b, 'actual_rate'))}" for b in BUCKETS])
    console.print(table)
    for p in data["pending"]:
        console.print(f"scores of {p['score_date']}: measurable after {p['window_closes']}",
                      style="dim", highlight=False)


def _rate(per: dict, bucket: str, key: str) -> float | None:
    return _times100((per.get(bucket) or {}).get(key))


def _times100(value: float | None) -> float | None:
    return None if value is None else 100 * value
