"""The ``outpost`` command: one Typer app that mounts each part's commands."""
