"""Fleet settings: production is the default and refuses development secrets and links without TLS; development
must be asked for and stays on loopback; unknown keys are refused everywhere."""

import os
from typing import Any

import pytest
from pydantic import ValidationError

from fleet.alerts.rules.layers import base_rules
from fleet.errors import AlertRulesSettingsError
from fleet.settings import DEVELOPMENT_GOVERNANCE_TOKEN, FleetSettings
from protocol.codec import DEFAULT_MAX_PAYLOAD_BYTES
from protocol.messages import AlertKind, Severity


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("OUTPOST_FLEET_"):
            monkeypatch.delenv(name)


LOGINS = {"username": "f", "password": "p", "downlink_username": "fd", "downlink_password": "pd"}


def production(**overrides: Any) -> dict[str, Any]:
    """Complete production settings, with ``overrides`` applied on top."""
    values: dict[str, Any] = {
        "environment": "production",
        "broker": {
            "host": "broker.county.example",
            "username": "fleet",
            "password": "broker-secret",
            "downlink_username": "fleet-downlink",
            "downlink_password": "downlink-secret",
            "tls": {"ca_file": "/etc/outpost/county-ca.pem"},
        },
        "governance": {
            "url": "https://platform.county.example",
            "token": "platform-secret",
            "signing_secrets": ["county-signing-secret"],
        },
        "timeseries": {"influx": {"url": "https://tsdb.county.example", "token": "influx-secret"}},
        "api": {"admin_token": "county-admin-secret"},
        "enrollment": {"broker": {"host": "broker.county.example", "port": 8883, "tls": True}},
        "configs": {"signing_key_file": "/etc/outpost/config-signing.pem"},
    }
    values.update(overrides)
    return values


def test_production_is_the_default() -> None:
    with pytest.raises(ValidationError, match="production needs explicit settings for"):
        FleetSettings()


def test_development_must_be_asked_for_and_then_needs_nothing() -> None:
    settings = FleetSettings(environment="development")

    assert settings.environment == "development"
    assert settings.governance.url is None
    assert settings.governance.token.get_secret_value() == DEVELOPMENT_GOVERNANCE_TOKEN
    assert settings.timeseries.influx is None
    assert settings.max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES


def test_complete_production_settings_are_accepted() -> None:
    settings = FleetSettings(**production())

    assert settings.environment == "production"
    assert settings.timeseries.influx is not None
    assert str(settings.timeseries.influx.url) == "https://tsdb.county.example/"


def test_production_with_nothing_set_lists_everything_missing() -> None:
    with pytest.raises(ValidationError) as caught:
        FleetSettings(environment="production")

    message = str(caught.value)
    for missing in (
        "broker.username/broker.password",
        "governance.url",
        "governance.token",
        "timeseries.influx",
        "api.admin_token",
    ):
        assert missing in message


@pytest.mark.parametrize(
    ("overrides", "missing"),
    [
        ({"broker": {"username": "fleet"}}, "broker.username/broker.password"),
        ({"broker": {"password": "broker-secret"}}, "broker.username/broker.password"),
        ({"governance": {"token": "platform-secret"}}, "governance.url"),
        ({"governance": {"url": "https://platform.county.example"}}, "governance.token"),
        (
            {"governance": {"url": "https://platform.county.example", "token": "platform-secret"}},
            "governance.signing_secrets",
        ),
        (
            {"governance": {"url": "https://platform.county.example", "token": DEVELOPMENT_GOVERNANCE_TOKEN}},
            "governance.token",
        ),
        ({"timeseries": {}}, "timeseries.influx"),
    ],
    ids=["no-broker-password", "no-broker-user", "no-governance-url", "default-token", "default-signing-secret",
         "explicit-default-token", "no-influx"],
)  # fmt: skip
def test_production_refuses_defaults_and_missing_secrets(overrides: dict[str, Any], missing: str) -> None:
    with pytest.raises(ValidationError, match="production needs explicit settings for") as caught:
        FleetSettings(**production(**overrides))

    assert missing in str(caught.value)


@pytest.mark.parametrize(
    "values",
    [
        {"databse_url": "sqlite+aiosqlite:///x.db"},
        {"broker": {"hostname": "broker"}},
        {"api": {"bind": "0.0.0.0"}},
        {"timeseries": {"influx": {"url": "https://tsdb", "token": "t", "database": "x"}}},
        {"timeseries": {"batch_size": 10}},
        {"governance": {"retries": 3}},
        {"presence": {"missed": 2}},
    ],
    ids=["top-level", "broker", "api", "influx", "timeseries", "governance", "presence"],
)
def test_unknown_keys_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        FleetSettings(environment="development", **values)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "fleet.county.example", "::"])
def test_development_refuses_to_listen_beyond_loopback(host: str) -> None:
    with pytest.raises(ValidationError, match="development mode listens on loopback only"):
        FleetSettings(environment="development", api={"host": host})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "localhost", "::1"])
def test_development_listens_on_loopback(host: str) -> None:
    assert FleetSettings(environment="development", api={"host": host}).api.host == host


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"broker": LOGINS | {"host": "broker.county.example"}}, "broker (set broker.tls)"),
        (
            {"broker": LOGINS | {"host": "b.county", "tls": {"ca_file": "/ca.pem", "check_hostname": False}}},
            "broker.tls.check_hostname",
        ),
        ({"api": {"host": "0.0.0.0", "admin_token": "county-admin-secret"}}, "api (set api.tls_cert_file"),
        (
            {"governance": {"url": "http://platform.county.example", "token": "t", "signing_secrets": ["s"]}},
            "governance.url",
        ),
        (
            {"governance": {"url": "https://platform.county.example", "token": "t", "signing_secrets": ["s"],
                            "verify_tls": False}},
            "governance.verify_tls",
        ),
        ({"webhook": {"url": "http://hooks.county.example", "secret": "s"}}, "webhook.url"),
        (
            {"webhook": {"url": "https://hooks.county.example", "secret": "s", "verify_tls": False}},
            "webhook.verify_tls",
        ),
        ({"timeseries": {"influx": {"url": "http://tsdb.county.example", "token": "t"}}}, "timeseries.influx.url"),
        ({"enrollment": {"broker": {"host": "broker.county.example"}}}, "enrollment.broker"),
        (
            {"enrollment": {"broker": {"tls": True}, "public_url": "http://fleet.county.example"}},
            "enrollment.public_url",
        ),
    ],
    ids=["broker-plain", "broker-no-hostname-check", "api-plain", "governance-http", "governance-unverified",
         "webhook-http", "webhook-unverified", "influx-http", "gateways-plain", "public-url-http"],
)  # fmt: skip
def test_production_refuses_every_link_without_verified_tls(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match="production needs") as caught:
        FleetSettings(**production(**overrides))

    assert named in str(caught.value)


def test_production_links_to_this_host_need_no_tls() -> None:
    """A broker, time-series server or TLS proxy beside the fleet: the link never leaves the machine."""
    settings = FleetSettings(
        **production(
            broker={
                "host": "127.0.0.1",
                "username": "fleet",
                "password": "broker-secret",
                "downlink_username": "fleet-downlink",
                "downlink_password": "downlink-secret",
            },
            timeseries={"influx": {"url": "http://127.0.0.1:8428", "token": "t"}},
            api={"host": "127.0.0.1", "admin_token": "county-admin-secret"},
        )
    )

    assert settings.broker.tls is None


def test_nested_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPOST_FLEET_ENVIRONMENT", "development")
    monkeypatch.setenv("OUTPOST_FLEET_BROKER__HOST", "broker.county.example")
    monkeypatch.setenv("OUTPOST_FLEET_PRESENCE__MISSED_HEARTBEATS", "4")
    monkeypatch.setenv("OUTPOST_FLEET_GOVERNANCE__URL", "https://platform.county.example")

    settings = FleetSettings()

    assert settings.broker.host == "broker.county.example"
    assert settings.presence.missed_heartbeats == 4.0
    assert str(settings.governance.url) == "https://platform.county.example/"


def test_production_from_the_environment_refuses_the_default_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPOST_FLEET_ENVIRONMENT", "production")
    monkeypatch.setenv("OUTPOST_FLEET_BROKER__USERNAME", "fleet")
    monkeypatch.setenv("OUTPOST_FLEET_BROKER__PASSWORD", "broker-secret")
    monkeypatch.setenv("OUTPOST_FLEET_GOVERNANCE__URL", "https://platform.county.example")
    monkeypatch.setenv("OUTPOST_FLEET_TIMESERIES__INFLUX__URL", "https://tsdb.county.example")
    monkeypatch.setenv("OUTPOST_FLEET_TIMESERIES__INFLUX__TOKEN", "influx-secret")

    with pytest.raises(ValidationError, match=r"governance\.token"):
        FleetSettings()


@pytest.mark.parametrize(
    ("variable", "closest"),
    [
        ("OUTPOST_FLEET_DATABSE_URL", "OUTPOST_FLEET_DATABASE_URL"),
        ("OUTPOST_FLEET_BROKER__HSOT", "OUTPOST_FLEET_BROKER__HOST"),
        ("OUTPOST_FLEET_BROKR__HOST", "OUTPOST_FLEET_BROKER__HOST"),
        ("OUTPOST_FLEET_TIMESERIES__INFLUX__TOKN", "OUTPOST_FLEET_TIMESERIES__INFLUX__TOKEN"),
        ("outpost_fleet_databse_url", "OUTPOST_FLEET_DATABASE_URL"),  # read case-insensitively, so checked so
    ],
)
def test_an_environment_variable_naming_no_setting_is_refused_with_the_closest_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, closest: str
) -> None:
    monkeypatch.setenv(variable, "set-by-mistake")

    with pytest.raises(ValidationError) as caught:
        FleetSettings(environment="development")

    message = str(caught.value)
    assert variable in message
    assert f"did you mean {closest}?" in message
    assert "set-by-mistake" not in message  # a mistyped password stays out of the log


def test_every_unknown_environment_variable_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPOST_FLEET_ENVIRONMENT", "development")
    monkeypatch.setenv("OUTPOST_FLEET_DATABSE_URL", "sqlite+aiosqlite:///fleet.db")
    monkeypatch.setenv("OUTPOST_FLEET_BROKER__HSOT", "broker.county.example")
    monkeypatch.setenv("OUTPOST_FLEET_XYZZY", "1")
    monkeypatch.setenv("OUTPOST_FLEET_", "1")
    monkeypatch.setenv("OUTPOST_FLEET_BROKER__PORT__NUMBER", "1883")  # nothing lies below a plain value

    with pytest.raises(ValidationError) as caught:
        FleetSettings()

    assert [error["loc"] for error in caught.value.errors()] == [
        ("OUTPOST_FLEET_",),
        ("OUTPOST_FLEET_BROKER__HSOT",),
        ("OUTPOST_FLEET_BROKER__PORT__NUMBER",),
        ("OUTPOST_FLEET_DATABSE_URL",),
        ("OUTPOST_FLEET_XYZZY",),
    ]
    assert {error["type"] for error in caught.value.errors()} == {"unknown_environment_variable"}


def test_variables_of_other_prefixes_and_the_cli_clients_url_are_no_concern_of_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OUTPOST_FLEET_URL", "http://127.0.0.1:8080")  # fleet/cli/client.py's
    monkeypatch.setenv("OUTPOST_FLEETS", "1")
    monkeypatch.setenv("OUTPOST_EDGE_DATABSE_URL", "1")
    monkeypatch.setenv("OUTPOST_TOKEN", "outpost-dev-admin")

    assert FleetSettings(environment="development").environment == "development"


def test_whole_sections_and_keys_of_mappings_are_known_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPOST_FLEET_BROKER", '{"host": "broker.county.example"}')
    monkeypatch.setenv("OUTPOST_FLEET_BROKER__TLS__CA_FILE", "/etc/outpost/county-ca.pem")
    monkeypatch.setenv("OUTPOST_FLEET_ALERTS__RULES__ACK_DEADLINE_S__CRITICAL", "120")
    monkeypatch.setenv("OUTPOST_FLEET_ALERTS__RULES__KINDS__PANIC__HOLD_OFF_S", "2")

    settings = FleetSettings(environment="development")

    assert settings.broker.host == "broker.county.example"
    assert settings.broker.tls is not None
    assert str(settings.broker.tls.ca_file) == "/etc/outpost/county-ca.pem"
    rules = base_rules(settings.alerts.rules)
    assert rules.ack_deadline_s[Severity.CRITICAL] == 120.0
    assert rules.kinds[AlertKind.PANIC].hold_off_s == 2.0


def test_keyword_arguments_win_over_the_environment_which_wins_over_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OUTPOST_FLEET_API__PORT", "9000")
    monkeypatch.setenv("OUTPOST_FLEET_BROKER__PORT", "1884")

    settings = FleetSettings(environment="development", api={"port": 9100})

    assert settings.api.port == 9100
    assert settings.broker.port == 1884
    assert settings.broker.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"max_payload_bytes": 1023}, "max_payload_bytes"),
        ({"presence": {"missed_heartbeats": 0.5}}, "missed_heartbeats"),
        ({"delivery": {"max_attempts": 0}}, "max_attempts"),
        ({"delivery": {"retry_base_s": 10, "retry_cap_s": 5}}, "retry_cap_s"),
        ({"governance": {"url": "ftp://platform"}}, "url"),
        ({"timeseries": {"batch_points": 0}}, "batch_points"),
    ],
)
def test_out_of_range_values_are_refused(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        FleetSettings(environment="development", **values)


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    settings = FleetSettings(**production())

    text = repr(settings)

    assert "broker-secret" not in text
    assert "platform-secret" not in text
    assert "influx-secret" not in text
    assert "county-admin-secret" not in text
    assert "county-signing-secret" not in text


def test_base_alert_rules_that_are_not_valid_stop_the_fleet_naming_where() -> None:
    with pytest.raises(AlertRulesSettingsError, match=r"alerts\.rules: kinds\.panik\."):
        base_rules({"kinds": {"panik": {"hold_off_s": 2}}})
