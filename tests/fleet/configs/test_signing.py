"""The fleet's config-signing key: kept across restarts in development, required from a file in production."""

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from fleet.configs.signing import ConfigSigner, ConfigSigningKeyError, development_key_path
from fleet.settings import FleetSettings
from protocol.config_signing import load_public_key, load_trusted_keys, private_key_pem, verify_config
from protocol.gateway_config import GatewayConfig
from tests.signing_keys import SigningKeys


def _settings(tmp_path: Path, **values: Any) -> FleetSettings:
    return FleetSettings(
        environment="development", database_url=f"sqlite+aiosqlite:///{tmp_path / 'db' / 'fleet.db'}", **values
    )


def test_development_generates_a_key_next_to_the_database_once_and_keeps_it(tmp_path: Path) -> None:
    first = ConfigSigner.from_settings(_settings(tmp_path))
    again = ConfigSigner.from_settings(_settings(tmp_path))

    key_file = tmp_path / "db" / "outpost-fleet-config-signing.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert again.key_id == first.key_id


def test_a_configured_key_file_signs_what_gateways_verify(tmp_path: Path) -> None:
    keys = SigningKeys.generate()
    key_file = tmp_path / "signing.pem"
    key_file.write_text(private_key_pem(keys.private, b"secret"), encoding="ascii")
    settings = _settings(tmp_path, configs={"signing_key_file": key_file, "signing_key_password": "secret"})

    signer = ConfigSigner.from_settings(settings)
    signature = signer.sign("shiqiao", "gw-1", 3, GatewayConfig())

    assert signer.key_id == keys.key_id
    verify_config(load_public_key(signer.public_key_pem), "shiqiao", "gw-1", 3, GatewayConfig(), signature)
    assert not (tmp_path / "db").exists()  # nothing generated


@pytest.mark.parametrize("content", [None, "not a key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"])
def test_a_missing_or_unusable_key_file_stops_the_fleet_naming_it(tmp_path: Path, content: str | None) -> None:
    key_file = tmp_path / "signing.pem"
    if content is not None:
        key_file.write_text(content, encoding="ascii")

    with pytest.raises(ConfigSigningKeyError, match=r"signing\.pem"):
        ConfigSigner.from_settings(_settings(tmp_path, configs={"signing_key_file": key_file}))


def test_production_refuses_to_start_without_a_key_file() -> None:
    with pytest.raises(ValidationError, match=r"configs\.signing_key_file"):
        FleetSettings(environment="production")


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("sqlite+aiosqlite:////var/lib/outpost/fleet.db", Path("/var/lib/outpost/outpost-fleet-config-signing.pem")),
        ("sqlite+aiosqlite://", Path("outpost-fleet-config-signing.pem")),
        ("postgresql+asyncpg://fleet@db/outpost", Path("outpost-fleet-config-signing.pem")),
    ],
)
def test_the_development_key_lives_next_to_a_sqlite_database_else_in_the_working_directory(
    url: str, where: Path
) -> None:
    assert development_key_path(url) == where


def test_a_key_with_an_expiry_hands_gateways_a_key_file_that_says_so(tmp_path: Path) -> None:
    signer = ConfigSigner.from_settings(_settings(tmp_path, configs={"signing_key_not_after": "2099-01-01T00:00:00Z"}))

    [trusted] = load_trusted_keys(signer.public_key_pem)

    assert signer.public_key_pem.startswith("# not-after: 2099-01-01T00:00:00Z\n-----BEGIN PUBLIC KEY-----")
    assert (trusted.key_id, trusted.not_after_ms) == (signer.key_id, 4_070_908_800_000)


def test_the_fleet_refuses_to_start_with_its_key_expired(tmp_path: Path) -> None:
    with pytest.raises(ConfigSigningKeyError, match="expired at 2020-01-01T00:00:00Z"):
        ConfigSigner.from_settings(_settings(tmp_path, configs={"signing_key_not_after": "2020-01-01T00:00:00Z"}))


def test_the_fleet_refuses_to_sign_with_a_key_it_revoked(tmp_path: Path) -> None:
    key_id = ConfigSigner.from_settings(_settings(tmp_path)).key_id

    with pytest.raises(ConfigSigningKeyError, match="revoked_key_ids"):
        ConfigSigner.from_settings(_settings(tmp_path, configs={"revoked_key_ids": [key_id]}))


def test_the_fleet_warns_a_month_before_its_key_expires() -> None:
    signer = ConfigSigner(SigningKeys.generate().private, not_after_ms=100 * 86_400_000)

    assert signer.expiry_warning(69 * 86_400_000) is None
    warning = signer.expiry_warning(71 * 86_400_000)
    assert warning is not None
    assert f"the config-signing key {signer.key_id} expires at 1970-04-11T00:00:00Z" in warning
