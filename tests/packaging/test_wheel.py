"""An installed Outpost is complete: the wheel, built offline from the sdist, installed into a fresh virtual
environment and run from a directory outside the checkout, builds the node firmware, runs the demo's node
firmware, exports the dashboards, writes Grafana's provisioning files and prints its systemd unit.

The wheel is built with this environment's setuptools (``--no-isolation``: no index is asked), from a copy of
the source tree (nothing is written into the checkout), first as an sdist and then from that sdist, so both
carry what an installation needs. The fresh environment has only the wheel; the third-party libraries come
from this environment's site-packages through a ``.pth`` line (the checkout's own editable install is not
activated there: ``.pth`` files in an added directory are not read), and the checkout is not on its path.
"""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Final

import pytest

from dashboards.packaged import GENERATED_DIR
from simulators.nodes.firmware import firmware_dir

CHECKOUT: Final = Path(__file__).resolve().parents[2]
NOT_SOURCE: Final = shutil.ignore_patterns(
    ".git", ".venv", ".cache", ".*_cache", ".hypothesis", "__pycache__", "build", "dist", "*.egg-info", "*.db*",
    "outpost-edge-state", "tests",
)  # fmt: skip
INSTALLED_PACKAGES: Final = {"protocol", "edge", "fleet", "simulators", "dashboards", "outpost_cli", "outpost_firmware"}
TYPED_PACKAGES: Final = INSTALLED_PACKAGES - {"outpost_firmware"}


def run(*command: str | Path, cwd: Path, exit_code: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``command`` without this process's Python settings; fails showing its output unless it exits so."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == exit_code, f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def output(*command: str | Path, cwd: Path) -> str:
    return run(*command, cwd=cwd).stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source") / "outpost"
    shutil.copytree(CHECKOUT, source, ignore=NOT_SOURCE)
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source, cwd=out)
    (built,) = out.glob("outpost-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed; its ``bin`` directory."""
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv)
    python = venv / "bin" / "python"
    purelib = Path(output(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=venv).strip())
    (purelib / "outpost-libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel, cwd=venv)
    return venv / "bin"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory outside the checkout."""
    assert not tmp_path.is_relative_to(CHECKOUT)
    return tmp_path


def test_the_wheel_carries_the_roles_firmware_dashboards_license_and_type_markers(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(name for name in names if name.endswith(".dist-info/METADATA"))).decode()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}

    assert top_level == INSTALLED_PACKAGES, "bench is a checkout tool; nothing else lands in site-packages"
    assert "License-Expression: Apache-2.0" in metadata
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert {f"{package}/py.typed" for package in TYPED_PACKAGES} <= set(names)
    firmware = {name.removeprefix("outpost_firmware/") for name in names if name.startswith("outpost_firmware/")}
    expected = {path.relative_to(firmware_dir()).as_posix() for path in firmware_dir().rglob("*.py")}
    assert firmware == expected, "main.py and every module of outpost_node, nothing else"
    for directory in ("generated", "provisioning"):
        shipped = {name for name in names if name.startswith(f"dashboards/{directory}/")}
        committed = {
            f"dashboards/{directory}/{path.relative_to(GENERATED_DIR.parent / directory).as_posix()}"
            for path in (GENERATED_DIR.parent / directory).rglob("*")
            if path.is_file()
        }
        assert shipped == committed


def test_an_installed_outpost_is_complete_outside_the_checkout(installed: Path, elsewhere: Path) -> None:
    # One test, so that pytest-xdist's workers build and install the wheel once each at most, not once a test.
    outpost, python = installed / "outpost", installed / "python"

    # It runs its own code: nothing of the checkout's is on its path but this environment's libraries.
    path = json.loads(output(python, "-c", "import json, sys; print(json.dumps(sys.path))", cwd=elsewhere))
    libraries = Path(sys.prefix).resolve()
    in_checkout = [entry for entry in map(Path, filter(None, path)) if entry.resolve().is_relative_to(CHECKOUT)]
    assert all(entry.resolve().is_relative_to(libraries) for entry in in_checkout), in_checkout
    probe = "import edge, outpost_cli, protocol; print(edge.__file__, outpost_cli.__file__, protocol.__file__)"
    modules = output(python, "-c", probe, cwd=elsewhere).split()
    assert all(Path(module).is_relative_to(installed.parent) for module in modules), modules

    assert output(outpost, "--version", cwd=elsewhere) == f"outpost {importlib.metadata.version('outpost')}\n"

    # The node firmware it carries: built for a board, and run by the demo's simulated nodes.
    built_from = output(outpost, "firmware", "build", "--out", "node-build", cwd=elsewhere)
    manifest = json.loads((elsewhere / "node-build" / "manifest.json").read_text())
    built = {file["path"] for file in manifest["files"]}
    assert {"main.py", "outpost_node/node.mpy"} <= built
    assert all((elsewhere / "node-build" / path).is_file() for path in built)
    assert str(installed.parent) in built_from, "built from the installed copy of the firmware"
    probe = "from simulators.nodes.firmware import load_firmware; f = load_firmware(); print(f.directory, f.version)"
    directory, version = output(python, "-c", probe, cwd=elsewhere).split()
    assert Path(directory).is_relative_to(installed.parent)
    assert version == manifest["firmware_version"]

    # The dashboards and Grafana's provisioning files.
    run(outpost, "dashboards", "export", "--out", "dashboards", cwd=elsewhere)
    run(outpost, "dashboards", "export", "--check", cwd=elsewhere)  # the JSON it carries is what its code builds
    run(outpost, "dashboards", "provisioning", "--out", "provisioning", cwd=elsewhere)
    refused = run(outpost, "dashboards", "export", cwd=elsewhere, exit_code=2)  # never into its own site-packages
    exported = sorted(path.relative_to(elsewhere / "dashboards") for path in (elsewhere / "dashboards").rglob("*.json"))
    assert exported == sorted(path.relative_to(GENERATED_DIR) for path in GENERATED_DIR.rglob("*.json"))
    for name in ("datasources/outpost.yaml", "dashboards/outpost.yaml", "outpost.env"):
        assert (elsewhere / "provisioning" / name).is_file(), name
    assert "give --out DIR" in refused.stderr

    # The gateway's systemd unit runs this installation's outpost.
    unit = output(outpost, "gateway", "unit", cwd=elsewhere)
    assert f"ExecStart={outpost} gateway run --config /etc/outpost/gateway.toml\n" in unit
