"""``outpost protocol``: tools for the wire contract."""

from pathlib import Path
from typing import Annotated

import typer

from protocol.schema import write_schemas

app = typer.Typer(help="The wire contract shared by gateways, the fleet and the simulators.", no_args_is_help=True)


@app.command("schema")
def schema(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the JSON Schema files into.")] = Path(
        "docs/protocol"
    ),
) -> None:
    """Write the JSON Schema of every payload (MQTT messages and governance cases)."""
    for path in write_schemas(out):
        typer.echo(path)
