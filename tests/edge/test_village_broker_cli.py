"""``outpost gateway village-broker``: the village broker's logins and ACLs made from the gateway's settings."""

from pathlib import Path

from typer.testing import CliRunner

from edge.cli import app

SETTINGS = """
environment = "development"
village_id = "shiqiao"
gateway_id = "gw-shiqiao"

[[devices]]
kind = "panic_button"
id = "panic-well"
driver = "node"

[[devices]]
kind = "door_contact"
id = "door-clinic"
driver = "node"

[[devices]]
kind = "panic_button"
id = "panic-school"
"""


def test_logins_and_acls_for_every_node_of_the_settings(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(SETTINGS, encoding="utf-8")
    broker = tmp_path / "broker"
    runner = CliRunner()

    made = runner.invoke(app, ["village-broker", "--config", str(config), "--directory", str(broker)])
    shown = runner.invoke(
        app, ["village-broker", "-c", str(config), "--directory", str(broker), "--show", "door-clinic"]
    )
    unknown = runner.invoke(app, ["village-broker", "-c", str(config), "--directory", str(broker), "--show", "nobody"])

    assert made.exit_code == 0, made.output
    assert "2 nodes" in made.stderr
    users = sorted(line.split(":", 1)[0] for line in (broker / "passwd").read_text().splitlines())
    assert users == ["door-clinic", "outpost-centre", "outpost-gateway", "panic-well"]
    assert f"password_file {broker / 'passwd'}" in (broker / "outpost.conf").read_text()
    assert shown.exit_code == 0
    assert len(shown.stdout.strip()) == 43  # 256 bits, url-safe base64
    assert unknown.exit_code == 2
