"""Config signatures bind a config to one gateway of one village under one version; keys load from PEM or base64."""

import base64
import json
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from protocol.codec import Decoder, Rejection, RejectReason, encode
from protocol.config_signing import (
    SIGNATURE_PURPOSE,
    key_id,
    load_private_key,
    load_public_key,
    load_public_keys,
    load_trusted_keys,
    not_after_line,
    private_key_pem,
    public_key_base64,
    public_key_pem,
    sign_config,
    signed_bytes,
    verify_config,
)
from protocol.detection import DetectionSettings, LineSettings
from protocol.errors import ConfigSignatureError, MalformedSignatureError, ProtocolError, SigningKeyError
from protocol.gateway_config import DeviceKind, DeviceSpec, DoorPolicy, DriverKind, GatewayConfig
from protocol.messages import ConfigDesired
from protocol.topics import Channel, gateway_topic
from tests.signing_keys import SigningKeys

VILLAGE = "lakeside"
GATEWAY = "gw-01"
CONFIG = GatewayConfig(
    heartbeat_interval_s=15,
    devices=[
        DeviceSpec(kind=DeviceKind.ACCESS_REQUEST, id="exit-1", driver=DriverKind.GPIO, params={"pin": 5}),
        DeviceSpec(
            kind=DeviceKind.DOOR_CONTACT,
            id="door-1",
            driver=DriverKind.NODE,
            params={"node_id": "n-door", "silent_after_s": 60.0, "low_battery_v": 3, "verbose": True, "note": "门"},
            door=DoorPolicy(held_open_s=None, authorised_by=["exit-1"]),
        ),
        DeviceSpec(
            kind=DeviceKind.CHECKPOINT_CAMERA,
            id="cam-1",
            driver=DriverKind.CAMERA,
            params={"source": "rtsp://cam.local/stream", "fps": 5},
            detection=DetectionSettings(line=LineSettings(start=(0.2, 0.0), end=(0.2, 1.0))),
        ),
    ],
)


@pytest.fixture(scope="module")
def keys() -> SigningKeys:
    return SigningKeys.generate()


@pytest.fixture(scope="module")
def signature(keys: SigningKeys) -> str:
    return sign_config(keys.private, VILLAGE, GATEWAY, 7, CONFIG)


# --- what is signed --------------------------------------------------------------------------------


def test_the_signed_bytes_are_compact_sorted_json_of_purpose_identity_version_and_config() -> None:
    signed = signed_bytes(VILLAGE, GATEWAY, 7, CONFIG)

    document = json.loads(signed)
    assert document == {
        "purpose": SIGNATURE_PURPOSE,
        "village_id": VILLAGE,
        "gateway_id": GATEWAY,
        "version": 7,
        "config": CONFIG.model_dump(mode="json"),
    }
    assert signed == json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert b" " not in signed.replace(b"rtsp://cam.local/stream", b"")


def test_the_signed_bytes_do_not_depend_on_how_the_config_was_built() -> None:
    from_toml_like_values = GatewayConfig.model_validate(json.loads(CONFIG.model_dump_json()))

    assert signed_bytes(VILLAGE, GATEWAY, 7, from_toml_like_values) == signed_bytes(VILLAGE, GATEWAY, 7, CONFIG)


@pytest.mark.parametrize("version", [-1, True, 1.0])
def test_a_version_is_a_non_negative_integer(version: int) -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        signed_bytes(VILLAGE, GATEWAY, version, CONFIG)


# --- signing and verifying -------------------------------------------------------------------------


def test_a_signature_verifies_for_what_was_signed(keys: SigningKeys, signature: str) -> None:
    verify_config(keys.public, VILLAGE, GATEWAY, 7, CONFIG, signature)

    assert len(signature) == 86
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64


def test_signing_is_deterministic(keys: SigningKeys, signature: str) -> None:
    assert sign_config(keys.private, VILLAGE, GATEWAY, 7, CONFIG) == signature


def test_a_signed_config_still_verifies_after_the_wire(keys: SigningKeys) -> None:
    """The gateway checks the config it decoded, not the bytes the fleet signed."""
    desired = keys.sign(
        VILLAGE, ConfigDesired(gateway_id=GATEWAY, seq=1, event_id=uuid.uuid4(), ts=1, version=3, config=CONFIG)
    )

    decoded = Decoder().decode(gateway_topic(VILLAGE, GATEWAY, Channel.CONFIG_DESIRED), encode(desired))

    assert not isinstance(decoded, Rejection)
    message = decoded.message
    assert isinstance(message, ConfigDesired)
    assert message.signature is not None
    assert message.key_id == keys.key_id
    verify_config(keys.public, VILLAGE, message.gateway_id, message.version, message.config, message.signature)


@pytest.mark.parametrize(
    ("village_id", "gateway_id", "version", "config"),
    [
        (VILLAGE, GATEWAY, 7, CONFIG.model_copy(update={"heartbeat_interval_s": 16.0})),
        (VILLAGE, GATEWAY, 7, CONFIG.model_copy(update={"devices": CONFIG.devices[:2]})),
        (VILLAGE, "gw-02", 7, CONFIG),
        ("riverside", GATEWAY, 7, CONFIG),
        (VILLAGE, GATEWAY, 8, CONFIG),
        (VILLAGE, GATEWAY, 6, CONFIG),
    ],
    ids=["tampered-interval", "device-removed", "other-gateway", "other-village", "newer-version", "older-version"],
)
def test_a_signature_does_not_verify_for_anything_else(
    keys: SigningKeys, signature: str, village_id: str, gateway_id: str, version: int, config: GatewayConfig
) -> None:
    with pytest.raises(ConfigSignatureError, match=f"signature does not verify with key {keys.key_id}$"):
        verify_config(keys.public, village_id, gateway_id, version, config, signature)


def test_a_signature_does_not_verify_with_another_key(signature: str) -> None:
    other = SigningKeys.generate()

    with pytest.raises(ConfigSignatureError, match=f"with key {other.key_id}") as caught:
        verify_config(other.public, VILLAGE, GATEWAY, 7, CONFIG, signature)

    assert not isinstance(caught.value, MalformedSignatureError)
    assert isinstance(caught.value, ProtocolError)


def _flip_last_bits(signature: str) -> str:
    """The same 64 bytes, spelt with other unused low bits in the last character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 0b1]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: "",
        lambda s: s[:-1],
        lambda s: s + "A",
        lambda s: s + "==",
        lambda s: s[:-2] + "+/",
        lambda s: s[:-1] + " ",
        lambda s: "A" * 43,
        _flip_last_bits,
    ],
    ids=["empty", "short", "long", "padded", "standard-alphabet", "space", "half", "non-canonical"],
)
def test_a_malformed_signature_is_refused_as_such(keys: SigningKeys, signature: str, mangle: object) -> None:
    assert callable(mangle)
    malformed = mangle(signature)

    with pytest.raises(MalformedSignatureError, match="malformed signature"):
        verify_config(keys.public, VILLAGE, GATEWAY, 7, CONFIG, malformed)


def test_a_well_formed_signature_of_zeros_does_not_verify(keys: SigningKeys) -> None:
    zeros = base64.urlsafe_b64encode(bytes(64)).rstrip(b"=").decode()

    with pytest.raises(ConfigSignatureError, match="does not verify"):
        verify_config(keys.public, VILLAGE, GATEWAY, 7, CONFIG, zeros)


# --- key ids -----------------------------------------------------------------------------------------


def test_a_key_id_is_a_short_stable_fingerprint_of_the_public_key(keys: SigningKeys) -> None:
    identifier = key_id(keys.public)

    assert len(identifier) == 16
    assert int(identifier, 16) >= 0
    assert key_id(load_public_key(public_key_pem(keys.public))) == identifier
    assert key_id(load_public_key(public_key_base64(keys.public))) == identifier
    assert key_id(SigningKeys.generate().public) != identifier


# --- loading keys ------------------------------------------------------------------------------------


def test_a_public_key_loads_from_pem_str_or_bytes(keys: SigningKeys, signature: str) -> None:
    pem = public_key_pem(keys.public)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")

    for data in (pem, pem.encode(), "\n  " + pem + "\n\n"):
        verify_config(load_public_key(data), VILLAGE, GATEWAY, 7, CONFIG, signature)


@pytest.mark.parametrize("alphabet", ["urlsafe", "standard"])
@pytest.mark.parametrize("padded", [True, False])
def test_a_public_key_loads_from_raw_base64(keys: SigningKeys, signature: str, alphabet: str, padded: bool) -> None:
    raw = keys.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    encoded = (base64.urlsafe_b64encode if alphabet == "urlsafe" else base64.b64encode)(raw).decode()
    text = encoded if padded else encoded.rstrip("=")

    verify_config(load_public_key(text + "\n"), VILLAGE, GATEWAY, 7, CONFIG, signature)


def test_a_key_file_may_hold_several_keys_with_comments(keys: SigningKeys) -> None:
    other, third = SigningKeys.generate(), SigningKeys.generate()
    text = (
        "# current fleet key\n"
        + public_key_pem(keys.public)
        + "\n# next fleet key, from the rotation\n"
        + public_key_pem(other.public)
        + public_key_base64(third.public)
        + "\n"
    )

    loaded = load_public_keys(text)

    assert [key_id(key) for key in loaded] == [keys.key_id, other.key_id, third.key_id]
    with pytest.raises(SigningKeyError, match="expected one Ed25519 public key, found 3"):
        load_public_key(text)


def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "no public key found"),
        ("# only a comment\n\n", "no public key found"),
        ("not a key at all", "neither a PEM block nor base64"),
        ("AAAA", "32 bytes, this one 3"),
        (b"\x00\xff\x10binary", "ASCII text"),
        ("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n", "incomplete"),
        ("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n", "unreadable PEM public key"),
        (
            _ec_key()
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode(),
            "not an Ed25519 key but EC",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "PEM CERTIFICATE block; expected PUBLIC KEY",
        ),
    ],
    ids=["empty", "comment-only", "garbage", "short-base64", "binary", "incomplete-pem", "bad-pem", "ec-key", "cert"],
)
def test_a_public_key_that_cannot_be_loaded_is_a_signing_key_error(data: str | bytes, message: str) -> None:
    with pytest.raises(SigningKeyError, match=message) as caught:
        load_public_keys(data)

    assert isinstance(caught.value, ProtocolError)
    assert isinstance(caught.value, ValueError)


def test_a_private_key_where_the_public_one_belongs_is_refused(keys: SigningKeys) -> None:
    with pytest.raises(SigningKeyError, match="PRIVATE KEY where a public key belongs"):
        load_public_keys(private_key_pem(keys.private))


def test_a_private_key_loads_from_pem_encrypted_pem_and_base64_seed(keys: SigningKeys, signature: str) -> None:
    seed = keys.private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    loaded = [
        load_private_key(private_key_pem(keys.private)),
        load_private_key(private_key_pem(keys.private, password=b"fleet").encode(), password=b"fleet"),
        load_private_key(base64.b64encode(seed).decode()),
        load_private_key(base64.urlsafe_b64encode(seed).decode().rstrip("=")),
    ]

    for private in loaded:
        assert sign_config(private, VILLAGE, GATEWAY, 7, CONFIG) == signature


@pytest.mark.parametrize(
    ("data", "password", "message"),
    [
        ("AAAA", None, "32 bytes, this one 3"),
        ("@@@", None, "neither a PEM block nor base64"),
        ("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n", None, "unreadable PEM private key"),
    ],
    ids=["short-seed", "garbage", "bad-pem"],
)
def test_a_private_key_that_cannot_be_loaded_is_a_signing_key_error(
    data: str, password: bytes | None, message: str
) -> None:
    with pytest.raises(SigningKeyError, match=message):
        load_private_key(data, password)


def test_an_encrypted_private_key_needs_the_right_password(keys: SigningKeys) -> None:
    encrypted = private_key_pem(keys.private, password=b"fleet")

    with pytest.raises(SigningKeyError, match="unreadable PEM private key"):
        load_private_key(encrypted)
    with pytest.raises(SigningKeyError, match="unreadable PEM private key"):
        load_private_key(encrypted, password=b"wrong")


def test_a_private_key_of_another_algorithm_is_refused() -> None:
    pem = (
        _ec_key()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )

    with pytest.raises(SigningKeyError, match="not an Ed25519 key"):
        load_private_key(pem)


def test_a_generated_key_round_trips_through_pem() -> None:
    private = Ed25519PrivateKey.generate()

    again = load_private_key(private_key_pem(private))

    assert key_id(again.public_key()) == key_id(private.public_key())


# --- the wire model ----------------------------------------------------------------------------------


def _desired(**fields: object) -> ConfigDesired:
    return ConfigDesired.model_validate(
        {"gateway_id": GATEWAY, "seq": 1, "event_id": uuid.uuid4(), "ts": 1, "version": 1, "config": CONFIG, **fields}
    )


def test_a_desired_config_is_unsigned_by_default() -> None:
    desired = _desired()

    assert (desired.signature, desired.key_id) == (None, None)


@pytest.mark.parametrize(
    "fields",
    [{"signature": "A" * 86}, {"key_id": "0123456789abcdef"}],
    ids=["signature-alone", "key-id-alone"],
)
def test_a_signature_and_its_key_id_come_together(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="signature and key_id come together"):
        _desired(**fields)


@pytest.mark.parametrize(
    ("field", "value"),
    [("signature", "A" * 85), ("signature", "A" * 86 + "=="), ("key_id", "0123456789ABCDEF"), ("key_id", "abc")],
    ids=["short-signature", "padded-signature", "upper-case-key-id", "short-key-id"],
)
def test_the_decoder_refuses_a_misshapen_signature_or_key_id(keys: SigningKeys, field: str, value: str) -> None:
    signed = keys.sign(VILLAGE, _desired())
    document = json.loads(encode(signed))
    document[field] = value

    decoded = Decoder().decode(gateway_topic(VILLAGE, GATEWAY, Channel.CONFIG_DESIRED), json.dumps(document).encode())

    assert isinstance(decoded, Rejection)
    assert decoded.reason is RejectReason.INVALID_PAYLOAD
    assert field in decoded.detail


def test_a_not_after_comment_sets_when_the_next_key_expires(keys: SigningKeys) -> None:
    other = SigningKeys.generate()
    text = "\n".join([
        "# the county's key until its rotation",
        not_after_line(1_800_000_000_000),
        public_key_pem(keys.public),
        "# the new key",
        public_key_base64(other.public),
    ])  # fmt: skip

    trusted = load_trusted_keys(text)

    assert [(t.key_id, t.not_after_ms) for t in trusted] == [(keys.key_id, 1_800_000_000_000), (other.key_id, None)]
    assert not_after_line(1_800_000_000_000) == "# not-after: 2027-01-15T08:00:00Z"


@pytest.mark.parametrize("moment", ["2027-06-30", "soon", "2027-06-30T00:00:00"])
def test_a_not_after_without_a_zone_or_a_time_is_refused(keys: SigningKeys, moment: str) -> None:
    with pytest.raises(SigningKeyError, match="not-after"):
        load_trusted_keys(f"# not-after: {moment}\n{public_key_pem(keys.public)}")
