"""`likely instances ...`: create, list, show, edit, clone, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from likely.cli.common import (
    JsonOption,
    WorkspaceOption,
    confirm_or_abort,
    console,
    open_workspace,
    print_json,
)
from likely.config import load_instance_config, parse_instance_config

app = typer.Typer(help="Prediction instances: the questions asked of the data.",
                  no_args_is_help=True)


@app.command("create")
def create(
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Instance YAML.")] = None,
    name: Annotated[str | None, typer.Option(help="Name (simple case, no file).")] = None,
    events: Annotated[str | None, typer.Option(help="Events dataset (simple case).")] = None,
    profiles: Annotated[str | None, typer.Option(help="Profiles dataset (simple case).")] = None,
    goal: Annotated[list[str] | None, typer.Option(help="Goal condition, repeatable.")] = None,
    window: Annotated[int, typer.Option(help="Outcome window in days.")] = 30,
    churn: Annotated[bool, typer.Option(help="Goal: the event will NOT occur.")] = False,
    workspace: WorkspaceOption = None,
    json: JsonOption = False,
) -> None:
    """Create an instance from a YAML file, or from flags for the simple case.

    Example: likely instances create --name buyers --events web
             --goal "event_type = 'commerce.purchases'" --window 30
    """
    if file is not None:
        config = load_instance_config(file)
    else:
        config = parse_instance_config({
            "name": name, "type": "churn" if churn else "conversion",
            "datasets": {"events": events, "profiles": profiles},
            "goal": {"conditions": goal or [], "window_days": window, "occurs": not churn},
        }, source="the command-line flags")
    instance = open_workspace(workspace).create_instance(config)
    if json:
        return print_json(instance.to_dict())
    console.print(f"Created instance '[bold]{instance.name}[/]' ({instance.id}). "
                  f"Run it: likely run {instance.name}")


@app.command("list")
def list_(workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """List instances with their last run.

    Example: likely instances list
    """
    ws = open_workspace(workspace)
    rows = []
    for instance in ws.instances():
        runs = ws.runs(instance.name)
        last = runs[0] if runs else None
        rows.append({**instance.to_dict(), "last_run": last.to_dict() if last else None})
    if json:
        return print_json(rows)
    table = Table("name", "type", "goal", "window", "last run", "status", "scored")
    for r in rows:
        cfg, last = r["config"], r["last_run"] or {}
        table.add_row(r["name"], cfg["type"], " / ".join(cfg["goal"]["conditions"]),
                      f"{cfg['goal']['window_days']}d", last.get("as_of", "-"),
                      last.get("status", "never run"),
                      f"{last.get('counts', {}).get('scored_profiles', 0):,}")
    console.print(table if rows else "No instances yet: likely instances create -f FILE")


@app.command("show")
def show(name: str, workspace: WorkspaceOption = None, json: JsonOption = False) -> None:
    """Show an instance's configuration.

    Example: likely instances show buyers
    """
    instance = open_workspace(workspace).instance(name)
    if json:
        return print_json(instance.to_dict())
    config = instance.config
    console.print(f"[bold]{instance.name}[/] ({instance.id}), created {instance.created_at}")
    console.print(f"[bold]Goal:[/] {config.goal_in_words()}", highlight=False)
    console.print(f"[bold]Who:[/] {config.population.in_words()}", highlight=False)
    console.print(f"[bold]Runs:[/] {_schedule_words(config.schedule)}; retrains every "
                  f"{config.retrain_days} days or on drift (PSI > {config.drift_threshold})",
                  highlight=False)
    console.print(yaml.safe_dump(config.to_dict(), sort_keys=False), highlight=False)


def _schedule_words(text: str) -> str:
    from datetime import UTC, datetime

    from likely.schedules import describe

    return describe(text, datetime.now(UTC))


@app.command("edit")
def edit(
    name: str,
    new_name: Annotated[str | None, typer.Option("--name")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    schedule: Annotated[str | None, typer.Option(
        help="manual, daily, weekly or monthly, with 'on DAY', 'at HH:MM' and a time zone, "
             "e.g. 'weekly on monday at 06:00 Europe/Berlin'")] = None,
    retrain_days: Annotated[int | None, typer.Option(
        help="Retrain when the model is this many days older than the score date.")] = None,
    drift_threshold: Annotated[float | None, typer.Option(
        help="PSI above which a run is marked drift and the next one retrains.")] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Change an instance's name, description, schedule or retraining (anything else: clone).

    Example: likely instances edit buyers --schedule "daily at 06:00 Europe/Paris"
    """
    changes = {k: v for k, v in {"name": new_name, "description": description,
                                 "schedule": schedule, "retrain_days": retrain_days,
                                 "drift_threshold": drift_threshold}.items() if v is not None}
    instance = open_workspace(workspace).edit_instance(name, **changes)
    console.print(f"Updated instance '{instance.name}'.")


@app.command("clone")
def clone(
    name: str,
    new_name: str,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="YAML of changed keys.")]
    = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Copy an instance under a new name, changing any settings.

    Example: likely instances clone buyers buyers-60d -f window60.yaml
    """
    overrides = yaml.safe_load(file.read_text()) if file else {}
    instance = open_workspace(workspace).clone_instance(name, new_name, **(overrides or {}))
    console.print(f"Created instance '{instance.name}' from '{name}'.")


@app.command("delete")
def delete(
    name: str,
    keep_outputs: Annotated[bool, typer.Option(help="Keep the score files.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Delete an instance, its runs and (unless --keep-outputs) its outputs.

    Example: likely instances delete buyers --yes
    """
    ws = open_workspace(workspace)
    ws.instance(name)
    confirm_or_abort(f"Delete instance '{name}' and its runs?", yes)
    ws.delete_instance(name, keep_outputs=keep_outputs)
    console.print(f"Deleted instance '{name}'.")
