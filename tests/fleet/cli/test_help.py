"""``outpost fleet`` as one consistent command line, checked by walking every command Typer builds (hidden
aliases included): each says what it does and what each argument and option is; every command that calls
the fleet takes the same connection options; every list and show command can answer in JSON; durations are
written one way."""

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from fleet.cli.app import app

Command = Any  # typer's click command classes (typer vendors click)

LISTS_AND_SHOWS = {"list", "show", "get", "status", "summary", "health"}
"""Commands that print what the fleet holds: each takes --json."""
CONNECTION = ("--fleet", "--token", "--ca-file")


def walk(command: Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, (*path, name))


COMMANDS = list(walk(typer.main.get_command(app)))


def names(command: Command) -> set[str]:
    return {name for param in command.params for name in param.opts}


def _id(path: tuple[str, ...]) -> str:
    return " ".join(path) or "fleet"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[_id(path) for path, _ in COMMANDS])
def test_every_command_argument_and_option_says_what_it_is(path: tuple[str, ...], command: Command) -> None:
    assert (command.help or "").strip(), f"`outpost fleet {_id(path)}` has no help"
    unexplained = [param.human_readable_name for param in command.params if not (param.help or "").strip()]
    assert not unexplained, f"`outpost fleet {_id(path)}`: no help for {', '.join(unexplained)}"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[_id(path) for path, _ in COMMANDS])
def test_arguments_are_named_in_capitals_as_the_usage_line_shows_them(path: tuple[str, ...], command: Command) -> None:
    for param in command.params:
        if not param.opts[0].startswith("-"):
            assert (param.metavar or "") == (param.metavar or "x").upper(), f"`{_id(path)}` {param.name}"


def test_the_walk_sees_every_group_and_the_hidden_aliases() -> None:
    paths = {_id(path) for path, _ in COMMANDS}

    assert {"gateways health", "devices set", "deliveries retry", "audit list", "alerts rules unset"} <= paths
    assert {"enrollment revoke-token", "alerts rules clear", "config clear", "alerts acknowledge"} <= paths


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[_id(path) for path, _ in COMMANDS])
def test_every_command_that_calls_the_fleet_takes_the_same_connection_options(
    path: tuple[str, ...], command: Command
) -> None:
    given = names(command) & set(CONNECTION)
    assert given in (set(), set(CONNECTION)), f"`{_id(path)}` takes {sorted(given)} of {CONNECTION}"
    if path and path[-1] in LISTS_AND_SHOWS:
        assert "--json" in names(command), f"`{_id(path)}` prints what the fleet holds but takes no --json"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[_id(path) for path, _ in COMMANDS])
def test_durations_are_written_one_way(path: tuple[str, ...], command: Command) -> None:
    for param in command.params:
        visible = [opt for opt in param.opts if opt.startswith("--")] if not getattr(param, "hidden", False) else []
        assert not [opt for opt in visible if opt.endswith(("-s", "-ms"))], f"`{_id(path)}` {visible}: a unit in a name"
        if param.metavar == "DURATION":
            assert "90s, 30m, 2h, 7d or 1h30m" in param.help, f"`{_id(path)}` {param.opts} does not say how to write it"


def listed(help_text: str) -> set[str]:
    """The first word of each line in the help's boxes: the commands and options it lists."""
    return {line.split()[1] for line in help_text.splitlines() if line.startswith("│ ") and len(line.split()) > 1}


def test_hidden_aliases_stay_out_of_the_help() -> None:
    runner = CliRunner()
    enrollment = listed(runner.invoke(app, ["enrollment", "--help"], env={"COLUMNS": "160"}).stdout)
    alerts = listed(runner.invoke(app, ["alerts", "--help"], env={"COLUMNS": "160"}).stdout)
    rules = listed(runner.invoke(app, ["alerts", "rules", "--help"], env={"COLUMNS": "160"}).stdout)
    create = listed(runner.invoke(app, ["tokens", "create", "--help"], env={"COLUMNS": "160"}).stdout)
    config_set = listed(runner.invoke(app, ["config", "set", "--help"], env={"COLUMNS": "160"}).stdout)

    assert "revoke" in enrollment
    assert "revoke-token" not in enrollment
    assert "ack" in alerts
    assert "acknowledge" not in alerts
    assert "unset" in rules
    assert "clear" not in rules
    assert {"--ttl", "--ca-file", "--fleet", "--token"} <= create
    assert "--ttl-s" not in create
    assert "FILE" in config_set
    assert "--file" not in config_set
