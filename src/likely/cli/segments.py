"""`likely segments ...` and `likely destinations ...`: audiences from scores, and where they go."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from likely.cli.common import (
    JsonOption,
    WorkspaceOption,
    confirm_or_abort,
    console,
    fmt_count,
    fmt_value,
    open_workspace,
    print_json,
    progress_bar,
)
from likely.config import read_yaml_mapping
from likely.errors import ConfigError, LikelyError

app = typer.Typer(help="Segments: audiences from scores, reasons and profile attributes.",
                  no_args_is_help=True)
destinations_app = typer.Typer(help="Destinations: where segments are activated (folder, "
                                    "webhook, table).", no_args_is_help=True)

AsOfOption = Annotated[str | None, typer.Option(
    "--as-of", help="Members at the newest score date on or before this day (YYYY-MM-DD).")]


@app.command("create")
def create(
    name: Annotated[str | None, typer.Option(help="Segment name.")] = None,
    rule: Annotated[str | None, typer.Option(help="Rule, e.g. \"buyers.bucket = 'High'\".")]
    = None,
    description: Annotated[str, typer.Option(help="What the audience is for.")] = "",
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Segment YAML: name, rule, "
                                              "description, published.")] = None,
    publish: Annotated[bool, typer.Option(
        "--publish/--no-publish", help="Keep its membership after every run.")] = True,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Save a segment from a rule (or a YAML file).

    Example: likely segments create --name "gold buyers"
             --rule "buyers.bucket = 'High' AND loyalty_tier IN ('gold')"
    """
    spec = _segment_file(file) if file else {}
    name, rule = name or spec.get("name"), rule or spec.get("rule")
    if not name or not rule:
        raise ConfigError("A segment needs --name and --rule (or a file with both).")
    ws = open_workspace(workspace)
    segment = ws.create_segment(name, rule, description=description or spec.get(
        "description", ""), published=bool(spec.get("published", publish)))
    if json:
        return print_json(ws.show_segment(segment.name, sample=0))
    _print_show(ws.show_segment(segment.name, sample=0))


@app.command("list")
def list_(
    hidden: Annotated[bool, typer.Option("--hidden", help="Include hidden segments.")] = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """List segments with their size at the latest scores."""
    ws = open_workspace(workspace)
    rows = []
    for segment in ws.segments(hidden=hidden):
        row = segment.to_dict()
        try:
            row["size"] = ws.segment_size(segment.id)
        except LikelyError as exc:  # a segment that cannot be sized says why
            row["size"] = {"profiles": None, "problem": exc.message}
        rows.append(row)
    if json:
        return print_json(rows)
    table = Table("name", "profiles", "score date", "kind", "rule")
    for row in rows:
        size = row["size"]
        kind = ("automatic" if row["automatic"] else "saved") + (
            ", published" if row["published"] else "") + (", hidden" if row["hidden"] else "")
        table.add_row(row["name"], fmt_count(size.get("profiles")) if size.get("profiles")
                      is not None else size.get("problem", "-"),
                      fmt_value(size.get("score_date")), kind, row["rule"])
    console.print(table)


@app.command("show")
def show(name: str, workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """A segment: rule in words, size, size per run, who entered and left since the last run."""
    data = open_workspace(workspace).show_segment(name)
    if json:
        return print_json(data)
    _print_show(data)


@app.command("preview")
def preview(
    rule: str,
    sample: Annotated[int, typer.Option(help="Members to show.")] = 10,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Size and a sample of a rule at the latest scores, without saving it.

    Example: likely segments preview "'cart adds' IN buyers.reasons"
    """
    data = open_workspace(workspace).preview_segment(rule, sample=sample)
    if json:
        return print_json(data)
    console.print(f"[bold]{fmt_count(data['profiles'])}[/] profiles at {data['score_date']}: "
                  f"{data['in_words']}", highlight=False)
    _print_rows(data["sample"])


@app.command("edit")
def edit(
    name: str,
    new_name: Annotated[str | None, typer.Option("--name", help="New name.")] = None,
    rule: Annotated[str | None, typer.Option(help="New rule (restarts its history).")] = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    publish: Annotated[bool | None, typer.Option("--publish/--no-publish",
                                                 help="Keep its membership after runs.")] = None,
    hide: Annotated[bool | None, typer.Option("--hide/--unhide",
                                              help="Hide it from lists.")] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Change a segment's name, rule, description, publishing or visibility."""
    ws = open_workspace(workspace)
    segment = ws.edit_segment(name, new_name=new_name, rule=rule, description=description,
                              published=publish, hidden=hide)
    if json:
        return print_json(segment.to_dict())
    console.print(f"Segment '[bold]{segment.name}[/]' saved.", highlight=False)


@app.command("delete")
def delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Delete a segment and its membership history (the activation log stays)."""
    confirm_or_abort(f"Delete segment '{name}' and its membership history?", yes)
    segment = open_workspace(workspace).delete_segment(name)
    console.print(f"Deleted segment '{segment.name}'.", highlight=False)


@app.command("publish")
def publish(name: str, workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """Materialise the membership now, and after every run of its instances from now on."""
    data = open_workspace(workspace).publish_segment(name)
    if json:
        return print_json(data)
    console.print(f"Published {fmt_count(data['profiles'])} members at {data['score_date']}.")


@app.command("members")
def members(
    name: str,
    as_of: AsOfOption = None,
    limit: Annotated[int, typer.Option(help="Rows to print (0: all).")] = 50,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Who is in the segment now, or at a past score date."""
    table = open_workspace(workspace).segment_members(name, as_of=_date(as_of))
    rows = (table.limit(limit) if limit else table).to_pyarrow().to_pylist()
    if json:
        return print_json(rows)
    _print_rows(rows)


@app.command("export")
def export(
    name: str,
    out: Annotated[Path, typer.Option(help="File to write.")],
    format: Annotated[str, typer.Option(help="csv, parquet or jsonl.")] = "csv",
    as_of: AsOfOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Write the members (ids, scores, the attributes the rule reads) to a file."""
    path = open_workspace(workspace).export_segment(name, out, format=format,
                                                    as_of=_date(as_of))
    console.print(f"Wrote {path}")


@app.command("activate")
def activate(
    name: str,
    destination: Annotated[str, typer.Option(help="A destination's name.")],
    mode: Annotated[str | None, typer.Option(
        help="full or delta (folder, webhook); replace or delta (table). Default: the "
             "destination's.")] = None,
    as_of: AsOfOption = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Send the members to a destination; the outcome is logged.

    Example: likely segments activate "gold buyers" --destination crm-drop
    """
    with progress_bar(not json) as bar:
        done = open_workspace(workspace).activate_segment(
            name, destination, mode=mode, as_of=_date(as_of),
            progress=lambda sent, total: bar("sending", sent, total))
    if json:
        return print_json(done.to_dict())
    colour = {"success": "green", "partial": "yellow"}.get(done.status, "red")
    console.print(f"[{colour}]{done.status}[/]: {fmt_count(done.sent)} rows of "
                  f"{fmt_count(done.profiles)} members sent to '{done.destination}' "
                  f"({done.mode}; entered {fmt_count(done.entered)}, left "
                  f"{fmt_count(done.exited)}).", highlight=False)
    if done.error:
        console.print(done.error, highlight=False)
    if done.status != "success":
        raise typer.Exit(1)


@app.command("activations")
def activations(
    name: Annotated[str | None, typer.Argument(help="A segment (default: all).")] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """The activation log: when, where, how many, outcome."""
    done = open_workspace(workspace).activations(name)
    if json:
        return print_json([a.to_dict() for a in done])
    table = Table("started (UTC)", "segment", "destination", "mode", "status", "sent",
                  "entered", "left", "error")
    for a in done:
        table.add_row(a.started_at[:19].replace("T", " "), a.segment_name, a.destination,
                      a.mode, a.status, fmt_count(a.sent), fmt_count(a.entered),
                      fmt_count(a.exited), a.error or "")
    console.print(table)


# -- destinations ---------------------------------------------------------------------------------


@destinations_app.command("add")
def add_destination(
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Destination YAML: name, "
                                              "kind and its settings.")] = None,
    name: Annotated[str | None, typer.Option(help="Name.")] = None,
    kind: Annotated[str | None, typer.Option(help="folder, webhook or table.")] = None,
    setting: Annotated[list[str] | None, typer.Option(
        "--set", help="KEY=VALUE setting, repeatable (path, format, url, secret_env, engine, "
                      "table, url_env, mode, batch_size…).")] = None,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Save a destination. Secrets are never stored: name the environment variable.

    Example: likely destinations add --name crm-drop --kind folder --set path=/srv/drops
             likely destinations add --name crm-hook --kind webhook
               --set url=https://crm.example/hook --set secret_env=CRM_HOOK_SECRET
    """
    from likely.activation import parse_destination_file

    if file is not None:
        name, kind, config = parse_destination_file(file)
    else:
        config = dict(_setting(s) for s in setting or [])
    if not name or not kind:
        raise ConfigError("A destination needs --name and --kind (or a file with both).")
    destination = open_workspace(workspace).add_destination(name, kind, config)
    if json:
        return print_json(destination.to_dict())
    console.print(f"Added {destination.kind} destination '[bold]{destination.name}[/]'.",
                  highlight=False)


@destinations_app.command("list")
def list_destinations(workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """List destinations and their settings (secrets are environment variable names)."""
    found = open_workspace(workspace).destinations()
    if json:
        return print_json([d.to_dict() for d in found])
    table = Table("name", "kind", "settings")
    for d in found:
        table.add_row(d.name, d.kind, ", ".join(f"{k}={v}" for k, v in d.config.items()))
    console.print(table)


@destinations_app.command("remove")
def remove_destination(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Remove a destination (its activation log stays)."""
    confirm_or_abort(f"Remove destination '{name}'?", yes)
    removed = open_workspace(workspace).remove_destination(name)
    console.print(f"Removed destination '{removed.name}'.", highlight=False)


# -- printing -------------------------------------------------------------------------------------


def _print_show(data: dict[str, Any]) -> None:
    console.print(f"[bold]{data['name']}[/]" + (" (automatic)" if data["automatic"] else ""),
                  highlight=False)
    if data["description"]:
        console.print(data["description"], highlight=False)
    console.print(f"Rule: {data['rule']}\n  in words: {data['in_words']}", highlight=False)
    if data["profiles"] is None:
        console.print("No scores yet for its instances.")
        return
    console.print(f"Size: [bold]{fmt_count(data['profiles'])}[/] at {data['score_date']}"
                  + (f"; since the previous run {fmt_count(data['entered'])} entered, "
                     f"{fmt_count(data['left'])} left" if data["entered"] is not None else ""),
                  highlight=False)
    table = Table("score date", "profiles", "entered", "left")
    for row in data["history"]:
        table.add_row(row["score_date"], fmt_count(row["profiles"]),
                      fmt_value(row["entered"]), fmt_value(row["left"]))
    console.print(table)
    if data.get("sample"):
        _print_rows(data["sample"])


def _print_rows(rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("(no members)")
        return
    table = Table(*rows[0].keys())
    for row in rows:
        table.add_row(*[fmt_value(round(v, 4) if isinstance(v, float) else v)
                        for v in row.values()])
    console.print(table)


def _segment_file(path: Path) -> dict[str, Any]:
    data = read_yaml_mapping(path, "Segment", "'name: ...', 'rule: ...'")
    unknown = set(data) - {"name", "rule", "description", "published"}
    if unknown:
        raise ConfigError(f"Segment file '{path}': unknown key(s) {', '.join(sorted(unknown))}. "
                          "Keys: name, rule, description, published.")
    return data


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"Setting '{text}' is not KEY=VALUE.")
    return key.strip(), int(value) if value.strip().isdigit() else value


def _date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--as-of '{text}' is not a date (YYYY-MM-DD).") from None
