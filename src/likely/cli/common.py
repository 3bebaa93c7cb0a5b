"""What every CLI command shares: the workspace option, JSON output, progress bars, errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperCommand, TyperGroup

from likely.workspace import ENV_VAR, Workspace

console = Console()
err_console = Console(stderr=True)

WorkspaceOption = Annotated[
    Path | None,
    typer.Option("--workspace", "-w", envvar=ENV_VAR, show_default="./likely-workspace",
                 help="Workspace folder."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def open_workspace(path: Path | None, *, create: bool = False) -> Workspace:
    return Workspace.create(path) if create else Workspace(path)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A callback ``(what, done, total)`` that draws one Rich bar; silent for --json."""
    if not enabled or not console.is_terminal:
        yield lambda what, done, total: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=err_console, transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def update(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total or None)

        yield update


def fmt_count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def fmt_value(value: Any) -> str:
    """A profile's value as a cell: ``-`` when missing, as in every table."""
    return "-" if value is None else str(value)


def fmt_buckets(counts: dict[str, Any]) -> str:
    """``Low 1,234 · Medium 567 · High 89``."""
    return " · ".join(f"{bucket} {fmt_count(n)}" for bucket, n in counts.items()) or "-"


class _PlainHelp:
    """Help that reads as usual: an argument is ``NAME`` (``[RUN_ID]`` when optional) and a flag
    shows no value type.

    Typer 0.29 (its vendored Click, typer PR #1863) prints arguments as ``{name}`` and a type
    after every option, flags included (``--json <bool>``), as if flags took a value. An explicit
    metavar is public Typer/Click API in every version, so setting one per parameter fixes both.
    """

    def get_params(self, ctx: Any) -> list[Any]:
        # every parameter, including those Typer adds after construction and the help flag
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            _plain_metavar(param)
        return params


class PlainCommand(_PlainHelp, TyperCommand):
    """A command whose usage line reads ``likely runs show [OPTIONS] NAME [RUN_ID]``."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_usage_name(param))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


class PlainGroup(_PlainHelp, TyperGroup):
    """A command group whose ``--help`` flag shows no value type."""


def plain_help(app: typer.Typer) -> None:
    """Make every command and sub-group of ``app`` (recursively) print plain help."""
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):
            command.cls = PlainCommand
    for group in app.registered_groups:
        if not group.cls or group.cls is TyperGroup:
            group.cls = PlainGroup
        if group.typer_instance is not None:
            plain_help(group.typer_instance)


def _plain_metavar(param: Any) -> None:
    if param.metavar is not None:
        return
    if param.param_type_name == "argument":
        param.metavar = param.name.upper()
    elif getattr(param, "is_flag", False):
        param.metavar = ""


def _usage_name(param: Any) -> str:
    name = param.metavar or param.name.upper()
    if param.nargs != 1:
        name += "..."
    return name if param.required else f"[{name}]"


def confirm_or_abort(question: str, yes: bool) -> None:
    """Ask before destroying something, unless --yes was given."""
    if not yes:
        typer.confirm(question, abort=True)
