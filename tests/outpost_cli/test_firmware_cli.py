"""``outpost firmware`` as a technician meets it: building the node firmware, flashing it, checking a node.

Everything runs for real: mpy-cross compiles, the built .mpy files and the ``check`` snippet run under
the real MicroPython interpreter, and mpremote is asked for a port that does not exist. No board is
needed: the dry run prints what flashing would do.
"""

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outpost_cli.firmware import CHECK_SNIPPET, check_answer, load_settings_rules
from outpost_cli.main import app
from simulators.infra.micropython import MicroPython, tree

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
DOC = Path(__file__).resolve().parents[2] / "docs" / "FIRMWARE.md"
PORT = "/dev/ttyUSB0"
WIFI_SECRET = "wifi-secret-123"
BROKER_SECRET = "broker-secret-456"
ENV = {"OUTPOST_WIFI_PASSWORD": WIFI_SECRET, "OUTPOST_BROKER_PASSWORD": BROKER_SECRET}

runner = CliRunner()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the firmware source, so edits to firmware/ while the tests run cannot stale the build."""
    copy = tmp_path_factory.mktemp("source") / "firmware"
    shutil.copytree(FIRMWARE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.fixture(scope="module")
def build_dir(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    result = runner.invoke(app, ["firmware", "build", "--source", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def flash(build: Path, source: Path, *options: str) -> list[str]:
    """``outpost firmware flash`` for a panic button; later options override earlier ones."""
    return [
        "firmware", "flash", "--build", str(build), "--source", str(source), "--port", PORT,
        "--node-id", "panic-well", "--role", "panic_button", "--wifi-ssid", "village",
        "--broker-host", "192.168.4.1", "--input-pin", "4", *options,
    ]  # fmt: skip


def manifest_of(build: Path) -> dict[str, object]:
    found: dict[str, object] = json.loads((build / "manifest.json").read_text())
    return found


def built_paths(build: Path) -> list[str]:
    files = manifest_of(build)["files"]
    assert isinstance(files, list)
    return [str(file["path"]) for file in files]


def test_help_lists_the_firmware_commands() -> None:
    assert "firmware" in runner.invoke(app, ["--help"]).output
    result = runner.invoke(app, ["firmware", "--help"])
    assert result.exit_code == 0
    for command in ("build", "flash", "check"):
        assert command in result.output


def test_build_compiles_every_module_to_mpy_and_keeps_main_py_as_source(source: Path, build_dir: Path) -> None:
    modules = sorted(p.relative_to(source).as_posix() for p in (source / "outpost_node").glob("*.py"))
    assert modules, "the firmware package has modules"
    assert built_paths(build_dir) == ["main.py", *(m.removesuffix(".py") + ".mpy" for m in modules)]
    assert (build_dir / "main.py").read_bytes() == (source / "main.py").read_bytes()
    assert not list((build_dir / "outpost_node").glob("*.py"))
    for path in built_paths(build_dir)[1:]:
        header = (build_dir / path).read_bytes()[:4]
        assert header[:1] == b"M", path  # MicroPython's .mpy magic
        assert header[1] == 6, path  # .mpy version 6: MicroPython 1.19 and later (6.3: 1.23 and later)


def test_build_manifest_matches_the_files(source: Path, build_dir: Path) -> None:
    manifest = manifest_of(build_dir)
    version = re.search(r'FIRMWARE_VERSION = "(.+)"', (source / "outpost_node" / "__init__.py").read_text())
    assert version is not None
    assert manifest["firmware_version"] == version.group(1)
    assert manifest["mpy_cross_version"] == "1.27.0"
    assert manifest["mpy_format"] == "6.3"
    files = manifest["files"]
    assert isinstance(files, list)
    on_disk = sorted(p.relative_to(build_dir).as_posix() for p in build_dir.rglob("*") if p.is_file())
    assert on_disk == sorted([*built_paths(build_dir), "manifest.json"])
    for file in files:
        data = (build_dir / file["path"]).read_bytes()
        assert file["size"] == len(data)
        assert file["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["total_size"] == sum(file["size"] for file in files)


def test_build_reports_a_syntax_error_in_one_line_and_leaves_no_manifest(source: Path, tmp_path: Path) -> None:
    broken = tmp_path / "firmware"
    shutil.copytree(source, broken)
    with (broken / "outpost_node" / "button.py").open("a") as f:
        f.write("\n\ndef broken(:\n    pass\n")
    lines = (broken / "outpost_node" / "button.py").read_text().count("\n")
    out = tmp_path / "build"
    result = runner.invoke(app, ["firmware", "build", "--source", str(broken), "--out", str(out)])
    assert result.exit_code == 1
    assert f"error: mpy-cross refused outpost_node/button.py, line {lines - 1}: SyntaxError" in result.output
    assert "Traceback" not in result.output
    assert not (out / "manifest.json").exists()


def test_the_built_firmware_and_the_check_snippet_run_under_micropython(build_dir: Path) -> None:
    config = {"node_id": "panic-well", "role": "panic_button", "broker_host": "192.168.4.1", "wifi_ssid": "v"}
    files = {**tree(build_dir / "outpost_node", "outpost_node"), "config.json": json.dumps(config).encode()}
    files["boot.count"] = b"7"
    printed = MicroPython().run([CHECK_SNIPPET, "from outpost_node import node\nprint('every module loads')"], files)
    found = check_answer("wasm", printed)
    version = manifest_of(build_dir)["firmware_version"]
    assert found == {
        "node_id": "panic-well",
        "role": "panic_button",
        "broker_host": "192.168.4.1",
        "firmware": version,
        "boot_count": 7,
        "micropython": "1.27.0",
    }
    assert "every module loads" in printed


def test_flash_dry_run_lists_the_mpremote_commands_in_order(source: Path, build_dir: Path) -> None:
    result = runner.invoke(app, [*flash(build_dir, source, "--long-press-ms", "1500"), "--dry-run"], env=ENV)
    assert result.exit_code == 0, result.output
    commands = [line for line in result.output.splitlines() if line.startswith("mpremote ")]
    board = f"mpremote connect {PORT}"
    modules = [path for path in built_paths(build_dir) if path != "main.py"]
    assert commands == [
        f"{board} fs rm -r :outpost_node",
        f"{board} fs mkdir :outpost_node",
        *(f"{board} fs cp {build_dir / path} :{path}" for path in modules),
        f"{board} fs cp config.json :config.json",
        f"{board} fs cp {build_dir / 'main.py'} :main.py",
        f"{board} reset",
    ]


def test_flash_dry_run_shows_the_full_config_with_passwords_masked(source: Path, build_dir: Path) -> None:
    options = ("--broker-user", "node", "--long-press-ms", "1500", "--tamper-pin", "5", "--dry-run")
    result = runner.invoke(app, flash(build_dir, source, *options), env=ENV)
    assert result.exit_code == 0, result.output
    config = json.loads(result.output.split("config.json (passwords masked):\n", 1)[1])
    assert WIFI_SECRET not in result.output
    assert BROKER_SECRET not in result.output
    assert config["wifi_password"] == config["broker_password"] == "***"
    assert (config["node_id"], config["broker_user"], config["long_press_ms"], config["tamper_pin"]) == (
        "panic-well",
        "node",
        1500,
        5,
    )
    assert set(config) == set(load_settings_rules(source).spec)  # the firmware's defaults fill in the rest
    assert config["heartbeat_s"] == 60


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (("--role", "fire_alarm"), "role: must be one of panic_button, door_contact, pir_sensor"),
        (("--node-id", "Well 1"), "node_id: only a-z, 0-9, '-' and '_'"),
        (("--tamper-pin", "4"), "tamper_pin: must differ from input_pin"),
        (("--long-press-ms", "100"), "long_press_ms: must be 300..60000"),
    ],
)
def test_flash_refuses_a_config_the_firmware_would_refuse(
    source: Path, build_dir: Path, options: tuple[str, ...], problem: str
) -> None:
    result = runner.invoke(app, [*flash(build_dir, source, *options), "--dry-run"], env=ENV)
    assert result.exit_code == 2
    assert "invalid node config" in result.output
    assert f"  - {problem}\n" in result.output
    assert "mpremote" not in result.output


def test_flash_refuses_a_build_changed_after_it_was_built(source: Path, build_dir: Path, tmp_path: Path) -> None:
    changed = tmp_path / "build"
    shutil.copytree(build_dir, changed)
    with (changed / "outpost_node" / "node.mpy").open("ab") as f:
        f.write(b"\0")
    result = runner.invoke(app, [*flash(changed, source), "--dry-run"], env=ENV)
    assert result.exit_code == 1
    assert "node.mpy does not match its manifest" in result.output
    assert "mpremote" not in result.output


def test_flash_refuses_a_build_older_than_the_source(source: Path, build_dir: Path, tmp_path: Path) -> None:
    newer = tmp_path / "firmware"
    shutil.copytree(source, newer)
    with (newer / "outpost_node" / "door.py").open("a") as f:
        f.write("\n# a later fix\n")
    result = runner.invoke(app, [*flash(build_dir, newer), "--dry-run"], env=ENV)
    assert result.exit_code == 1
    assert "older than the firmware source (outpost_node/door.py changed)" in result.output


def test_flash_without_a_build_says_to_build_first(source: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, [*flash(tmp_path / "nothing", source), "--dry-run"], env=ENV)
    assert result.exit_code == 1
    assert "run `outpost firmware build` first" in result.output


def test_flash_to_a_port_that_does_not_exist_fails_clearly(source: Path, build_dir: Path, tmp_path: Path) -> None:
    port = str(tmp_path / "ttyUSB9")
    result = runner.invoke(app, [*flash(build_dir, source), "--port", port], env=ENV)
    assert result.exit_code == 1
    assert f"error: no board on {port}: the port does not exist" in result.output
    assert "Traceback" not in result.output


def test_check_on_a_port_that_does_not_exist_fails_clearly(tmp_path: Path) -> None:
    port = str(tmp_path / "ttyUSB9")
    result = runner.invoke(app, ["firmware", "check", "--port", port])
    assert result.exit_code == 1
    assert f"error: no board on {port}: the port does not exist" in result.output


def test_the_technician_guide_lists_every_setting_and_who_may_change_it() -> None:
    rules = load_settings_rules(FIRMWARE_DIR)
    section = DOC.read_text().split("settings (config.json)\n", 1)[1].split("\n## ", 1)[0]
    rows = {match.group(1): match.group(0) for match in re.finditer(r"^\| `(\w+)` \|.*\|$", section, re.MULTILINE)}
    assert sorted(rows) == sorted(rules.spec)
    for name, row in rows.items():
        who_may_change = row.split(" | ")[3]
        assert (who_may_change == "gateway or flashing") == (name in rules.remote), row
        default = rules.spec[name][1]
        if default not in (None, ""):
            assert f"`{json.dumps(default)}`" in row, row
