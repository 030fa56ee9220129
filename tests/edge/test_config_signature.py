"""The gateway's config-signing key: read at start-up from the file enrollment wrote, or its absence said out loud."""

import logging
import uuid
from functools import partial
from pathlib import Path

import pytest

from edge.adapters.registry import build_devices
from edge.agent import GatewayAgent
from edge.config_signature import ConfigSignatures
from edge.errors import EdgeConfigError
from edge.settings import EdgeSettings
from protocol.clock import utc_now_ms
from protocol.config_signing import private_key_pem, public_key_base64, public_key_pem
from protocol.gateway_config import GatewayConfig
from protocol.messages import ConfigDesired
from tests.signing_keys import SigningKeys

VILLAGE = "lakeside"
GATEWAY = "gw-01"
CONFIG = GatewayConfig(heartbeat_interval_s=20.0)


@pytest.fixture(scope="module")
def fleet_key() -> SigningKeys:
    return SigningKeys.generate()


def settings(tmp_path: Path, key_file: Path | None) -> EdgeSettings:
    return EdgeSettings(
        environment="development",
        village_id=VILLAGE,
        gateway_id=GATEWAY,
        state_dir=tmp_path / "state",
        config_signing_key=key_file,
    )


def test_the_key_enrollment_wrote_is_the_one_configs_must_verify_with(
    tmp_path: Path, fleet_key: SigningKeys, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = fleet_key.write_public_key(tmp_path / "etc" / "config-signing.pem")

    with caplog.at_level(logging.INFO, logger="edge.config_signature"):
        signatures = ConfigSignatures.from_settings(settings(tmp_path, key_file))

    assert signatures.key_ids == (fleet_key.key_id,)
    assert f"signed by the fleet with key {fleet_key.key_id}" in caplog.text
    assert "NOT checked" not in caplog.text


def test_a_key_file_may_hold_the_key_as_one_base64_line(tmp_path: Path, fleet_key: SigningKeys) -> None:
    key_file = tmp_path / "config-signing.key"
    key_file.write_text(public_key_base64(fleet_key.public) + "\n", encoding="utf-8")

    assert ConfigSignatures.from_settings(settings(tmp_path, key_file)).key_ids == (fleet_key.key_id,)


def test_during_a_rotation_the_file_holds_both_keys(tmp_path: Path, fleet_key: SigningKeys) -> None:
    new_key = SigningKeys.generate()
    key_file = tmp_path / "config-signing.pem"
    key_file.write_text(public_key_pem(fleet_key.public) + public_key_pem(new_key.public), encoding="utf-8")

    signatures = ConfigSignatures.from_settings(settings(tmp_path, key_file))

    assert signatures.key_ids == (fleet_key.key_id, new_key.key_id)
    for key in (fleet_key, new_key):
        signed = key.sign(VILLAGE, _desired(3))
        assert signatures.refusal(3, CONFIG, signed.signature, signed.key_id) is None


def test_a_signature_counts_whatever_key_id_it_names(tmp_path: Path, fleet_key: SigningKeys) -> None:
    signatures = ConfigSignatures(VILLAGE, GATEWAY, [fleet_key.public])
    signed = fleet_key.sign(VILLAGE, _desired(3))

    assert signatures.refusal(3, CONFIG, signed.signature, "0000000000000000") is None


def test_without_a_key_nothing_is_checked_and_the_agent_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="edge.config_signature"):
        signatures = ConfigSignatures.from_settings(settings(tmp_path, None))

    assert signatures.key_ids == ()
    assert signatures.refusal(3, CONFIG, None, None) is None
    assert "config_signing_key is not set: config signatures are NOT checked" in caplog.text


def test_the_agent_warns_once_at_start_up_that_signatures_are_not_checked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        GatewayAgent(settings(tmp_path, None), partial(build_devices, clock=utc_now_ms))

    assert sum("NOT checked" in record.getMessage() for record in caplog.records) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"config_signing_key .*config-signing\.pem: cannot read the fleet's config-signing key"),
        (b"", r"config_signing_key .*config-signing\.pem: no public key found"),
        (b"ssh-ed25519 AAAAC3Nza", r"config_signing_key .*: public key is neither a PEM block nor base64"),
        (b"\x89PNG\r\n", r"config_signing_key .*: a key is ASCII text"),
    ],
    ids=["missing", "empty", "ssh-format", "binary"],
)
def test_an_unusable_key_file_stops_the_agent_naming_the_setting(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    key_file = tmp_path / "config-signing.pem"
    if content is not None:
        key_file.write_bytes(content)

    with pytest.raises(EdgeConfigError, match=message):
        GatewayAgent(settings(tmp_path, key_file), partial(build_devices, clock=utc_now_ms))


def test_the_fleet_private_key_is_refused_on_a_gateway(tmp_path: Path, fleet_key: SigningKeys) -> None:
    key_file = tmp_path / "config-signing.pem"
    key_file.write_text(private_key_pem(fleet_key.private), encoding="utf-8")

    with pytest.raises(EdgeConfigError, match=r"config_signing_key .*PRIVATE KEY where a public key belongs"):
        ConfigSignatures.from_settings(settings(tmp_path, key_file))


def _desired(version: int) -> ConfigDesired:
    return ConfigDesired(gateway_id=GATEWAY, seq=version, event_id=uuid.uuid4(), ts=1, version=version, config=CONFIG)
