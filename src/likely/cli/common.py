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


def confirm_or_abort(question: str, yes: bool) -> None:
    """Ask before destroying something, unless --yes was given."""
    if not yes:
        typer.confirm(question, abort=True)
