"""Config pushes: the newest version is applied and reported, refusals are reported with their reason,
and the applied config is kept on disk so a restarted gateway runs what the fleet last gave it."""

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from edge.config_floor import CONFIG_FLOOR_NAME, ConfigVersionFloor
from edge.config_signature import ConfigSignatures
from edge.config_updates import AppliedConfig, ConfigUpdates
from edge.errors import ConfigApplyError, EdgeConfigError, EdgeError
from edge.revoked_keys import REVOKED_KEYS_NAME, RevokedKeys
from protocol.codec import Decoder, Rejection, RejectReason, encode
from protocol.config_signing import TrustedKey
from protocol.detection import DetectionSettings, LineSettings
from protocol.gateway_config import DeviceKind, DeviceSpec, DoorPolicy, DriverKind, GatewayConfig
from protocol.messages import ConfigDesired, ConfigStatus
from protocol.topics import Channel, gateway_topic
from tests.edge.helpers import LIVENESS_S
from tests.signing_keys import SigningKeys

VILLAGE = "lakeside"
GATEWAY = "gw-01"
NOW_MS = 1_700_000_000_000

INITIAL = GatewayConfig(devices=[DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-1")])


def config(heartbeat_interval_s: float) -> GatewayConfig:
    """A config told apart from the others by its heartbeat interval."""
    return GatewayConfig(heartbeat_interval_s=heartbeat_interval_s, devices=INITIAL.devices)


def desired(version: int, gateway_config: GatewayConfig) -> ConfigDesired:
    return ConfigDesired(
        gateway_id=GATEWAY, seq=version, event_id=uuid.uuid4(), ts=NOW_MS, version=version, config=gateway_config
    )


Reported = tuple[int, ConfigStatus, str | None]


class Fleet:
    """Collects what the gateway reports on ``config/reported``."""

    def __init__(self) -> None:
        self.reports: list[Reported] = []
        self._arrived = asyncio.Event()

    def __call__(self, version: int, status: ConfigStatus, error: str | None) -> None:
        self.reports.append((version, status, error))
        self._arrived.set()

    async def wait_for(self, count: int) -> list[Reported]:
        async with asyncio.timeout(LIVENESS_S):
            while len(self.reports) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.reports[:count]


class Gateway:
    """The apply callback: records what it ran; can be held at a gate, or refuse with an error."""

    def __init__(self) -> None:
        self.ran: list[GatewayConfig] = []
        self.error: EdgeError | None = None
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, gateway_config: GatewayConfig) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        self.ran.append(gateway_config)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "applied-config.json"


@pytest.fixture
def fleet() -> Fleet:
    return Fleet()


@pytest.fixture
def gateway() -> Gateway:
    return Gateway()


def updates_at(
    path: Path,
    gateway: Gateway,
    fleet: Fleet,
    initial: GatewayConfig = INITIAL,
    signatures: ConfigSignatures | None = None,
) -> ConfigUpdates:
    """Without ``signatures``, as a development gateway without a config-signing key: nothing is checked."""
    checked = signatures or ConfigSignatures.unchecked(VILLAGE, GATEWAY)
    return ConfigUpdates(path, initial, gateway, fleet, checked, ConfigVersionFloor(path.parent / CONFIG_FLOOR_NAME))


@asynccontextmanager
async def running(updates: ConfigUpdates) -> AsyncIterator[ConfigUpdates]:
    task = asyncio.create_task(updates.run())
    try:
        yield updates
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def idle() -> None:
    """Let run() take what was offered and finish with it, when that needs no waiting on anything."""
    for _ in range(5):
        await asyncio.sleep(0)


def kept_on_disk(path: Path) -> AppliedConfig:
    return AppliedConfig.model_validate_json(path.read_text(encoding="utf-8"))


def keep(path: Path, applied: AppliedConfig) -> None:
    """What an earlier run of the gateway kept on disk."""
    path.write_text(applied.model_dump_json(), encoding="utf-8")


def nothing_kept(path: Path) -> bool:
    return not path.exists()


# --- the first start ----------------------------------------------------------------------------------------


def test_without_a_kept_config_the_gateway_runs_its_settings_as_version_0(
    path: Path, gateway: Gateway, fleet: Fleet
) -> None:
    updates = updates_at(path, gateway, fleet)

    assert updates.applied == AppliedConfig(version=0, config=INITIAL)
    assert not path.exists()


# --- applying -----------------------------------------------------------------------------------------------


async def test_a_newer_version_is_applied_reported_and_kept_on_disk(path: Path, gateway: Gateway, fleet: Fleet) -> None:
    async with running(updates_at(path, gateway, fleet)) as updates:
        updates.offer(desired(3, config(30.0)))
        reports = await fleet.wait_for(1)

    assert reports == [(3, ConfigStatus.APPLIED, None)]
    assert gateway.ran == [config(30.0)]
    assert updates.applied == AppliedConfig(version=3, config=config(30.0))
    assert kept_on_disk(path) == updates.applied


async def test_the_config_is_kept_on_disk_before_it_is_reported(path: Path, gateway: Gateway) -> None:
    on_disk_when_reported: list[AppliedConfig] = []
    reported = asyncio.Event()

    def report(version: int, status: ConfigStatus, error: str | None) -> None:
        on_disk_when_reported.append(kept_on_disk(path))
        reported.set()

    async with running(
        ConfigUpdates(
            path,
            INITIAL,
            gateway,
            report,
            ConfigSignatures.unchecked(VILLAGE, GATEWAY),
            ConfigVersionFloor(path.parent / CONFIG_FLOOR_NAME),
        )
    ) as updates:
        updates.offer(desired(1, config(30.0)))
        async with asyncio.timeout(LIVENESS_S):
            await reported.wait()

    assert on_disk_when_reported == [AppliedConfig(version=1, config=config(30.0))]


async def test_the_kept_file_is_replaced_whole_and_no_temporary_file_is_left(
    path: Path, gateway: Gateway, fleet: Fleet
) -> None:
    stray = path.with_name(f".{path.name}.k2v9q1")  # a temporary file a power cut left behind
    stray.write_text("half a config", encoding="utf-8")

    async with running(updates_at(path, gateway, fleet)) as updates:
        updates.offer(desired(1, config(30.0)))
        await fleet.wait_for(1)
        updates.offer(desired(2, config(40.0)))
        await fleet.wait_for(2)

    assert kept_on_disk(path) == AppliedConfig(version=2, config=config(40.0))
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([stray.name, path.name, CONFIG_FLOOR_NAME])


async def test_updates_arriving_during_an_apply_are_coalesced_to_the_latest(
    path: Path, gateway: Gateway, fleet: Fleet
) -> None:
    gateway.gate = asyncio.Event()

    async with running(updates_at(path, gateway, fleet)) as updates:
        updates.offer(desired(1, config(10.0)))
        async with asyncio.timeout(LIVENESS_S):
            await gateway.entered.wait()
        updates.offer(desired(2, config(20.0)))
        updates.offer(desired(3, config(30.0)))
        gateway.gate.set()
        reports = await fleet.wait_for(2)

    assert gateway.ran == [config(10.0), config(30.0)]
    assert reports == [(1, ConfigStatus.APPLIED, None), (3, ConfigStatus.APPLIED, None)]
    assert updates.applied.version == 3


async def test_an_older_version_is_ignored(path: Path, gateway: Gateway, fleet: Fleet) -> None:
    async with running(updates_at(path, gateway, fleet)) as updates:
        updates.offer(desired(5, config(50.0)))
        await fleet.wait_for(1)
        updates.offer(desired(4, config(40.0)))  # a stale retained message
        await idle()
        updates.offer(desired(6, config(60.0)))
        await fleet.wait_for(2)

    assert gateway.ran == [config(50.0), config(60.0)]
    assert fleet.reports == [(5, ConfigStatus.APPLIED, None), (6, ConfigStatus.APPLIED, None)]


async def test_the_running_version_offered_again_is_re_reported_without_being_applied_again(
    path: Path, gateway: Gateway, fleet: Fleet
) -> None:
    async with running(updates_at(path, gateway, fleet)) as updates:
        updates.offer(desired(2, config(20.0)))
        await fleet.wait_for(1)
        updates.offer(desired(2, config(20.0)))  # the retained message again, after a reconnect
        reports = await fleet.wait_for(2)

    assert reports == [(2, ConfigStatus.APPLIED, None), (2, ConfigStatus.APPLIED, None)]
    assert gateway.ran == [config(20.0)]


@pytest.mark.parametrize(
    "error",
    [
        ConfigApplyError("rolled back: device pir-2 failed on start: pin 23 is busy"),
        EdgeConfigError("device cam-1: the camera driver reads cameras, not a panic_button"),
    ],
    ids=["apply-failed", "config-error"],
)
async def test_a_config_that_cannot_be_applied_is_reported_rejected_with_why(
    path: Path, gateway: Gateway, fleet: Fleet, error: EdgeError
) -> None:
    gateway.error = error

    async with running(updates_at(path, gateway, fleet)) as updates:
        updates.offer(desired(4, config(40.0)))
        reports = await fleet.wait_for(1)

    assert reports == [(4, ConfigStatus.REJECTED, str(error))]
    assert updates.applied == AppliedConfig(version=0, config=INITIAL)
    assert nothing_kept(path)


async def test_a_long_refusal_is_cut_to_fit_the_report(path: Path, gateway: Gateway, fleet: Fleet) -> None:
    gateway.error = ConfigApplyError("rolled back: " + "x" * 1_000)

    async with running(updates_at(path, gateway, fleet)) as updates:
        updates.offer(desired(1, config(10.0)))
        ((_, status, error),) = await fleet.wait_for(1)

    assert status is ConfigStatus.REJECTED
    assert error is not None
    assert len(error) == 256
    assert error.startswith("rolled back: xxx")


async def test_after_a_refusal_the_previous_config_still_counts_and_a_newer_one_applies(
    path: Path, gateway: Gateway, fleet: Fleet
) -> None:
    async with running(updates_at(path, gateway, fleet)) as updates:
        updates.offer(desired(1, config(10.0)))
        await fleet.wait_for(1)
        gateway.error = ConfigApplyError("rolled back: no")
        updates.offer(desired(2, config(20.0)))
        await fleet.wait_for(2)
        gateway.error = None
        updates.offer(desired(3, config(30.0)))
        await fleet.wait_for(3)

    assert [status for _, status, _ in fleet.reports] == [
        ConfigStatus.APPLIED,
        ConfigStatus.REJECTED,
        ConfigStatus.APPLIED,
    ]
    assert kept_on_disk(path) == AppliedConfig(version=3, config=config(30.0))


async def test_a_config_that_cannot_be_kept_on_disk_still_runs_and_is_reported(
    tmp_path: Path, gateway: Gateway, fleet: Fleet
) -> None:
    path = tmp_path / "no-such-directory" / "applied-config.json"

    async with running(updates_at(path, gateway, fleet)) as updates:
        updates.offer(desired(1, config(10.0)))
        reports = await fleet.wait_for(1)

    assert reports == [(1, ConfigStatus.APPLIED, None)]
    assert updates.applied == AppliedConfig(version=1, config=config(10.0))


# --- the next start -----------------------------------------------------------------------------------------


async def test_a_restarted_gateway_runs_the_config_it_kept(path: Path, gateway: Gateway, fleet: Fleet) -> None:
    async with running(updates_at(path, gateway, fleet)) as updates:
        updates.offer(desired(7, config(70.0)))
        await fleet.wait_for(1)

    restarted = updates_at(path, Gateway(), Fleet(), initial=config(1.0))

    assert restarted.applied == AppliedConfig(version=7, config=config(70.0))


async def test_a_restarted_gateway_re_reports_the_kept_version_without_applying_it_again(
    path: Path, gateway: Gateway, fleet: Fleet
) -> None:
    """Everything a config can hold survives the file exactly, or the retained config would be applied twice."""
    full = GatewayConfig(
        heartbeat_interval_s=15,
        telemetry_interval_s=2.5,
        devices=[
            DeviceSpec(kind=DeviceKind.ACCESS_REQUEST, id="exit-1", driver=DriverKind.GPIO, params={"pin": 5}),
            DeviceSpec(
                kind=DeviceKind.DOOR_CONTACT,
                id="door-1",
                grid_id="grid-2",
                driver=DriverKind.NODE,
                params={"node_id": "n-door", "silent_after_s": 60.0, "low_battery_v": 3, "verbose": True},
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
    pushed = desired(9, full)
    decoded = Decoder().decode(gateway_topic(VILLAGE, GATEWAY, Channel.CONFIG_DESIRED), encode(pushed))
    assert not isinstance(decoded, Rejection)
    assert isinstance(decoded.message, ConfigDesired)
    async with running(updates_at(path, gateway, fleet)) as updates:
        updates.offer(decoded.message)
        await fleet.wait_for(1)

    after_restart, fleet_after_restart = Gateway(), Fleet()
    async with running(updates_at(path, after_restart, fleet_after_restart)) as updates:
        updates.offer(decoded.message)
        reports = await fleet_after_restart.wait_for(1)

    assert reports == [(9, ConfigStatus.APPLIED, None)]
    assert after_restart.ran == []
    assert updates.applied.config == full


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"null",
        b'{"version": 3}',
        b'{"version": -1, "config": {}}',
        b'{"version": 3, "config": {"heartbeat_interval_s": 0}}',
        b'{"version": 3, "config": {}, "signed": true}',
        b"\x00" * 64,
        b"\xff\xfe\xfa garbage from a bad sector",
    ],
    ids=[
        "empty",
        "truncated",
        "null",
        "no-config",
        "negative-version",
        "invalid-config",
        "extra-field",
        "zeros",
        "not-utf8",
    ],
)
def test_an_unreadable_kept_config_is_ignored_and_the_settings_run(
    path: Path, gateway: Gateway, fleet: Fleet, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path.write_bytes(content)

    with caplog.at_level(logging.ERROR, logger="edge.config_updates"):
        updates = updates_at(path, gateway, fleet)

    assert updates.applied == AppliedConfig(version=0, config=INITIAL)
    assert "unreadable" in caplog.text


def test_a_kept_config_that_cannot_be_read_at_all_is_a_config_error(path: Path, gateway: Gateway, fleet: Fleet) -> None:
    path.mkdir()

    with pytest.raises(EdgeConfigError, match="cannot read the applied config"):
        updates_at(path, gateway, fleet)


async def test_after_falling_back_to_the_settings_the_kept_version_is_applied_afresh(
    path: Path, gateway: Gateway, fleet: Fleet
) -> None:
    keep(path, AppliedConfig(version=4, config=config(40.0)))
    updates = updates_at(path, gateway, fleet)
    assert updates.applied.version == 4

    updates.fall_back(INITIAL)  # the kept config's devices could not be built
    async with running(updates):
        updates.offer(desired(4, config(40.0)))
        reports = await fleet.wait_for(1)

    assert gateway.ran == [config(40.0)]
    assert reports == [(4, ConfigStatus.APPLIED, None)]
    assert updates.applied == AppliedConfig(version=4, config=config(40.0))


def test_falling_back_runs_the_settings_as_version_0(path: Path, gateway: Gateway, fleet: Fleet) -> None:
    keep(path, AppliedConfig(version=4, config=config(40.0)))
    updates = updates_at(path, gateway, fleet)

    updates.fall_back(config(1.0))

    assert updates.applied == AppliedConfig(version=0, config=config(1.0))


# --- configs the decoder refused ----------------------------------------------------------------------------


def refused(payload: bytes) -> Rejection:
    decoded = Decoder().decode(gateway_topic(VILLAGE, GATEWAY, Channel.CONFIG_DESIRED), payload)
    assert isinstance(decoded, Rejection)
    return decoded


def test_a_refused_config_is_reported_rejected_under_its_version(path: Path, gateway: Gateway, fleet: Fleet) -> None:
    document = json.loads(encode(desired(8, config(10.0))))
    document["config"]["heartbeat_interval_s"] = "10"
    payload = json.dumps(document).encode()
    rejection = refused(payload)

    updates_at(path, gateway, fleet).refuse(rejection, payload)

    assert rejection.reason is RejectReason.INVALID_PAYLOAD
    assert fleet.reports == [(8, ConfigStatus.REJECTED, f"invalid: {rejection.detail}")]
    assert gateway.ran == []


def test_a_refusal_report_is_cut_to_fit(path: Path, gateway: Gateway, fleet: Fleet) -> None:
    rejection = Rejection(RejectReason.INVALID_PAYLOAD, "t", "y" * 300)

    updates_at(path, gateway, fleet).refuse(rejection, b'{"version": 8}')

    ((version, status, error),) = fleet.reports
    assert (version, status) == (8, ConfigStatus.REJECTED)
    assert error == ("invalid: " + "y" * 300)[:256]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b"[]",
        b'"version"',
        b"{}",
        b'{"version": null}',
        b'{"version": "8"}',
        b'{"version": 8.0}',
        b'{"version": true}',
        b'{"version": -1}',
        b"[" * 100_000,
        b'{"version": ' + b"[" * 100_000,
    ],
    ids=[
        "empty",
        "truncated",
        "not-utf8",
        "array",
        "string",
        "no-version",
        "null",
        "text",
        "float",
        "bool",
        "negative",
        "deeply-nested",
        "deeply-nested-version",
    ],
)
def test_a_refused_config_without_a_readable_version_is_only_logged(
    path: Path, gateway: Gateway, fleet: Fleet, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    rejection = Rejection(RejectReason.MALFORMED_JSON, "t", "no")

    with caplog.at_level(logging.ERROR, logger="edge.config_updates"):
        updates_at(path, gateway, fleet).refuse(rejection, payload)

    assert fleet.reports == []
    assert "without a readable version was refused" in caplog.text


def test_a_refused_config_does_not_change_what_runs(path: Path, gateway: Gateway, fleet: Fleet) -> None:
    updates = updates_at(path, gateway, fleet)

    updates.refuse(Rejection(RejectReason.GATEWAY_MISMATCH, "t", "payload names gw-02"), b'{"version": 3}')

    assert updates.applied == AppliedConfig(version=0, config=INITIAL)
    assert not path.exists()


# --- signed configs -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet_key() -> SigningKeys:
    return SigningKeys.generate()


def checking(*keys: SigningKeys) -> ConfigSignatures:
    """A gateway holding the fleet's public key(s), as enrollment wrote them."""
    return ConfigSignatures(VILLAGE, GATEWAY, [key.public for key in keys])


async def test_a_properly_signed_config_is_applied_and_kept_with_its_signature(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys
) -> None:
    signed = fleet_key.sign(VILLAGE, desired(3, config(30.0)))

    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key))) as updates:
        updates.offer(signed)
        reports = await fleet.wait_for(1)

    assert reports == [(3, ConfigStatus.APPLIED, None)]
    assert gateway.ran == [config(30.0)]
    kept = kept_on_disk(path)
    assert kept == AppliedConfig(version=3, config=config(30.0), signature=signed.signature, key_id=fleet_key.key_id)
    assert updates.applied == kept


async def test_an_unsigned_config_is_refused_and_never_applied(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys
) -> None:
    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key))) as updates:
        updates.offer(desired(3, config(30.0)))
        reports = await fleet.wait_for(1)

    assert reports == [
        (3, ConfigStatus.REJECTED, f"unsigned config refused (this gateway trusts key {fleet_key.key_id})")
    ]
    assert gateway.ran == []
    assert updates.applied == AppliedConfig(version=0, config=INITIAL)
    assert nothing_kept(path)


async def test_a_config_signed_with_another_key_is_refused_naming_both_keys(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys
) -> None:
    intruder = SigningKeys.generate()

    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key))) as updates:
        updates.offer(intruder.sign(VILLAGE, desired(3, config(30.0))))
        reports = await fleet.wait_for(1)

    assert reports == [
        (
            3,
            ConfigStatus.REJECTED,
            f"config signature does not verify with key {fleet_key.key_id} (signed with key {intruder.key_id})",
        )
    ]
    assert gateway.ran == []
    assert nothing_kept(path)


def forged(how: str, key: SigningKeys) -> ConfigDesired:
    """A config the fleet signed, altered or replayed by someone who can publish on this gateway's topic."""
    signed = key.sign(VILLAGE, desired(3, config(30.0)))
    match how:
        case "config-altered":
            return signed.model_copy(update={"config": config(99.0)})
        case "version-relabelled":
            return signed.model_copy(update={"version": 4})
        case "replayed-from-another-gateway":
            other = key.sign(VILLAGE, desired(3, config(30.0)).model_copy(update={"gateway_id": "gw-02"}))
            return other.model_copy(update={"gateway_id": GATEWAY})  # the decoder wants the topic's gateway id
        case "replayed-from-another-village":
            return key.sign("riverside", desired(3, config(30.0)))
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    ["config-altered", "version-relabelled", "replayed-from-another-gateway", "replayed-from-another-village"],
)
async def test_a_signed_config_altered_relabelled_or_replayed_is_refused(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys, how: str
) -> None:
    message = forged(how, fleet_key)

    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key))) as updates:
        updates.offer(message)
        reports = await fleet.wait_for(1)

    assert reports == [
        (message.version, ConfigStatus.REJECTED, f"config signature does not verify with key {fleet_key.key_id}")
    ]
    assert gateway.ran == []
    assert nothing_kept(path)


async def test_a_malformed_signature_is_refused_as_malformed(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys
) -> None:
    signed = fleet_key.sign(VILLAGE, desired(3, config(30.0)))
    assert signed.signature is not None
    malformed = signed.model_copy(update={"signature": signed.signature[:40]})

    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key))) as updates:
        updates.offer(malformed)
        ((_, status, error),) = await fleet.wait_for(1)

    assert status is ConfigStatus.REJECTED
    assert error is not None
    assert error.startswith("malformed signature")
    assert gateway.ran == []


async def test_after_a_refused_signature_the_running_config_stays_and_a_signed_one_applies(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys
) -> None:
    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key))) as updates:
        updates.offer(fleet_key.sign(VILLAGE, desired(1, config(10.0))))
        await fleet.wait_for(1)
        updates.offer(desired(2, config(20.0)))
        await fleet.wait_for(2)
        updates.offer(fleet_key.sign(VILLAGE, desired(3, config(30.0))))
        await fleet.wait_for(3)

    assert [status for _, status, _ in fleet.reports] == [
        ConfigStatus.APPLIED,
        ConfigStatus.REJECTED,
        ConfigStatus.APPLIED,
    ]
    assert gateway.ran == [config(10.0), config(30.0)]
    assert kept_on_disk(path).version == 3


async def test_a_development_gateway_without_a_key_applies_unsigned_configs(
    path: Path, gateway: Gateway, fleet: Fleet
) -> None:
    async with running(updates_at(path, gateway, fleet, signatures=ConfigSignatures.unchecked(VILLAGE, GATEWAY))) as u:
        u.offer(desired(2, config(20.0)))
        reports = await fleet.wait_for(1)

    assert reports == [(2, ConfigStatus.APPLIED, None)]
    assert gateway.ran == [config(20.0)]


async def test_a_restarted_gateway_runs_the_signed_config_it_kept(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys
) -> None:
    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key))) as updates:
        updates.offer(fleet_key.sign(VILLAGE, desired(5, config(50.0))))
        await fleet.wait_for(1)

    restarted = updates_at(path, Gateway(), Fleet(), signatures=checking(fleet_key))

    assert (restarted.applied.version, restarted.applied.config) == (5, config(50.0))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda kept: kept.model_copy(update={"config": config(99.0)}),
        lambda kept: kept.model_copy(update={"version": 6}),
        lambda kept: kept.model_copy(update={"signature": None, "key_id": None}),
        lambda kept: kept.model_copy(update={"signature": "not a signature"}),
    ],
    ids=["config-altered", "version-relabelled", "signature-removed", "signature-garbled"],
)
async def test_a_kept_config_tampered_on_disk_is_not_run(
    path: Path,
    gateway: Gateway,
    fleet: Fleet,
    fleet_key: SigningKeys,
    tamper: object,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert callable(tamper)
    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key))) as updates:
        updates.offer(fleet_key.sign(VILLAGE, desired(5, config(50.0))))
        await fleet.wait_for(1)
    tampered = tamper(kept_on_disk(path))
    assert isinstance(tampered, AppliedConfig)
    keep(path, tampered)

    with caplog.at_level(logging.ERROR, logger="edge.config_updates"):
        restarted = updates_at(path, Gateway(), Fleet(), signatures=checking(fleet_key))

    assert restarted.applied == AppliedConfig(version=0, config=INITIAL)  # as when the kept devices cannot be built
    assert "is not run" in caplog.text
    assert f"version {tampered.version}" in caplog.text


async def test_a_tampered_kept_config_is_replaced_by_the_retained_signed_one(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys
) -> None:
    signed = fleet_key.sign(VILLAGE, desired(5, config(50.0)))
    keep(path, AppliedConfig(version=5, config=config(99.0), signature=signed.signature, key_id=signed.key_id))

    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key))) as updates:
        updates.offer(signed)  # the retained desired config, on connecting
        reports = await fleet.wait_for(1)

    assert reports == [(5, ConfigStatus.APPLIED, None)]
    assert gateway.ran == [config(50.0)]
    assert kept_on_disk(path).config == config(50.0)


def test_an_unsigned_config_kept_by_a_development_run_is_not_run_once_a_key_is_configured(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys
) -> None:
    keep(path, AppliedConfig(version=4, config=config(40.0)))

    assert updates_at(path, gateway, fleet).applied.version == 4
    assert updates_at(path, gateway, fleet, signatures=checking(fleet_key)).applied.version == 0


async def test_a_key_rotation_re_signs_the_running_config_without_applying_it_again(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys
) -> None:
    """The key file holds the old and the new key while the fleet re-signs; afterwards the old one can go."""
    new_key = SigningKeys.generate()
    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key))) as updates:
        updates.offer(fleet_key.sign(VILLAGE, desired(2, config(20.0))))
        await fleet.wait_for(1)

    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key, new_key))) as updates:
        assert updates.applied.key_id == fleet_key.key_id
        updates.offer(new_key.sign(VILLAGE, desired(2, config(20.0))))
        await fleet.wait_for(2)

    assert fleet.reports == [(2, ConfigStatus.APPLIED, None), (2, ConfigStatus.APPLIED, None)]
    assert gateway.ran == [config(20.0)]
    assert kept_on_disk(path).key_id == new_key.key_id
    after_rotation = updates_at(path, Gateway(), Fleet(), signatures=checking(new_key))
    assert (after_rotation.applied.version, after_rotation.applied.key_id) == (2, new_key.key_id)


def test_a_refused_downlink_message_is_reported_only_when_it_came_on_the_config_channel(
    path: Path, gateway: Gateway, fleet: Fleet
) -> None:
    updates = updates_at(path, gateway, fleet)
    rejection = Rejection(RejectReason.INVALID_PAYLOAD, "t", "config.heartbeat_interval_s: not a number")

    updates.refuse_if_config(gateway_topic(VILLAGE, GATEWAY, Channel.COMMAND), rejection, b'{"version": 9}')
    updates.refuse_if_config("not/an/outpost/topic", rejection, b'{"version": 9}')
    assert fleet.reports == []
    updates.refuse_if_config(gateway_topic(VILLAGE, GATEWAY, Channel.CONFIG_DESIRED), rejection, b'{"version": 9}')
    assert fleet.reports == [(9, ConfigStatus.REJECTED, f"invalid: {rejection.detail}")]


# --- the version floor --------------------------------------------------------------------------------------


async def test_an_older_signed_config_is_refused_as_a_rollback_after_the_applied_config_is_lost(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys
) -> None:
    older, newer = fleet_key.sign(VILLAGE, desired(2, config(20.0))), fleet_key.sign(VILLAGE, desired(3, config(30.0)))
    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key))) as updates:
        updates.offer(newer)
        await fleet.wait_for(1)
    await asyncio.to_thread(path.unlink)  # a corrupted card, or someone with a shell on the gateway

    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key))) as updates:
        assert updates.applied.version == 0, "the settings' config runs: the applied one is gone"
        updates.offer(older)  # replayed from a recording, or left retained by an earlier fleet
        reports = await fleet.wait_for(2)
        updates.offer(newer)
        reports = await fleet.wait_for(3)

    assert reports[1] == (2, ConfigStatus.REJECTED, "rollback refused: this gateway already ran version 3")
    assert reports[2] == (3, ConfigStatus.APPLIED, None)
    assert gateway.ran == [config(30.0), config(30.0)]


async def test_the_floor_is_kept_before_the_config_runs(path: Path, gateway: Gateway, fleet: Fleet) -> None:
    gateway.gate = asyncio.Event()  # the apply hangs: a power cut now must not allow a rollback later
    async with running(updates_at(path, gateway, fleet)) as updates:
        updates.offer(desired(5, config(50.0)))
        await asyncio.wait_for(gateway.entered.wait(), LIVENESS_S)

        assert ConfigVersionFloor(path.parent / CONFIG_FLOOR_NAME).version == 5
        gateway.gate.set()


def test_a_floor_kept_before_the_floor_file_existed_comes_from_the_applied_config(
    path: Path, gateway: Gateway, fleet: Fleet
) -> None:
    keep(path, AppliedConfig(version=7, config=config(70.0)))

    updates_at(path, gateway, fleet)

    assert ConfigVersionFloor(path.parent / CONFIG_FLOOR_NAME).version == 7


@pytest.mark.parametrize("content", ["", "{}", '{"version": -1}', '{"version": "7"}', "\xff"])
def test_a_damaged_floor_stops_the_agent_rather_than_allow_a_rollback(path: Path, content: str) -> None:
    (path.parent / CONFIG_FLOOR_NAME).write_text(content, encoding="latin-1")

    with pytest.raises(EdgeConfigError, match="config version floor"):
        ConfigVersionFloor(path.parent / CONFIG_FLOOR_NAME)


# --- expired and revoked keys -------------------------------------------------------------------------------


async def test_a_config_signed_by_an_expired_key_is_refused(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys
) -> None:
    expired = TrustedKey(fleet_key.public, not_after_ms=1_700_000_000_000)  # 2023-11-14T22:13:20Z
    signatures = ConfigSignatures(VILLAGE, GATEWAY, [expired], clock=lambda: 1_700_000_000_001)

    async with running(updates_at(path, gateway, fleet, signatures=signatures)) as updates:
        updates.offer(fleet_key.sign(VILLAGE, desired(3, config(30.0))))
        reports = await fleet.wait_for(1)

    assert reports == [
        (3, ConfigStatus.REJECTED, f"signed with key {fleet_key.key_id}, which expired at 2023-11-14T22:13:20Z")
    ]
    assert gateway.ran == []


async def test_a_key_revoked_by_a_config_signed_with_the_new_key_is_never_trusted_again(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys
) -> None:
    """A rotation: the gateway trusts the old and the new key; the fleet signs with the new one a config that
    revokes the old; from then on the old key signs nothing that runs, after a restart too."""
    new_key = SigningKeys.generate()
    revoked_path = path.parent / REVOKED_KEYS_NAME

    def trusting_both() -> ConfigSignatures:
        return ConfigSignatures(VILLAGE, GATEWAY, [fleet_key.public, new_key.public], revoked=RevokedKeys(revoked_path))

    revoking = GatewayConfig(
        heartbeat_interval_s=20.0, devices=INITIAL.devices, revoked_signing_keys=[fleet_key.key_id]
    )
    async with running(updates_at(path, gateway, fleet, signatures=trusting_both())) as updates:
        updates.offer(new_key.sign(VILLAGE, desired(2, revoking)))
        await fleet.wait_for(1)
    async with running(updates_at(path, gateway, fleet, signatures=trusting_both())) as updates:  # restarted
        updates.offer(fleet_key.sign(VILLAGE, desired(3, config(30.0))))
        reports = await fleet.wait_for(2)

    assert reports == [
        (2, ConfigStatus.APPLIED, None),
        (3, ConfigStatus.REJECTED, f"signed with key {fleet_key.key_id}, which the fleet revoked"),
    ]
    assert RevokedKeys(revoked_path).ids == {fleet_key.key_id}


async def test_a_config_may_not_revoke_the_key_that_signs_it(
    path: Path, gateway: Gateway, fleet: Fleet, fleet_key: SigningKeys
) -> None:
    suicidal = GatewayConfig(devices=INITIAL.devices, revoked_signing_keys=[fleet_key.key_id])

    async with running(updates_at(path, gateway, fleet, signatures=checking(fleet_key))) as updates:
        updates.offer(fleet_key.sign(VILLAGE, desired(2, suicidal)))
        [(version, status, error)] = await fleet.wait_for(1)

    assert (version, status) == (2, ConfigStatus.REJECTED)
    assert error is not None
    assert "a revocation must be signed by another key" in error
