"""The systemd unit runs this installation's ``outpost`` on absolute paths, and enrollment makes sure the unit's
user can read what it wrote, or says loudly what to run (and does not start an agent that could only fail).

The system's users and groups are simulated (``pwd``/``grp``) so that each case runs on any machine, and the
fleet is replaced by the grant it would send.
"""

import grp
import os
import pwd
import stat
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge.cli import app as gateway_cli
from edge.enrollment import enroll as enroll_module
from edge.enrollment.enroll import EnrollmentResult, EnrollOptions, enroll_gateway
from edge.enrollment.systemd import agent_command, unit_text
from protocol.config_signing import public_key_pem
from protocol.enrollment import EnrollmentGrant, EnrollmentRequest
from tests.edge.enrollment.test_enrollment_files import grant
from tests.signing_keys import SigningKeys

PUBLIC_PEM = public_key_pem(SigningKeys.generate().public)

runner = CliRunner()
REAL_GETGRNAM = grp.getgrnam
AGENT_UID = 4242


def exec_start(unit: str) -> str:
    (line,) = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    return line


def test_the_printed_unit_runs_the_outpost_of_this_installation() -> None:
    result = runner.invoke(gateway_cli, ["unit"])

    assert result.exit_code == 0, result.output
    outpost = Path(sys.executable).absolute().parent / "outpost"
    assert exec_start(result.stdout) == f"ExecStart={outpost} gateway run --config /etc/outpost/gateway.toml"
    assert "/opt/outpost" not in result.stdout


def test_the_printed_unit_takes_another_outpost_and_settings_file_as_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(gateway_cli, ["unit", "--executable", "venv/bin/outpost", "--config", "my etc/gw%1.toml"])

    assert result.exit_code == 0, result.output
    # systemd splits ExecStart= on blanks and expands % specifiers: the path is quoted and % doubled.
    expected = f'ExecStart={tmp_path}/venv/bin/outpost gateway run --config "{tmp_path}/my etc/gw%%1.toml"'
    assert exec_start(result.stdout) == expected


def test_without_an_outpost_beside_python_the_unit_runs_the_cli_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python3"))

    assert agent_command() == [str(tmp_path / "bin" / "python3"), "-m", "outpost_cli"]


def test_the_unit_takes_the_settings_group_and_only_the_groups_given() -> None:
    unit = unit_text(Path("/etc/outpost/gateway.toml"), Path("/var/lib/outpost"), group="gw", supplementary_groups=[])

    assert "\nUser=outpost\nGroup=gw\n" in unit
    assert "SupplementaryGroups" not in unit
    assert "SupplementaryGroups=video\n" in unit_text(Path("g.toml"), Path("s"), supplementary_groups=["video"])


# -- enrollment ------------------------------------------------------------------------------------------------


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The fleet answers every enrollment with :func:`grant`; systemd runs here, and the agent's starts are noted."""
    started: list[str] = []

    def request_enrollment(fleet_url: str, request: EnrollmentRequest, **_: object) -> EnrollmentGrant:
        return grant(**GRANTED)

    def start_agent(*, guarded: bool = False) -> None:
        started.append("outpost-gateway" + (" and its update guard" if guarded else ""))

    monkeypatch.setattr(enroll_module, "request_enrollment", request_enrollment)
    monkeypatch.setattr(enroll_module, "start_agent", start_agent)
    monkeypatch.setattr(enroll_module, "systemd_running", lambda: True)
    return started


GRANTED: dict[str, object] = {}
"""What the test's fleet adds to its grant (release keys, for a fleet that serves updates)."""


def system(monkeypatch: pytest.MonkeyPatch, *, agent_user: bool, groups: set[str]) -> None:
    """This system's users and groups: an ``outpost`` user or none; of the ``outpost`` group and the unit's
    supplementary groups, only ``groups`` (``outpost`` with our own gid, which files may be given without root)."""

    def getpwnam(name: str) -> pwd.struct_passwd:
        if name == "outpost" and agent_user:
            return pwd.struct_passwd(("outpost", "x", AGENT_UID, 65534, "", "/var/lib/outpost", "/bin/false"))
        raise KeyError(name)

    def getgrnam(name: str) -> grp.struct_group:
        if name in groups:
            return grp.struct_group((name, "x", os.getgid() if name == "outpost" else 40000 + len(name), []))
        if name in {"outpost", "gpio", "video", "dialout"}:
            raise KeyError(name)
        return REAL_GETGRNAM(name)

    monkeypatch.setattr(pwd, "getpwnam", getpwnam)
    monkeypatch.setattr(grp, "getgrnam", getgrnam)


def enroll(start: bool = True) -> EnrollmentResult:
    return enroll_gateway(
        EnrollOptions(
            fleet_url="https://fleet.county.example",
            token="oet_test",
            hostname="pi",
            config_dir=Path("etc-outpost"),  # relative, as a technician may type them
            state_dir=Path("state"),
            systemd_dir=Path("units"),
            start=start,
        )
    )


def test_enrollment_writes_absolute_paths_whatever_directory_it_ran_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starts: list[str]
) -> None:
    system(monkeypatch, agent_user=True, groups={"outpost", "video", "dialout"})
    monkeypatch.chdir(tmp_path)

    result = enroll(start=False)

    settings_file = tmp_path / "etc-outpost" / "gateway.toml"
    assert result.settings_file == settings_file
    assert result.unit_file == tmp_path / "units" / "outpost-gateway.service"
    settings = tomllib.loads(settings_file.read_text())
    assert settings["state_dir"] == str(tmp_path / "state")
    assert settings["broker"]["tls"]["ca_file"] == str(tmp_path / "etc-outpost" / "broker-ca.pem")
    assert settings["config_signing_key"] == str(tmp_path / "etc-outpost" / "config-signing.pem")
    unit = result.unit_file.read_text()
    assert exec_start(unit).endswith(f" gateway run --config {settings_file}")
    assert f"ReadWritePaths=/var/lib/outpost {tmp_path / 'state'}\n" in unit
    assert starts == []


def test_the_agent_reads_the_settings_through_the_outpost_group_and_runs_with_the_groups_this_system_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starts: list[str]
) -> None:
    system(monkeypatch, agent_user=True, groups={"outpost", "video", "dialout"})
    monkeypatch.chdir(tmp_path)

    result = enroll()

    settings_file = tmp_path / "etc-outpost" / "gateway.toml"
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o640
    assert settings_file.stat().st_gid == os.getgid()
    assert stat.S_IMODE(settings_file.parent.stat().st_mode) == 0o750
    unit = (tmp_path / "units" / "outpost-gateway.service").read_text()
    assert "\nUser=outpost\nGroup=outpost\n" in unit
    assert "\nSupplementaryGroups=video dialout\n" in unit, "gpio does not exist here: systemd would refuse the unit"
    assert any("gpio" in notice for notice in result.notices)
    assert result.warnings == []
    assert result.started
    assert starts == ["outpost-gateway"]


def test_without_the_agents_user_enrollment_warns_what_to_run_and_does_not_start_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starts: list[str]
) -> None:
    system(monkeypatch, agent_user=False, groups={"gpio", "video", "dialout"})
    monkeypatch.chdir(tmp_path)

    result = enroll(start=True)

    settings_file = tmp_path / "etc-outpost" / "gateway.toml"
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600, "nobody else's to read: there is no agent group"
    assert not result.started
    unreadable, not_started = result.warnings
    assert "there is no user 'outpost'" in unreadable
    assert "sudo adduser --system --group --home /var/lib/outpost --no-create-home outpost" in unreadable
    assert f"sudo chgrp outpost {settings_file.parent} {settings_file}" in unreadable
    assert f"sudo chmod 0640 {settings_file}" in unreadable
    assert "not started" in not_started
    assert starts == []


def test_without_an_outpost_group_the_settings_stay_the_owners_and_enrollment_says_how_to_share_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starts: list[str]
) -> None:
    # Never the agent user's primary group instead: made without --group, that is nogroup, which others share.
    system(monkeypatch, agent_user=True, groups={"gpio", "video", "dialout"})
    monkeypatch.chdir(tmp_path)

    result = enroll(start=True)

    settings_file = tmp_path / "etc-outpost" / "gateway.toml"
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600
    assert not result.started
    assert starts == []
    unreadable, _ = result.warnings
    assert "which cannot read them: it will not start" in unreadable
    assert "sudo addgroup --system outpost && sudo adduser outpost outpost && sudo chgrp outpost" in unreadable


@pytest.mark.usefixtures("starts")
def test_settings_kept_from_the_agents_user_are_a_loud_warning_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system(monkeypatch, agent_user=True, groups={"gpio", "video", "dialout"})
    monkeypatch.chdir(tmp_path)
    arguments = [
        "enroll", "--fleet", "https://fleet.county.example", "--token", "oet_test", "--config-dir", "etc",
        "--state-dir", "state", "--systemd-dir", "units", "--group", "",
    ]  # fmt: skip

    result = runner.invoke(gateway_cli, arguments)

    assert result.exit_code == 0, result.output
    assert "WARNING: the settings are readable by their owner only" in result.stderr
    assert "which cannot read them: it will not start" in result.stderr
    assert f"sudo chgrp outpost {tmp_path / 'etc'} {tmp_path / 'etc' / 'gateway.toml'}" in result.stderr


def test_an_agent_in_update_slots_is_enrolled_for_updates_with_its_guard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starts: list[str]
) -> None:
    system(monkeypatch, agent_user=True, groups={"outpost", "video", "dialout"})
    root = tmp_path / "opt" / "outpost"
    (root / "slots" / "a" / "bin").mkdir(parents=True)
    (root / "current").symlink_to("slots/a")
    monkeypatch.setattr(sys, "prefix", str(root / "slots" / "a"))
    monkeypatch.setitem(GRANTED, "release_keys_pem", PUBLIC_PEM)
    monkeypatch.chdir(tmp_path)

    enroll_gateway(
        EnrollOptions(
            fleet_url="https://fleet.county.example/",
            token="oet_test",
            hostname="pi",
            config_dir=Path("etc-outpost"),
            state_dir=Path("state"),
            systemd_dir=Path("units"),
            guard_dir=Path("lib-outpost"),
            start=True,
        )
    )

    settings = tomllib.loads((tmp_path / "etc-outpost" / "gateway.toml").read_text())
    assert settings["updates"] == {
        "fleet_url": "https://fleet.county.example",
        "identity_key": str(tmp_path / "etc-outpost" / "gateway-key.pem"),
        "release_keys": str(tmp_path / "etc-outpost" / "release-keys.pem"),
    }
    assert (tmp_path / "etc-outpost" / "release-keys.pem").read_text() == PUBLIC_PEM
    key = (tmp_path / "etc-outpost" / "gateway-key.pem").stat()
    assert stat.S_IMODE(key.st_mode) == 0o640  # the agent signs its downloads with it
    unit = (tmp_path / "units" / "outpost-gateway.service").read_text()
    guard = tmp_path / "lib-outpost" / "outpost-update-guard"
    assert f"ExecStartPre=-+{guard} start {root}\n" in unit
    assert f"ExecStart={root}/current/bin/outpost gateway run" in unit
    assert f"ReadWritePaths=/var/lib/outpost {tmp_path / 'state'} -{root}\n" in unit
    assert os.access(guard, os.X_OK)
    assert f"ExecStart={guard} check {root}\n" in (tmp_path / "units" / "outpost-update-guard.service").read_text()
    assert (tmp_path / "units" / "outpost-update-guard.timer").is_file()
    assert starts == ["outpost-gateway and its update guard"]
