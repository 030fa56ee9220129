"""Gateway settings: production by default, strict about unknown keys and production credentials, keys and TLS, lax
about locally typed numbers."""

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from edge.errors import EdgeConfigError, EdgeError
from edge.settings import BrokerSettings, EdgeSettings
from protocol.gateway_config import DeviceKind, DeviceSpec, GatewayConfig
from protocol.mqtt_tls import MqttTlsSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("OUTPOST_EDGE_"):
            monkeypatch.delenv(name)


def development(**values: Any) -> EdgeSettings:
    """Development settings of gw-01 in lakeside, with ``values`` on top."""
    return EdgeSettings(village_id="lakeside", gateway_id="gw-01", environment="development", **values)


PRODUCTION_BROKER = BrokerSettings(
    host="broker.county.example",
    port=8883,
    username="gw-01",
    password=SecretStr("pw"),
    client_id="gw-01-6f1c2a9be0d34c77",
    tls=MqttTlsSettings(ca_file=Path("/etc/outpost/county-ca.pem")),
)


def production(**values: Any) -> EdgeSettings:
    """Production settings of gw-01 in lakeside (credentials, TLS, the signing key), with ``values`` on top."""
    settings: dict[str, Any] = {"broker": PRODUCTION_BROKER, "config_signing_key": Path("/etc/outpost/signing.pem")}
    return EdgeSettings(village_id="lakeside", gateway_id="gw-01", **(settings | values))


def test_production_is_the_default() -> None:
    with pytest.raises(ValidationError, match="production gateways need"):
        EdgeSettings(village_id="lakeside", gateway_id="gw-01")


def test_minimal_development_settings_take_the_defaults() -> None:
    settings = development()

    assert settings.environment == "development"
    assert settings.broker == BrokerSettings()
    assert settings.config == GatewayConfig()
    assert settings.devices == []
    assert settings.buffer_max_bytes == 64 * 1024 * 1024


def test_identity_is_required() -> None:
    with pytest.raises(ValidationError, match="village_id"):
        EdgeSettings(gateway_id="gw-01")


@pytest.mark.parametrize(("village_id", "gateway_id"), [("Lakeside", "gw-01"), ("lakeside", "gw/01"), ("", "gw")])
def test_ids_must_be_topic_safe(village_id: str, gateway_id: str) -> None:
    with pytest.raises(ValidationError):
        EdgeSettings(village_id=village_id, gateway_id=gateway_id, environment="development")


def test_unknown_top_level_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="gatway_id"):
        development(gatway_id="typo")


@pytest.mark.parametrize(
    "values",
    [
        {"broker": {"hostname": "broker.local"}},
        {"config": {"heartbeat_s": 5}},
        {"devices": [{"kind": "panic_button", "id": "panic-1", "pin": 17}]},
    ],
    ids=["broker", "config", "device"],
)
def test_unknown_nested_keys_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        development(**values)


@pytest.mark.parametrize(
    "broker",
    [BrokerSettings(), BrokerSettings(username="gw-01"), BrokerSettings(password=SecretStr("pw"))],
    ids=["none", "user-only", "password-only"],
)
def test_production_requires_broker_credentials(broker: BrokerSettings) -> None:
    with pytest.raises(ValidationError, match=r"broker\.username and broker\.password"):
        production(broker=broker)


def test_production_with_credentials_tls_and_the_key_is_accepted() -> None:
    settings = production()

    assert settings.broker.password is not None
    assert settings.broker.password.get_secret_value() == "pw"
    assert "pw" not in repr(settings)


def test_development_needs_no_credentials() -> None:
    assert development().broker.username is None


def test_production_requires_the_config_signing_key() -> None:
    with pytest.raises(ValidationError, match="production gateways need config_signing_key"):
        production(config_signing_key=None)


@pytest.mark.parametrize("setting", ["broker", "local_broker"])
def test_production_reaches_a_broker_off_this_host_over_tls_only(setting: str) -> None:
    plain = PRODUCTION_BROKER.model_copy(update={"tls": None})

    with pytest.raises(ValidationError, match=f"set {setting}.tls"):
        production(**{setting: plain})


@pytest.mark.parametrize("setting", ["broker", "local_broker"])
def test_production_checks_the_broker_certificate_names_its_host(setting: str) -> None:
    tls = MqttTlsSettings(ca_file=Path("/etc/outpost/county-ca.pem"), check_hostname=False)

    with pytest.raises(ValidationError, match=f"remove {setting}.tls.check_hostname"):
        production(**{setting: PRODUCTION_BROKER.model_copy(update={"tls": tls})})


def test_production_village_broker_on_the_gateway_itself_needs_no_tls() -> None:
    local = BrokerSettings(host="127.0.0.1", username="gw-01", password=SecretStr("local"))

    assert production(local_broker=local).local_broker == local


def test_development_needs_no_config_signing_key() -> None:
    assert development().config_signing_key is None


def test_the_config_signing_key_is_a_path_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPOST_EDGE_VILLAGE_ID", "lakeside")
    monkeypatch.setenv("OUTPOST_EDGE_GATEWAY_ID", "gw-01")
    monkeypatch.setenv("OUTPOST_EDGE_ENVIRONMENT", "development")
    monkeypatch.setenv("OUTPOST_EDGE_CONFIG_SIGNING_KEY", "/etc/outpost/config-signing.pem")

    assert EdgeSettings.load().config_signing_key == Path("/etc/outpost/config-signing.pem")


def test_duplicate_device_ids_are_refused() -> None:
    devices = [
        DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="dev-1"),
        DeviceSpec(kind=DeviceKind.DOOR_CONTACT, id="dev-1"),
    ]

    with pytest.raises(ValidationError, match="device ids must be unique"):
        development(devices=devices)


def test_the_buffer_bound_has_a_floor() -> None:
    with pytest.raises(ValidationError, match="buffer_max_bytes"):
        development(buffer_max_bytes=1024)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_reads_a_toml_file(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
village_id = "lakeside"
gateway_id = "gw-01"
environment = "production"
state_dir = "/var/lib/outpost"
config_signing_key = "/etc/outpost/config-signing.pem"

[broker]
host = "broker.county.example"
port = 8883
username = "gw-01"
password = "s3cret"
client_id = "gw-01-6f1c2a9be0d34c77"

[broker.tls]
ca_file = "/etc/outpost/county-ca.pem"

[config]
heartbeat_interval_s = 2
telemetry_interval_s = 1.5

[[devices]]
kind = "panic_button"
id = "panic-1"
grid_id = "grid-7"

[[devices]]
kind = "checkpoint_camera"
id = "camera-1"
params = { period_s = 2, per_minute = 12.5 }
""",
    )

    settings = EdgeSettings.load(path)

    assert settings.village_id == "lakeside"
    assert settings.environment == "production"
    assert settings.state_dir == Path("/var/lib/outpost")
    assert settings.config_signing_key == Path("/etc/outpost/config-signing.pem")
    assert settings.broker.host == "broker.county.example"
    assert settings.broker.port == 8883
    assert settings.config == GatewayConfig(
        heartbeat_interval_s=2.0, telemetry_interval_s=1.5, devices=settings.devices
    )
    assert settings.devices == [
        DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-1", grid_id="grid-7"),
        DeviceSpec(kind=DeviceKind.CHECKPOINT_CAMERA, id="camera-1", params={"period_s": 2.0, "per_minute": 12.5}),
    ]


def test_load_refuses_unknown_keys_in_the_file(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path, 'village_id = "lakeside"\ngateway_id = "gw-01"\nenvironment = "development"\nbrokers = 1\n'
    )

    with pytest.raises(ValidationError, match="brokers"):
        EdgeSettings.load(path)


def test_load_fills_what_the_file_leaves_out_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTPOST_EDGE_VILLAGE_ID", "riverside")
    monkeypatch.setenv("OUTPOST_EDGE_ENVIRONMENT", "development")
    path = write_toml(tmp_path, 'gateway_id = "gw-from-file"\n')

    settings = EdgeSettings.load(path)

    assert settings.village_id == "riverside"
    assert settings.gateway_id == "gw-from-file"


def test_the_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As a systemd drop-in (Environment=) or a container's environment expects.
    monkeypatch.setenv("OUTPOST_EDGE_GATEWAY_ID", "gw-from-env")
    monkeypatch.setenv("OUTPOST_EDGE_STATE_DIR", "/srv/outpost")
    path = write_toml(
        tmp_path,
        'village_id = "lakeside"\ngateway_id = "gw-from-file"\nenvironment = "development"\n'
        'state_dir = "/var/lib/outpost"\n',
    )

    settings = EdgeSettings.load(path)

    assert (settings.village_id, settings.gateway_id) == ("lakeside", "gw-from-env")
    assert settings.state_dir == Path("/srv/outpost")


def test_a_nested_variable_overrides_its_key_of_the_file_and_keeps_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OUTPOST_EDGE_BROKER__PORT", "1884")
    monkeypatch.setenv("OUTPOST_EDGE_CONFIG__HEARTBEAT_INTERVAL_S", "3")
    path = write_toml(
        tmp_path,
        """
village_id = "lakeside"
gateway_id = "gw-01"
environment = "development"

[broker]
host = "broker.county.example"
port = 8883
username = "gw-01"

[broker.tls]
ca_file = "/etc/outpost/county-ca.pem"

[config]
heartbeat_interval_s = 2
telemetry_interval_s = 1.5
""",
    )

    settings = EdgeSettings.load(path)

    assert (settings.broker.host, settings.broker.port, settings.broker.username) == (
        "broker.county.example",
        1884,
        "gw-01",
    )
    assert settings.broker.tls == MqttTlsSettings(ca_file=Path("/etc/outpost/county-ca.pem"))
    assert (settings.config.heartbeat_interval_s, settings.config.telemetry_interval_s) == (3.0, 1.5)


def test_keyword_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPOST_EDGE_GATEWAY_ID", "gw-from-env")
    monkeypatch.setenv("OUTPOST_EDGE_BROKER__PORT", "1884")

    settings = EdgeSettings(
        village_id="lakeside", gateway_id="gw-kw", environment="development", broker={"host": "broker.local"}
    )

    assert settings.gateway_id == "gw-kw"
    assert (settings.broker.host, settings.broker.port) == ("broker.local", 1884)


def test_what_neither_the_environment_nor_the_file_sets_keeps_its_default(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'village_id = "lakeside"\ngateway_id = "gw-01"\nenvironment = "development"\n')

    settings = EdgeSettings.load(path)

    assert settings.broker == BrokerSettings()
    assert settings.state_dir == Path("outpost-edge-state")


def test_a_file_is_read_for_its_own_load_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    EdgeSettings.load(
        write_toml(tmp_path, 'village_id = "lakeside"\ngateway_id = "gw-01"\nenvironment = "development"\n')
    )
    monkeypatch.setenv("OUTPOST_EDGE_ENVIRONMENT", "development")

    with pytest.raises(ValidationError, match="village_id"):
        EdgeSettings.load()


@pytest.mark.parametrize(
    ("variable", "closest"),
    [
        ("OUTPOST_EDGE_STAT_DIR", "OUTPOST_EDGE_STATE_DIR"),
        ("OUTPOST_EDGE_BROKER__HSOT", "OUTPOST_EDGE_BROKER__HOST"),
        ("OUTPOST_EDGE_LOCAL_BROKR__PASSWORD", "OUTPOST_EDGE_LOCAL_BROKER__PASSWORD"),
        ("OUTPOST_EDGE_CONFIG__HEARTBEAT_S", "OUTPOST_EDGE_CONFIG__HEARTBEAT_INTERVAL_S"),
        ("outpost_edge_stat_dir", "OUTPOST_EDGE_STATE_DIR"),  # read case-insensitively, so checked so
    ],
)
def test_an_environment_variable_naming_no_setting_stops_the_start_naming_it_and_the_closest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, closest: str
) -> None:
    monkeypatch.setenv(variable, "set-by-mistake")
    path = write_toml(tmp_path, 'village_id = "lakeside"\ngateway_id = "gw-01"\nenvironment = "development"\n')

    with pytest.raises(ValidationError) as caught:
        EdgeSettings.load(path)

    message = str(caught.value)
    assert variable in message
    assert f"did you mean {closest}?" in message
    assert "set-by-mistake" not in message  # a mistyped password stays out of the log


def test_every_unknown_variable_is_named_at_once_and_other_prefixes_are_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OUTPOST_EDGE_STAT_DIR", "/srv/outpost")
    monkeypatch.setenv("OUTPOST_EDGE_XYZZY", "1")
    monkeypatch.setenv("OUTPOST_EDGE_DEVICES__0__ID", "panic-1")  # a list's items have no names
    monkeypatch.setenv("OUTPOST_FLEET_DATABSE_URL", "1")
    monkeypatch.setenv("OUTPOST_EDGES", "1")

    with pytest.raises(ValidationError) as caught:
        development()

    assert [error["loc"] for error in caught.value.errors()] == [
        ("OUTPOST_EDGE_DEVICES__0__ID",),
        ("OUTPOST_EDGE_STAT_DIR",),
        ("OUTPOST_EDGE_XYZZY",),
    ]
    assert "no setting has a name like it" in str(caught.value)


def test_load_of_a_malformed_file_raises_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'village_id = "lakeside\ngateway_id = \n')

    with pytest.raises(EdgeConfigError, match=r"gateway\.toml") as caught:
        EdgeSettings.load(path)

    assert isinstance(caught.value, EdgeError)


def test_load_of_a_missing_file_raises_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(EdgeConfigError, match="cannot read"):
        EdgeSettings.load(tmp_path / "absent.toml")


def test_load_without_a_file_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPOST_EDGE_VILLAGE_ID", "lakeside")
    monkeypatch.setenv("OUTPOST_EDGE_GATEWAY_ID", "gw-01")
    monkeypatch.setenv("OUTPOST_EDGE_ENVIRONMENT", "development")
    monkeypatch.setenv("OUTPOST_EDGE_BROKER__PORT", "1884")
    monkeypatch.setenv("OUTPOST_EDGE_DEVICES", '[{"kind": "door_contact", "id": "door-1"}]')

    settings = EdgeSettings.load()

    assert (settings.village_id, settings.gateway_id) == ("lakeside", "gw-01")
    assert settings.broker.port == 1884
    assert settings.devices == [DeviceSpec(kind=DeviceKind.DOOR_CONTACT, id="door-1")]


def test_nested_config_from_environment_strings_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPOST_EDGE_VILLAGE_ID", "lakeside")
    monkeypatch.setenv("OUTPOST_EDGE_GATEWAY_ID", "gw-01")
    monkeypatch.setenv("OUTPOST_EDGE_ENVIRONMENT", "development")
    monkeypatch.setenv("OUTPOST_EDGE_CONFIG__HEARTBEAT_INTERVAL_S", "2")

    settings = EdgeSettings.load()

    assert settings.config.heartbeat_interval_s == 2.0
    assert settings.config.telemetry_interval_s == GatewayConfig().telemetry_interval_s


@pytest.mark.parametrize(
    ("name", "value"),
    [("OUTPOST_EDGE_CONFIG__HEARTBEAT_INTERVAL_S", "soon"), ("OUTPOST_EDGE_CONFIG__HEARTBEAT_INTERVAL_S", "0")],
)
def test_nested_config_from_the_environment_is_still_validated(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("OUTPOST_EDGE_VILLAGE_ID", "lakeside")
    monkeypatch.setenv("OUTPOST_EDGE_GATEWAY_ID", "gw-01")
    monkeypatch.setenv("OUTPOST_EDGE_ENVIRONMENT", "development")
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError, match="heartbeat_interval_s"):
        EdgeSettings.load()


def test_unknown_nested_config_keys_from_the_environment_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPOST_EDGE_VILLAGE_ID", "lakeside")
    monkeypatch.setenv("OUTPOST_EDGE_GATEWAY_ID", "gw-01")
    monkeypatch.setenv("OUTPOST_EDGE_ENVIRONMENT", "development")
    monkeypatch.setenv("OUTPOST_EDGE_CONFIG__HEARTBEAT_S", "2")

    with pytest.raises(ValidationError, match="OUTPOST_EDGE_CONFIG__HEARTBEAT_S"):
        EdgeSettings.load()
