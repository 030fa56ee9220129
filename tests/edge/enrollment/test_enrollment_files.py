"""What ``outpost gateway enroll`` writes: modes from the first byte, backups of what it replaces, settings the
agent loads in production, the unit with this gateway's paths, and the enrollment code a QR code holds."""

import os
import stat
import tomllib
from pathlib import Path

import pytest

from edge.enrollment.client import enroll_url
from edge.enrollment.files import Access, back_up, prepare_directory, write_atomically
from edge.enrollment.gateway_toml import SettingsPaths, render_settings
from edge.enrollment.systemd import unit_text
from edge.errors import EnrollmentError
from edge.settings import EdgeSettings
from protocol.enrollment import BrokerGrant, EnrollmentGrant, enrollment_code, parse_enrollment_code
from protocol.errors import EnrollmentCodeError
from protocol.gateway_config import DeviceKind, DeviceSpec, DoorPolicy, GatewayConfig

PEM = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def grant(**changes: object) -> EnrollmentGrant:
    values: dict[str, object] = {
        "gateway_id": "gw-shiqiao-1",
        "village_id": "shiqiao",
        "replaced": False,
        "broker": BrokerGrant(
            host="broker.county.example",
            port=8883,
            tls=True,
            ca_pem=PEM,
            username="gw-shiqiao-1",
            password='p"w\\d#',
            client_id="gw-shiqiao-1-0a1b2c3d4e5f6a7b",
        ),
        "config_signing_key_pem": PEM,
        "config": GatewayConfig(
            heartbeat_interval_s=15.0,
            devices=[
                DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-clinic", grid_id="g1", params={"pin": 17}),
                DeviceSpec(kind=DeviceKind.DOOR_CONTACT, id="door-1", door=DoorPolicy(held_open_s=30.0)),
            ],
        ),
    }
    values.update(changes)
    return EnrollmentGrant.model_validate(values)


def test_secret_files_are_owner_only_from_the_first_byte_and_public_ones_readable(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # a careless umask must not widen anything
    try:
        directory = tmp_path / "etc-outpost"
        prepare_directory(directory, Access())
        secret = write_atomically(directory / "gateway.toml", "password = 'x'\n", 0o600)
        public = write_atomically(directory / "broker-ca.pem", PEM, 0o644)
        write_atomically(directory / "gateway.toml", "password = 'y'\n", 0o600)  # replaced, not appended
    finally:
        os.umask(old_umask)

    assert (mode(directory), mode(secret), mode(public)) == (0o700, 0o600, 0o644)
    assert secret.read_text() == "password = 'y'\n"
    assert sorted(path.name for path in directory.iterdir()) == ["broker-ca.pem", "gateway.toml"]  # no leftovers


def test_the_agents_group_may_read_the_settings_but_not_change_them(tmp_path: Path) -> None:
    access = Access(gid=os.getgid())
    prepare_directory(tmp_path / "conf", access)
    settings = write_atomically(tmp_path / "conf" / "gateway.toml", "x = 1\n", access.settings_mode, access.gid)

    assert (mode(tmp_path / "conf"), mode(settings)) == (0o750, 0o640)
    assert settings.stat().st_gid == os.getgid()
    with pytest.raises(EnrollmentError, match="no group"):
        Access.for_group("no-such-group-outpost-test")
    assert Access.for_group("") == Access()


def test_re_enrolling_moves_the_previous_files_into_a_private_backup(tmp_path: Path) -> None:
    previous = write_atomically(tmp_path / "gateway.toml", "old\n", 0o600)
    key = write_atomically(tmp_path / "gateway-key.pem", "old key\n", 0o600)

    backup = back_up([previous, key, tmp_path / "config-signing.pem"], tmp_path)

    assert backup is not None
    assert mode(backup) == 0o700
    assert (backup / "gateway.toml").read_text() == "old\n"
    assert mode(backup / "gateway-key.pem") == 0o600
    assert not previous.exists()
    assert back_up([previous], tmp_path) is None  # nothing left to keep


def test_the_written_settings_run_the_agent_in_production(tmp_path: Path) -> None:
    paths = SettingsPaths(tmp_path / "state", tmp_path / "broker-ca.pem", tmp_path / "config-signing.pem")
    given = grant()
    settings_file = tmp_path / "gateway.toml"
    settings_file.write_text(render_settings(given, paths, header="enrolled\nin a test"))

    settings = EdgeSettings.load(settings_file)

    assert settings.environment == "production"
    assert (settings.village_id, settings.gateway_id) == ("shiqiao", "gw-shiqiao-1")
    assert settings.broker.username == "gw-shiqiao-1"
    assert settings.broker.client_id == "gw-shiqiao-1-0a1b2c3d4e5f6a7b"
    assert settings.broker.password is not None
    assert settings.broker.password.get_secret_value() == 'p"w\\d#'
    assert settings.broker.tls is not None
    assert settings.broker.tls.ca_file == paths.broker_ca
    assert settings.config_signing_key == paths.config_signing_key
    assert settings.state_dir == paths.state_dir
    assert settings.config == given.config


def test_a_grant_without_credentials_or_signing_key_gives_development_settings(tmp_path: Path) -> None:
    bare = grant(broker=BrokerGrant(host="127.0.0.1", port=1883, tls=False), config_signing_key_pem=None, config=None)
    text = render_settings(bare, SettingsPaths(tmp_path, None, None), header="dev")

    assert 'environment = "development"' in text
    assert "password" not in text


def test_a_config_that_toml_cannot_hold_is_refused_not_changed(tmp_path: Path) -> None:
    never = GatewayConfig(
        devices=[DeviceSpec(kind=DeviceKind.DOOR_CONTACT, id="door-1", door=DoorPolicy(held_open_s=None))]
    )
    paths = SettingsPaths(tmp_path, tmp_path / "ca.pem", tmp_path / "k.pem")
    with pytest.raises(EnrollmentError, match="cannot be written as TOML"):
        render_settings(grant(config=never), paths, header="")


def test_the_unit_runs_this_gateways_settings(tmp_path: Path) -> None:
    text = unit_text(tmp_path / "gateway.toml", tmp_path / "state", Path("/srv/outpost/bin/outpost"))

    assert f"ExecStart=/srv/outpost/bin/outpost gateway run --config {tmp_path / 'gateway.toml'}" in text
    assert f"ReadWritePaths=/var/lib/outpost {tmp_path / 'state'}" in text
    assert "/etc/outpost/gateway.toml" not in text


def test_plain_http_is_refused_unless_asked_for() -> None:
    with pytest.raises(EnrollmentError, match="plain HTTP"):
        enroll_url("http://fleet.county.example", allow_http=False)
    assert enroll_url("http://127.0.0.1:8080/", allow_http=True) == "http://127.0.0.1:8080/enroll"
    assert enroll_url("https://fleet.county.example/api", allow_http=False) == "https://fleet.county.example/api/enroll"


def test_an_enrollment_code_carries_the_fleet_url_and_token() -> None:
    code = enrollment_code("https://fleet.county.example:8443/api", "oet_abc-_9")

    assert code.startswith("outpost-enroll:1?")
    parsed = parse_enrollment_code(f"  {code}\n")
    assert (parsed.fleet_url, parsed.token) == ("https://fleet.county.example:8443/api", "oet_abc-_9")
    for bad in (
        "https://fleet.example",
        "outpost-enroll:2?fleet=x&token=y",
        "outpost-enroll:1?token=oet_x",
        "outpost-enroll:1?fleet=ftp%3A%2F%2Fx&token=oet_x",
        "outpost-enroll:1?fleet=https%3A%2F%2Fx&token=opt_x",
    ):
        with pytest.raises(EnrollmentCodeError):
            parse_enrollment_code(bad)


def test_a_client_certificate_from_the_fleet_is_in_the_settings(tmp_path: Path) -> None:
    paths = SettingsPaths(
        tmp_path / "state", tmp_path / "ca.pem", tmp_path / "k.pem", tmp_path / "c.pem", tmp_path / "c.key"
    )

    tls = EdgeSettings(**tomllib.loads(render_settings(grant(), paths, header="x"))).broker.tls

    assert tls is not None
    assert (tls.cert_file, tls.key_file) == (tmp_path / "c.pem", tmp_path / "c.key")
