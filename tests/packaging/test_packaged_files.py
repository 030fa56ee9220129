"""The files Outpost carries besides its code, found the way an installation finds them: the sensor-node firmware
(``firmware/``, as ``outpost_firmware``), the generated dashboards and Grafana's provisioning files.

``test_wheel.py`` shows the same from an installed wheel; these run in the checkout.
"""

import stat
from pathlib import Path
from typing import Final

import pytest
from typer.testing import CliRunner

from dashboards import packaged
from dashboards.packaged import GENERATED_DIR, PROVISIONING_DIR
from outpost_cli.main import app
from simulators.nodes import firmware as node_firmware
from simulators.nodes.firmware import FirmwareLoadError, firmware_dir

CHECKOUT: Final = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_a_checkout_finds_its_own_firmware_and_dashboards() -> None:
    assert firmware_dir() == CHECKOUT / "firmware"
    assert GENERATED_DIR == CHECKOUT / "dashboards" / "generated"
    assert PROVISIONING_DIR == CHECKOUT / "dashboards" / "provisioning"
    assert packaged.writable_generated_dir() == GENERATED_DIR, "export keeps the committed JSON up to date here"


def test_an_installation_without_the_firmware_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node_firmware, "INSTALLED_AS", "outpost_firmware_not_installed")

    with pytest.raises(FirmwareLoadError, match="carries no sensor-node firmware"):
        firmware_dir()
    result = runner.invoke(app, ["firmware", "build", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "carries no sensor-node firmware" in result.stderr
    assert "or pass --source" in result.stderr


def test_provisioning_writes_grafanas_files_and_keeps_an_edited_env_file(tmp_path: Path) -> None:
    out = tmp_path / "provisioning"
    env_file = tmp_path / "grafana" / "outpost.env"

    first = runner.invoke(app, ["dashboards", "provisioning", "--out", str(out), "--env-file", str(env_file)])
    env_file.write_text("OUTPOST_VICTORIAMETRICS_URL=http://vm.county.example:8428\n")
    second = runner.invoke(app, ["dashboards", "provisioning", "--out", str(out), "--env-file", str(env_file)])

    assert (first.exit_code, second.exit_code) == (0, 0), first.output + second.output
    for relative in ("datasources/outpost.yaml", "dashboards/outpost.yaml"):
        assert (out / relative).read_bytes() == (PROVISIONING_DIR / relative).read_bytes()
        assert stat.S_IMODE((out / relative).stat().st_mode) == 0o644
        assert f"unchanged {out / relative}" in second.stdout
    assert f"kept {env_file}" in second.stdout
    assert env_file.read_text() == "OUTPOST_VICTORIAMETRICS_URL=http://vm.county.example:8428\n"


def test_an_installed_export_needs_a_directory_and_never_rewrites_its_own_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dashboards.cli.writable_generated_dir", lambda: None)  # as in site-packages

    refused = runner.invoke(app, ["dashboards", "export"])
    written = runner.invoke(app, ["dashboards", "export", "--out", str(tmp_path)])
    checked = runner.invoke(app, ["dashboards", "export", "--check"])

    assert refused.exit_code == 2
    assert "give --out DIR" in refused.stderr
    assert written.exit_code == 0, written.output
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.json")) == sorted(
        p.relative_to(GENERATED_DIR) for p in GENERATED_DIR.rglob("*.json")
    )
    assert checked.exit_code == 0, checked.output
    assert f"in {GENERATED_DIR} are up to date" in checked.stdout
