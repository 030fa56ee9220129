"""``fleet run`` and ``gateway run`` stop at start-up on an environment variable of theirs that names no setting,
naming it and the setting it was probably meant for."""

from pathlib import Path

from typer.testing import CliRunner

from outpost_cli.main import app

runner = CliRunner()


def test_fleet_run_refuses_a_mistyped_variable_naming_it_and_the_setting_meant() -> None:
    env = {"OUTPOST_FLEET_ENVIRONMENT": "production", "OUTPOST_FLEET_DATABSE_URL": "postgresql+asyncpg://db/fleet"}

    result = runner.invoke(app, ["fleet", "run"], env=env)

    assert result.exit_code == 2
    assert "invalid fleet settings" in result.output
    assert "OUTPOST_FLEET_DATABSE_URL" in result.output
    assert "did you mean OUTPOST_FLEET_DATABASE_URL?" in result.output
    assert "postgresql+asyncpg://db/fleet" not in result.output


def test_gateway_run_refuses_a_mistyped_variable_naming_it_and_the_setting_meant(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('village_id = "dongshan"\ngateway_id = "gw-1"\n')

    result = runner.invoke(
        app, ["gateway", "run", "--config", str(config)], env={"OUTPOST_EDGE_BROKER__PASWORD": "s3cret-pass"}
    )

    assert result.exit_code == 2
    assert "invalid gateway settings" in result.output
    assert "OUTPOST_EDGE_BROKER__PASWORD" in result.output
    assert "did you mean OUTPOST_EDGE_BROKER__PASSWORD?" in result.output
    assert "s3cret-pass" not in result.output
