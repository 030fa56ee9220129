"""``outpost fleet alerts rules …`` as a county admin uses it, against the fleet's API served over real HTTP:
set a layer from a file or stdin, read it back, see what a village runs by, unset it; refusals show the reason."""

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner, Result

from fleet.api.context import ApiContext
from fleet.cli.app import app
from protocol.messages import AlertKind, Severity
from tests.fleet.api_client import ADMIN_TOKEN, api_context
from tests.fleet.configs.sites import build_county
from tests.fleet.helpers import FakeClock
from tests.fleet.served_api import invoke, served_api

TOWN_RULES = {"kinds": {"camera_offline": {"severity": "minor", "hold_off_s": 300}}, "clear_hold_s": 30}


@pytest.fixture
async def context(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ApiContext:
    await build_county(sessions, clock)
    context = api_context(sessions, clock)
    await context.rules.load()
    return context


@pytest.fixture
async def fleet(context: ApiContext) -> AsyncIterator[str]:
    async with served_api(context) as url:
        yield url


async def rules(fleet: str, *args: str, token: str = ADMIN_TOKEN) -> Result:
    return await invoke(app, ["alerts", "rules", *args], token=token, fleet=fleet)


async def rules_from_stdin(fleet: str, text: str, *args: str) -> Result:
    env = {"OUTPOST_FLEET_URL": fleet, "OUTPOST_TOKEN": ADMIN_TOKEN}
    command = ["alerts", "rules", *args]
    return await asyncio.to_thread(CliRunner().invoke, app, command, input=text, env=env, catch_exceptions=False)


async def test_a_layer_set_from_a_file_is_read_back_and_shown_for_the_village(
    fleet: str, context: ApiContext, tmp_path: Path
) -> None:
    layer_file = tmp_path / "hutou.json"
    layer_file.write_text(json.dumps(TOWN_RULES), encoding="utf-8")

    set_town = await rules(fleet, "set", "town", "hutou", str(layer_file))
    got = await rules(fleet, "get", "town", "hutou")
    shown = await rules(fleet, "show", "shiqiao")

    assert (set_town.exit_code, set_town.stdout) == (0, "set the alert rules of town hutou (2 top-level keys)\n")
    assert got.exit_code == 0
    assert json.loads(got.stdout) == TOWN_RULES, "stdout is the layer alone: get > file, edit, set file"
    assert got.stderr.startswith("town hutou: set by bootstrap-admin at ")
    as_json = json.loads((await rules(fleet, "get", "town", "hutou", "--json")).stdout)
    assert (as_json["overrides"], as_json["updated_by"]) == (TOWN_RULES, "bootstrap-admin"), "all the fleet answered"
    lines = shown.stdout.splitlines()
    assert lines[0] == "village shiqiao (town hutou, county anxi)"
    assert lines[1].startswith("layer town hutou (by bootstrap-admin, ")
    assert json.loads("\n".join(lines[2:]))["kinds"]["camera_offline"]["hold_off_s"] == 300
    served = context.rules.for_village("dongcun")
    assert served.severity_of(AlertKind.CAMERA_OFFLINE, Severity.MAJOR) is Severity.MINOR


async def test_a_layer_comes_from_stdin_or_toml_and_is_unset(fleet: str, tmp_path: Path) -> None:
    from_stdin = await rules_from_stdin(
        fleet, '{"watch": {"offline_after_missed_heartbeats": 3}}', "set", "county", "anxi", "-"
    )
    toml_file = tmp_path / "shiqiao.toml"
    toml_file.write_text('[kinds.panic]\nclear_hold_s = 0\n[quiet_hours]\nstart = "22:00"\nend = "06:00"\n')
    from_toml = await rules(fleet, "set", "village", "shiqiao", str(toml_file))
    view = json.loads((await rules(fleet, "show", "shiqiao", "--json")).stdout)

    assert (from_stdin.exit_code, from_toml.exit_code) == (0, 0), from_stdin.output + from_toml.output
    assert [(layer["scope"], layer["scope_id"]) for layer in view["layers"]] == [
        ("county", "anxi"),
        ("village", "shiqiao"),
    ]
    assert view["rules"]["watch"]["offline_after_missed_heartbeats"] == 3
    assert view["rules"]["quiet_hours"]["start"] == "22:00"

    unset = await rules(fleet, "unset", "village", "shiqiao")
    assert (unset.exit_code, unset.stdout) == (0, "removed the alert rules layer village shiqiao\n")
    after = await rules(fleet, "show", "shiqiao")
    assert "layer village shiqiao" not in after.stdout
    old_name = await rules(fleet, "clear", "county", "anxi")  # the old name still works, hidden
    assert (old_name.exit_code, old_name.stdout) == (0, "removed the alert rules layer county anxi\n")


async def test_refusals_show_the_fleets_reason(fleet: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"kinds": {"panic": {"severity": "urgent"}}}', encoding="utf-8")
    not_json = tmp_path / "broken.json"
    not_json.write_text("{kinds", encoding="utf-8")

    invalid = await rules(fleet, "set", "village", "shiqiao", str(bad))
    unreadable = await rules(fleet, "set", "village", "shiqiao", str(not_json))
    a_list = await rules_from_stdin(fleet, "[1, 2]", "set", "village", "shiqiao", "-")
    missing = await rules(fleet, "get", "village", "shiqiao")
    nowhere = await rules(fleet, "show", "nowhere")
    no_defaults = await rules(fleet, "show", "dongcun")

    assert invalid.exit_code == 1
    assert invalid.stderr.startswith("refused (422): village alert rules 'shiqiao' is not valid: kinds.panic.severity")
    assert unreadable.exit_code == 2
    assert unreadable.stderr.startswith(f"cannot read {not_json}: ")
    assert a_list.exit_code == 2
    assert a_list.stderr == "stdin must hold a JSON object (or a TOML table) of alert rule keys\n"
    assert (missing.exit_code, missing.stderr) == (1, "refused (404): no village alert rules 'shiqiao'\n")
    assert (nowhere.exit_code, nowhere.stderr) == (1, "refused (404): no village 'nowhere'\n")
    assert "no layers: the defaults" in no_defaults.stdout


async def test_a_technician_may_read_but_not_set_rules(fleet: str, tmp_path: Path) -> None:
    created = await invoke(
        app, ["tokens", "create", "wang-fang", "--role", "technician"], token=ADMIN_TOKEN, fleet=fleet
    )
    technician = created.stdout.strip().splitlines()[-1]
    layer_file = tmp_path / "l.json"
    layer_file.write_text('{"kinds": {"panic": {"enabled": false}}}', encoding="utf-8")

    refused = await rules(fleet, "set", "village", "shiqiao", str(layer_file), token=technician)
    shown = await rules(fleet, "show", "shiqiao", token=technician)

    assert (refused.exit_code, refused.stderr) == (1, "refused (403): role technician may not manage sites\n")
    assert shown.exit_code == 0


async def test_the_help_says_what_rules_are_and_how_to_write_one() -> None:
    group = CliRunner().invoke(app, ["alerts", "rules", "--help"], env={"COLUMNS": "120"})
    setting = CliRunner().invoke(app, ["alerts", "rules", "set", "--help"], env={"COLUMNS": "120"})

    assert group.exit_code == setting.exit_code == 0
    for command in ("show", "get", "set", "unset"):
        assert command in group.stdout
    assert "clear" not in group.stdout, "the old name is hidden"
    assert "quiet hours" in group.stdout
    assert '"camera_offline": {"severity": "minor"' in setting.stdout, "an example layer"
