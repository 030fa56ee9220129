"""The ``outpost`` command line. Each part's commands load their dependencies only when run,
so a gateway install (``outpost[edge]``) never imports the fleet's web stack."""

from enum import StrEnum
from typing import Annotated

import typer

from edge.cli import app as gateway_app
from fleet.cli import app as fleet_app
from outpost_cli.logs import configure_logging
from outpost_cli.protocol_cmd import app as protocol_app
from simulators.cli import app as simulators_app
from simulators.cli import demo


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


app = typer.Typer(
    name="outpost",
    help="Outpost: edge gateways and the fleet manager for village public-safety networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    log_level: Annotated[LogLevel, typer.Option("--log-level", help="How much to log (to stderr).")] = LogLevel.INFO,
) -> None:
    configure_logging(log_level.value)


app.command("demo")(demo)
app.add_typer(gateway_app, name="gateway")
app.add_typer(fleet_app, name="fleet")
app.add_typer(simulators_app, name="sim")
app.add_typer(protocol_app, name="protocol")
