"""``outpost --version``: the installed distribution's version, or the checkout's pyproject.toml's without one."""

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outpost_cli import main
from outpost_cli.main import app

runner = CliRunner()
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_version_is_the_installed_distributions() -> None:
    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"outpost {importlib.metadata.version('outpost')}\n"


def test_version_comes_before_any_command_and_runs_none() -> None:
    result = runner.invoke(app, ["--version", "fleet", "run"])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("outpost ")


def test_a_source_tree_run_without_installing_reads_its_pyproject(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(main, "version", not_installed)

    assert main.outpost_version() == tomllib.loads(PYPROJECT.read_text())["project"]["version"]
