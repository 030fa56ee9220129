"""The command line of the benchmark harness: ``python -m bench GROUP [--quick]``."""

import logging
import sys
from typing import Annotated

import typer

from bench.harness import groups, profile_for, run_group, write_figures

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure one group of Outpost's performance figures; print one JSON object per figure per line.",
)


def _known_group(name: str) -> str:
    known = groups()
    if name not in known:
        listing = ", ".join(known)
        raise typer.BadParameter(f"unknown group {name!r}; the groups are: {listing}")
    return name


def _group_help() -> str:
    return "The group to measure: " + "; ".join(f"{g.name} ({g.description})" for g in groups().values())


@app.command()
def main(
    group: Annotated[str, typer.Argument(help=_group_help(), callback=_known_group, show_default=False)],
    quick: Annotated[
        bool, typer.Option("--quick", help="Fewer, shorter runs (well under a minute); noisier figures.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress on stderr.")] = False,
) -> None:
    """Each line: figure, value and baseline (medians of runs in this process), unit, better, goal, ratio, runs."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr)
    write_figures(run_group(group, profile_for(quick=quick)), sys.stdout)


if __name__ == "__main__":
    app()
