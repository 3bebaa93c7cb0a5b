"""The `likely` command. Each sub-command module wraps library calls; errors are turned into a
one-line message and a non-zero exit code here, once."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from likely.cli import analytics, datasets, demo, instances, runs, segments, serve
from likely.cli.common import PlainGroup, console, err_console, plain_help
from likely.errors import LikelyError

app = typer.Typer(
    name="likely",
    help="likely: who will likely buy or churn, why, and what they are worth.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=PlainGroup,
)
app.add_typer(datasets.app, name="datasets")
app.add_typer(instances.app, name="instances")
app.add_typer(runs.runs_app, name="runs")
app.add_typer(segments.app, name="segments")
app.add_typer(segments.destinations_app, name="destinations")
app.add_typer(analytics.app, name="analytics")
app.command("demo-data")(demo.demo_data)
app.command("run")(runs.run)
app.command("backfill")(runs.backfill)
app.command("scores")(runs.scores)
app.command("explain")(runs.explain)
app.command("factors")(runs.factors)
app.command("export")(runs.export)
app.command("serve")(serve.serve)
app.command("target")(runs.target)


@app.command("init")
def init(path: Annotated[Path | None, typer.Argument(help="Folder (default ./likely-workspace)")]
         = None) -> None:
    """Create a workspace folder.

    Example: likely init ./my-workspace
    """
    from likely.workspace import Workspace

    ws = Workspace.create(path)
    console.print(f"Workspace ready at [bold]{ws.path}[/]")


plain_help(app)  # after every command is registered: NAME, not {name}; flags without <bool>


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a LikelyError becomes one red line on stderr and its exit code."""
    try:
        app(args=argv, prog_name="likely")
    except SystemExit as exc:  # Typer exits after every command, usage errors included
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except LikelyError as exc:
        err_console.print(f"[red]Error:[/] {exc.message}", highlight=False, soft_wrap=True)
        return exc.exit_code
    return 0


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
