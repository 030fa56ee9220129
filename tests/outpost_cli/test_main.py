"""The ``outpost`` command as a technician or engineer meets it."""

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from outpost_cli.main import app
from protocol.identifiers import IDENTIFIER_RULE
from protocol.schema import schema_documents

runner = CliRunner()


def test_help_lists_every_part() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "gateway", "fleet", "sim", "protocol"):
        assert command in result.output


def test_protocol_schema_writes_every_payload_schema(tmp_path: Path) -> None:
    result = runner.invoke(app, ["protocol", "schema", "--out", str(tmp_path)])
    assert result.exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(schema_documents())
    assert json.loads((tmp_path / "Alert.schema.json").read_text())["title"] == "Alert"


def test_gateway_run_refuses_invalid_settings_with_a_clear_message(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('village_id = "Dong Shan"\ngateway_id = "gw-1"\nsurprise = 1\n')
    result = runner.invoke(app, ["gateway", "run", "--config", str(config)])
    assert result.exit_code == 2
    assert "invalid gateway settings" in result.output
    assert "village_id" in result.output
    assert "surprise" in result.output


def test_gateway_run_reports_an_unreadable_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text("village_id = \n")
    result = runner.invoke(app, ["gateway", "run", "--config", str(config)])
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_fleet_run_refuses_production_without_secrets() -> None:
    result = runner.invoke(app, ["fleet", "run"], env={"OUTPOST_FLEET_ENVIRONMENT": "production"})
    assert result.exit_code == 2
    assert "production needs explicit settings" in result.output


def test_a_gateway_install_never_imports_the_fleet_web_stack() -> None:
    # What `outpost gateway ...` loads must not pull in FastAPI, SQLAlchemy or influxdb-client, nor the
    # other parts' command modules or rich (the memory a gateway carries for nothing).
    unwanted = ("fastapi", "sqlalchemy", "influxdb_client", "uvicorn", "fleet.cli.app", "simulators.cli", "rich")
    probe = (
        "import sys; import outpost_cli.main, edge.agent, edge.uplink; "
        f"bad = [m for m in {unwanted!r} if m in sys.modules]; "
        "print(','.join(bad))"
    )
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert output.strip() == ""


def test_gateway_run_without_settings_says_what_to_set_one_line_each(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('village_id = "Dong Shan"\n[broker]\npassword = "s3cret-pass"\nport = "many"\n')

    unset = {"OUTPOST_EDGE_VILLAGE_ID": None, "OUTPOST_EDGE_GATEWAY_ID": None}

    missing = runner.invoke(app, ["gateway", "run"], env=unset)
    invalid = runner.invoke(app, ["gateway", "run", "--config", str(config)], env=unset)

    assert (missing.exit_code, invalid.exit_code) == (2, 2)
    assert missing.stderr.splitlines() == [
        "invalid gateway settings (no --config file given):",
        "  village_id: missing: set it in the --config file or as OUTPOST_EDGE_VILLAGE_ID",
        "  gateway_id: missing: set it in the --config file or as OUTPOST_EDGE_GATEWAY_ID",
    ]
    assert invalid.stderr.splitlines() == [
        f"invalid gateway settings in {config}:",
        f"  village_id: not an id: {IDENTIFIER_RULE}",
        "  gateway_id: missing: set it in the --config file or as OUTPOST_EDGE_GATEWAY_ID",
        "  broker.port: Input should be a valid integer, unable to parse string as an integer",
    ]
    assert "s3cret-pass" not in invalid.output, "never the values given"
