"""The ``outpost`` command line: one Typer app that mounts each part's commands.

A part's command module is imported only when one of its commands runs (or ``--help`` lists it):
``outpost gateway run`` never loads the fleet's, the simulators' or the protocol tools' command
modules, nor rich, which only the simulators' live view uses (about 2.3 MB of the agent's RSS).
Each part's commands then load their own dependencies only when run, so a gateway install
(``outpost[edge]``) never imports the fleet's web stack.
"""

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from typer.core import TyperGroup

from edge.cli import app as gateway_app
from outpost_cli.logs import configure_logging


@dataclass(frozen=True, slots=True)
class _Part:
    """A command imported when first needed: ``attribute`` of ``module``, a Typer app or a command function."""

    module: str
    attribute: str


_LAZY_PARTS: Final = {
    "demo": _Part("simulators.cli", "demo"),
    "fleet": _Part("fleet.cli.app", "app"),
    "sim": _Part("simulators.cli", "app"),
    "protocol": _Part("outpost_cli.protocol_cmd", "app"),
    "firmware": _Part("outpost_cli.firmware", "app"),
    "release": _Part("outpost_cli.release", "app"),
    "dashboards": _Part("dashboards.cli", "app"),
}
_HELP_ORDER: Final = ("demo", "gateway", "fleet", "dashboards", "sim", "firmware", "release", "protocol")
DISTRIBUTION: Final = "outpost"
UNKNOWN_VERSION: Final = "0+unknown"


def outpost_version() -> str:
    """This Outpost's version: its installed distribution's (a wheel, or a checkout's editable install), else
    that of the pyproject.toml beside the code (a source tree run without installing), else ``0+unknown``."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        pass
    try:
        project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return UNKNOWN_VERSION
    about = project.get("project", {})
    found = about.get("version") if about.get("name") == DISTRIBUTION else None
    return found if isinstance(found, str) else UNKNOWN_VERSION


# The click types below are typer's private ones (typer vendors click), hence `Any`.


def _load(name: str, part: _Part) -> Any:
    """The click command for ``part``, as ``app.add_typer`` or ``app.command`` would have built it."""
    target = getattr(import_module(part.module), part.attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)  # a group even when the part has a single command
        group.name = name
        return group
    single = typer.Typer(add_completion=False)
    single.command(name)(target)
    return typer.main.get_command(single)


class _LazyGroup(TyperGroup):
    """The ``outpost`` group: the gateway's commands are mounted as usual, the other parts on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        known = set(super().list_commands(ctx)) | set(_LAZY_PARTS)
        return [name for name in _HELP_ORDER if name in known] + sorted(known - set(_HELP_ORDER))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        part = _LAZY_PARTS.get(cmd_name)
        if command is None and part is not None:
            command = _load(cmd_name, part)
            self.add_command(command, cmd_name)
        return command

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.list_commands(ctx):
            for name in _LAZY_PARTS:  # a mistyped command: typer's "Did you mean" looks among loaded ones
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


app = typer.Typer(
    name="outpost",
    cls=_LazyGroup,
    help="Outpost: edge gateways and the fleet manager for village public-safety networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"outpost {outpost_version()}")
        raise typer.Exit


@app.callback()
def main(
    log_level: Annotated[LogLevel, typer.Option("--log-level", help="How much to log (to stderr).")] = LogLevel.INFO,
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print Outpost's version and exit."),
    ] = False,
) -> None:
    configure_logging(log_level.value)


app.add_typer(gateway_app, name="gateway")
