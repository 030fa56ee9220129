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

from edge.config_updates import AppliedConfig, ConfigUpdates
from edge.errors import ConfigApplyError, EdgeConfigError, EdgeError
from protocol.codec import Decoder, Rejection, RejectReason, encode
from protocol.detection import DetectionSettings, LineSettings
from protocol.gateway_config import DeviceKind, DeviceSpec, DoorPolicy, DriverKind, GatewayConfig
from protocol.messages import ConfigDesired, ConfigStatus
from protocol.topics import Channel, gateway_topic
from tests.edge.helpers import LIVENESS_S

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


def updates_at(path: Path, gateway: Gateway, fleet: Fleet, initial: GatewayConfig = INITIAL) -> ConfigUpdates:
    return ConfigUpdates(path, initial, gateway, fleet)


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

    async with running(ConfigUpdates(path, INITIAL, gateway, report)) as updates:
        updates.offer(desired(1, config(30.0)))
        async with asyncio.timeout(LIVENESS_S):
            await reported.wait()

    assert on_disk_when_reported == [AppliedConfig(version=1, config=config(30.0))]


async def test_the_kept_file_is_replaced_whole_and_no_temporary_file_is_left(
    path: Path, gateway: Gateway, fleet: Fleet
) -> None:
    path.with_suffix(".tmp").write_text("half a config from a power cut", encoding="utf-8")

    async with running(updates_at(path, gateway, fleet)) as updates:
        updates.offer(desired(1, config(30.0)))
        await fleet.wait_for(1)
        updates.offer(desired(2, config(40.0)))
        await fleet.wait_for(2)

    assert kept_on_disk(path) == AppliedConfig(version=2, config=config(40.0))
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


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
    decoded = Decoder().decode(gateway_topic("lakeside", GATEWAY, Channel.CONFIG_DESIRED), encode(pushed))
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
        b'{"version": 3, "config": {}, "signature": "x"}',
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
    decoded = Decoder().decode(gateway_topic("lakeside", GATEWAY, Channel.CONFIG_DESIRED), payload)
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
