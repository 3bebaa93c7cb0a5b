"""`likely serve`: the dashboard over a workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from likely.cli.common import WorkspaceOption, console


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on. Anything but loopback needs "
                                           "LIKELY_TOKEN.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    schedules: Annotated[bool, typer.Option(
        "--schedules/--no-schedules", help="Run scheduled instances when they are due.")]
    = True,
    workspace: WorkspaceOption = None,
) -> None:
    """Serve the dashboard: scores, reasons, model quality and segments in a browser.

    Example: likely serve --port 8000   (then open http://127.0.0.1:8000; Ctrl-C stops it)
    """
    import uvicorn

    from likely.web import create_app
    from likely.web.security import server_token

    token = server_token(host)
    app = create_app(workspace, token=token)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"likely dashboard for [bold]{app.state.workspace_path}[/] at "
                  f"[bold]http://{shown}:{port}[/]" + (" (token required)" if token else "")
                  + "  ·  Ctrl-C stops it")
    if schedules:
        from likely.web.jobs import Scheduler

        Scheduler(app.state.jobs).start()
        console.print("Scheduled instances run when due (checked every 30 s; --no-schedules "
                      "turns this off).")
    uvicorn.run(app, host=host, port=port, log_level="warning")
