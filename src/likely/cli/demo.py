"""`likely demo-data`: write the deterministic demo dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from likely.cli.common import JsonOption, console, print_json, progress_bar


def demo_data(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")] = Path(
        "demo-data"),
    profiles: Annotated[int, typer.Option(help="Number of customers.")] = 10_000,
    days: Annotated[int, typer.Option(help="Days of history.")] = 180,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 0,
    json: JsonOption = False,
) -> None:
    """Generate demo retail/web/email/app events with documented ground truth.

    Example: likely demo-data --profiles 20000 --days 365 --out demo-data
    """
    from likely.data.demo import generate

    with progress_bar(not json) as progress:
        result = generate(out, profiles=profiles, days=days, seed=seed,
                          progress=lambda done, total: progress("simulating days", done, total))
    if json:
        return print_json({k: str(v) for k, v in result.__dict__.items()})
    console.print(
        f"Wrote {result.events:,} events for {result.profiles:,} profiles "
        f"({result.start}..{result.end}) to [bold]{out}[/]:\n"
        f"  events    {result.events_path}\n  profiles  {result.profiles_path}\n"
        f"  oracle    {result.oracle_path}\n  truth     {result.ground_truth_path}"
    )
