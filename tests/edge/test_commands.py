"""The gateway's command handler: only commands signed by the fleet's key, each run once across restarts,
audited snapshot fetches, listings and diagnostics within the wire's limits, expiry of stale commands, restart
after the acknowledgement, and errors as answers, never raised."""

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray

from edge.certificate_install import CertificateInstaller
from edge.command_memory import COMMAND_MEMORY_NAME, CommandMemory
from edge.commands import AUDIT_LOG_NAME, LIST_ENTRIES, AuditLog, CommandHandler
from edge.config_signature import ConfigSignatures
from edge.envelope import EnvelopeStamper
from edge.sequence import SequenceCounter
from edge.snapshots import SnapshotInfo, SnapshotStore
from protocol.codec import Decoder, Inbound, encode
from protocol.command_signing import sign_command
from protocol.config_signing import key_id
from protocol.gateway_config import SnapshotPolicy
from protocol.messages import (
    AdapterState,
    Command,
    CommandName,
    CommandResponse,
    DeviceEvent,
    EventKind,
    EvidenceValue,
    GatewayHealth,
    Message,
    channel_of,
)
from protocol.topics import gateway_topic
from simulators.infra.certificates import write_certificates
from tests.edge.helpers import FakeClock
from tests.edge.test_certificate_install import enrolled_tls, renewed_for

VILLAGE = "village-3"
GATEWAY = "gw-01"
NOW_MS = 1_700_000_000_000
CAMERA = "gate-cam-1"
OTHER_CAMERA = "gate-cam-2"
OFFICER = "officer.li@county"
WHY = "case 2024-118: vehicle at the east gate"


def frame(seed: int = 0) -> NDArray[np.uint8]:
    image = np.zeros((360, 640, 3), np.uint8)
    image[:, :, 1] = 60 + seed % 150
    cv2.rectangle(image, (100, 80), (300, 200), (200, 40, 40), -1)
    return image


class Restarts:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


class Health:
    def __init__(self) -> None:
        self.value = GatewayHealth(
            cpu_percent=12.5,
            memory_percent=40.0,
            disk_percent=55.0,
            uptime_s=3_600.0,
            buffer_depth=7,
            buffer_bytes=2_048,
            dropped={"telemetry": 3, "non_finite": 1},
            adapters={CAMERA: AdapterState.RUNNING, OTHER_CAMERA: AdapterState.OFFLINE, "door-1": AdapterState.RUNNING},
        )
        self.error: Exception | None = None

    def __call__(self) -> GatewayHealth:
        if self.error is not None:
            raise self.error
        return self.value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW_MS)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def store(state_dir: Path, clock: FakeClock) -> SnapshotStore:
    return SnapshotStore(state_dir / "snapshots", SnapshotPolicy(min_interval_s=1.0), clock)


@pytest.fixture
def restarts() -> Restarts:
    return Restarts()


@pytest.fixture
def health() -> Health:
    return Health()


FLEET_KEY = Ed25519PrivateKey.generate()


def make_handler(
    state_dir: Path,
    clock: FakeClock,
    store: SnapshotStore,
    health: Health,
    restarts: Restarts,
    *,
    audit: AuditLog | None = None,
    memory: CommandMemory | None = None,
    **options: Any,
) -> CommandHandler:
    """A handler trusting :data:`FLEET_KEY`, remembering accepted commands in ``state_dir``."""
    stamper = EnvelopeStamper(GATEWAY, SequenceCounter(state_dir / "sequence"), clock)
    return CommandHandler(
        stamper,
        store,
        audit if audit is not None else AuditLog(state_dir / AUDIT_LOG_NAME),
        health,
        restarts,
        signatures=ConfigSignatures(VILLAGE, GATEWAY, [FLEET_KEY.public_key()]),
        memory=memory if memory is not None else CommandMemory(state_dir / COMMAND_MEMORY_NAME),
        certificates=options.pop("certificates", CertificateInstaller(None, GATEWAY, clock)),
        **options,
    )


@pytest.fixture
def handler(
    state_dir: Path, clock: FakeClock, store: SnapshotStore, health: Health, restarts: Restarts
) -> CommandHandler:
    return make_handler(state_dir, clock, store, health, restarts, agent_version="9.8.7")


def command(
    name: CommandName,
    *,
    args: dict[str, EvidenceValue] | None = None,
    requested_by: str | None = None,
    reason: str | None = None,
    ts: int = NOW_MS - 2_000,
    timeout_s: float = 30.0,
    gateway_id: str = GATEWAY,
    attachment: bytes | None = None,
) -> Command:
    """The command as the fleet sends it: signed with :data:`FLEET_KEY`."""
    unsigned = Command(
        gateway_id=gateway_id,
        seq=1,
        event_id=uuid.uuid4(),
        ts=ts,
        request_id=uuid.uuid4(),
        name=name,
        args=args or {},
        requested_by=requested_by,
        reason=reason,
        timeout_s=timeout_s,
        attachment=attachment,
    )
    return signed(unsigned, FLEET_KEY)


def signed(unsigned: Command, key: Ed25519PrivateKey) -> Command:
    return unsigned.model_copy(update={"signature": sign_command(key, unsigned), "key_id": key_id(key.public_key())})


def fetch(snapshot_id: EvidenceValue, **kwargs: Any) -> Command:
    return command(CommandName.FETCH_SNAPSHOT, args={"snapshot_id": snapshot_id}, **kwargs)


def only_response(messages: list[Message]) -> CommandResponse:
    assert len(messages) == 1
    response = messages[0]
    assert isinstance(response, CommandResponse)
    return response


def audit_records(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / AUDIT_LOG_NAME
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def over_the_wire(message: Message) -> Message:
    """``message`` encoded as the uplink would and decoded as the fleet's ingest does."""
    topic = gateway_topic(VILLAGE, GATEWAY, channel_of(message))
    decoded = Decoder().decode(topic, encode(message))
    assert isinstance(decoded, Inbound), decoded
    return decoded.message


def kept(
    store: SnapshotStore, device_id: str = CAMERA, ts: int = NOW_MS - 60_000, reason: str = "motion"
) -> SnapshotInfo:
    info = store.keep(device_id, frame(ts // 1000), ts, reason)
    assert info is not None
    return info


# --- fetch_snapshot -----------------------------------------------------------------------------------


async def test_a_granted_fetch_returns_the_jpeg_an_audit_event_and_an_audit_record(
    handler: CommandHandler, store: SnapshotStore, state_dir: Path
) -> None:
    info = kept(store, reason="line_crossing in")
    request = fetch(info.id, requested_by=OFFICER, reason=WHY)

    messages = await handler.handle(request)

    event, response = (over_the_wire(message) for message in messages)  # both fit the wire as they are
    assert isinstance(event, DeviceEvent)
    assert event.kind is EventKind.SNAPSHOT_FETCHED
    assert event.device_id == CAMERA
    assert event.gateway_id == GATEWAY
    assert event.evidence == {
        "snapshot_id": info.id,
        "snapshot_ts": info.ts,
        "bytes": info.size_bytes,
        "requested_by": OFFICER,
        "reason": WHY,
        "request_id": str(request.request_id),
    }
    assert isinstance(response, CommandResponse)
    assert response.ok
    assert response.error is None
    assert response.request_id == request.request_id
    assert response.result["snapshot_id"] == info.id
    assert response.result["device_id"] == CAMERA
    assert response.result["kept_because"] == "line_crossing in"
    assert response.attachment == store.read(info.id)
    image = cv2.imdecode(np.frombuffer(response.attachment, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (360, 640, 3)
    assert event.seq < response.seq  # the audit event is queued before the picture
    [record] = audit_records(state_dir)
    assert record["granted"] is True
    assert record["error"] is None
    assert record["requested_by"] == OFFICER
    assert record["reason"] == WHY
    assert record["snapshot_id"] == info.id
    assert record["device_id"] == CAMERA
    assert record["request_id"] == str(request.request_id)
    assert record["command_event_id"] == str(request.event_id)
    assert record["ts"] == NOW_MS


@pytest.mark.parametrize(
    ("requested_by", "reason", "error"),
    [
        (None, WHY, "requested_by"),
        ("   ", WHY, "requested_by"),
        (OFFICER, None, "reason"),
        (OFFICER, "", "reason"),
    ],
)
async def test_a_fetch_without_who_and_why_is_refused_and_audited(
    handler: CommandHandler,
    store: SnapshotStore,
    state_dir: Path,
    requested_by: str | None,
    reason: str | None,
    error: str,
) -> None:
    info = kept(store)

    response = only_response(await handler.handle(fetch(info.id, requested_by=requested_by, reason=reason)))

    assert not response.ok
    assert response.error is not None
    assert error in response.error
    assert response.attachment is None
    [record] = audit_records(state_dir)
    assert record["granted"] is False
    assert record["snapshot_id"] == info.id
    assert record["requested_by"] == requested_by
    assert record["error"] == response.error


@pytest.mark.parametrize(
    ("snapshot_id", "error"),
    [
        ("../../etc/passwd", "malformed"),
        ("../" + "0" * 29, "malformed"),
        (12345, "malformed"),
        ("0123456789abcdef" * 2, "no snapshot"),
    ],
)
async def test_a_fetch_of_a_malformed_or_unknown_id_is_refused_and_audited(
    handler: CommandHandler, store: SnapshotStore, state_dir: Path, snapshot_id: EvidenceValue, error: str
) -> None:
    kept(store)

    messages = await handler.handle(fetch(snapshot_id, requested_by=OFFICER, reason=WHY))

    response = only_response(messages)
    assert not response.ok
    assert response.error is not None
    assert error in response.error
    assert response.attachment is None
    [record] = audit_records(state_dir)
    assert record["granted"] is False
    assert record["snapshot_id"] == snapshot_id
    assert record["requested_by"] == OFFICER


async def test_a_fetch_without_a_snapshot_id_is_refused_and_audited(handler: CommandHandler, state_dir: Path) -> None:
    request = command(CommandName.FETCH_SNAPSHOT, requested_by=OFFICER, reason=WHY)

    response = only_response(await handler.handle(request))

    assert not response.ok
    assert response.error is not None
    assert "snapshot_id" in response.error
    assert [record["granted"] for record in audit_records(state_dir)] == [False]


async def test_an_expired_snapshot_cannot_be_fetched(
    handler: CommandHandler, store: SnapshotStore, clock: FakeClock, state_dir: Path
) -> None:
    info = kept(store)
    clock.now_ms = info.ts + round(store.policy.retention_s * 1000) + 1

    response = only_response(await handler.handle(fetch(info.id, requested_by=OFFICER, reason=WHY, ts=clock.now_ms)))

    assert not response.ok
    assert response.attachment is None
    assert [record["granted"] for record in audit_records(state_dir)] == [False]


async def test_a_fetch_is_refused_when_its_audit_record_cannot_be_written(
    state_dir: Path, clock: FakeClock, store: SnapshotStore, health: Health, restarts: Restarts
) -> None:
    info = kept(store)
    (state_dir / "not-a-dir").write_bytes(b"")
    audit = AuditLog(state_dir / "not-a-dir" / AUDIT_LOG_NAME)
    handler = make_handler(state_dir, clock, store, health, restarts, audit=audit)

    response = only_response(await handler.handle(fetch(info.id, requested_by=OFFICER, reason=WHY)))

    assert not response.ok
    assert response.error is not None
    assert "audit log" in response.error
    assert response.attachment is None


async def test_every_attempt_is_appended_to_the_audit_log(
    handler: CommandHandler, store: SnapshotStore, state_dir: Path
) -> None:
    info = kept(store)
    (state_dir / AUDIT_LOG_NAME).write_text('{"granted": true, "snapsh', encoding="utf-8")  # cut by a power cut

    await handler.handle(fetch(info.id, reason=WHY))
    await handler.handle(fetch(info.id, requested_by=OFFICER, reason=WHY))

    lines = (state_dir / AUDIT_LOG_NAME).read_text(encoding="utf-8").splitlines()
    assert lines[0] == '{"granted": true, "snapsh'
    assert [json.loads(line)["granted"] for line in lines[1:]] == [False, True]


# --- list_snapshots -----------------------------------------------------------------------------------


async def test_a_listing_names_the_newest_snapshots_within_the_wire_limits(
    handler: CommandHandler, store: SnapshotStore
) -> None:
    infos = [kept(store, CAMERA if i % 2 else OTHER_CAMERA, NOW_MS - 100_000 + i * 2_000, f"reason {i} " + "x" * 200)
             for i in range(30)]  # fmt: skip
    newest_first = sorted(infos, key=lambda info: info.ts, reverse=True)

    response = over_the_wire(only_response(await handler.handle(command(CommandName.LIST_SNAPSHOTS))))

    assert isinstance(response, CommandResponse)
    assert response.ok
    result = response.result
    assert len(result) <= 32
    assert all(len(value) <= 256 for value in result.values() if isinstance(value, str))
    assert result["count"] == 30
    assert result["listed"] == LIST_ENTRIES
    assert result["more"] is True
    assert result["total_bytes"] == sum(info.size_bytes for info in infos)
    assert result["newest_ts"] == newest_first[0].ts
    assert result["oldest_ts"] == newest_first[-1].ts
    entries = [str(result[f"snapshot_{i:02d}"]).split(" ", 3) for i in range(LIST_ENTRIES)]
    assert [(e[0], int(e[1]), e[2]) for e in entries] == [
        (info.id, info.ts, info.device_id) for info in newest_first[:LIST_ENTRIES]
    ]
    assert entries[0][3].startswith(newest_first[0].reason[:20])


async def test_the_next_page_and_one_camera_are_listed_on_request(
    handler: CommandHandler, store: SnapshotStore
) -> None:
    infos = [kept(store, CAMERA if i % 2 else OTHER_CAMERA, NOW_MS - 100_000 + i * 2_000) for i in range(30)]
    newest_first = sorted(infos, key=lambda info: info.ts, reverse=True)
    last_listed = newest_first[LIST_ENTRIES - 1]

    page = only_response(await handler.handle(command(CommandName.LIST_SNAPSHOTS, args={"before_ts": last_listed.ts})))
    one = only_response(await handler.handle(command(CommandName.LIST_SNAPSHOTS, args={"device_id": CAMERA})))

    assert page.result["count"] == page.result["listed"] == 30 - LIST_ENTRIES
    assert page.result["more"] is False
    assert [str(page.result[f"snapshot_{i:02d}"]).split(" ")[0] for i in range(6)] == [
        info.id for info in newest_first[LIST_ENTRIES:]
    ]
    assert one.result["count"] == 15
    assert all(f" {CAMERA} " in str(value) for key, value in one.result.items() if key.startswith("snapshot_"))


async def test_an_empty_listing_says_so(handler: CommandHandler) -> None:
    response = only_response(await handler.handle(command(CommandName.LIST_SNAPSHOTS)))

    assert response.ok
    assert response.result["count"] == 0
    assert response.result["listed"] == 0
    assert not any(key.startswith("snapshot_") for key in response.result)


@pytest.mark.parametrize(
    "args",
    [{"device_id": "../x"}, {"before_ts": "yesterday"}, {"before_ts": True}, {"limit": 5}],
)
async def test_a_listing_with_bad_arguments_is_refused(handler: CommandHandler, args: dict[str, EvidenceValue]) -> None:
    response = only_response(await handler.handle(command(CommandName.LIST_SNAPSHOTS, args=args)))

    assert not response.ok
    assert response.error


# --- diagnostics and restart --------------------------------------------------------------------------


async def test_diagnostics_report_version_uptime_buffer_and_adapter_states(
    handler: CommandHandler, store: SnapshotStore
) -> None:
    kept(store)

    response = over_the_wire(only_response(await handler.handle(command(CommandName.DIAGNOSTICS))))

    assert isinstance(response, CommandResponse)
    assert response.ok
    result = response.result
    assert result["agent_version"] == "9.8.7"
    assert result["uptime_s"] == 3_600.0
    assert result["buffer_depth"] == 7
    assert result["dropped_total"] == 4
    assert result["adapters"] == 3
    assert result["adapters_running"] == 2
    assert result["adapters_offline"] == 1
    assert result["adapters_restarting"] == 0
    assert result["offline_devices"] == OTHER_CAMERA
    assert result["snapshots"] == 1
    assert result["snapshots_enabled"] is True


async def test_diagnostics_of_many_failing_adapters_fit_the_wire(handler: CommandHandler, health: Health) -> None:
    adapters = {f"node-{i:03d}-with-a-long-name": AdapterState.OFFLINE for i in range(256)}
    health.value = health.value.model_copy(update={"adapters": adapters})

    response = over_the_wire(only_response(await handler.handle(command(CommandName.DIAGNOSTICS))))

    assert isinstance(response, CommandResponse)
    assert response.result["adapters_offline"] == 256
    listed = str(response.result["offline_devices"])
    assert len(listed) <= 256
    named, more = listed.rsplit(",", 1)
    assert more == f"+{256 - len(named.split(','))}"
    assert named.split(",") == sorted(adapters)[: len(named.split(","))]


async def test_a_failing_diagnostics_source_is_an_error_answer(handler: CommandHandler, health: Health) -> None:
    health.error = RuntimeError("psutil broke")

    response = only_response(await handler.handle(command(CommandName.DIAGNOSTICS)))

    assert not response.ok
    assert response.error is not None
    assert "psutil broke" in response.error


async def test_restart_is_acknowledged_before_the_agent_is_asked_to_restart(
    handler: CommandHandler, restarts: Restarts
) -> None:
    response = only_response(await handler.handle(command(CommandName.RESTART_AGENT)))

    assert response.ok
    assert restarts.calls == 0  # the caller queues the acknowledgement first
    await asyncio.sleep(0)
    assert restarts.calls == 1


# --- install_certificate ------------------------------------------------------------------------------


async def test_a_signed_renewed_certificate_is_installed_and_a_swapped_one_is_refused(
    tmp_path: Path, state_dir: Path, clock: FakeClock, store: SnapshotStore, health: Health, restarts: Restarts
) -> None:
    pki = write_certificates(tmp_path / "pki")
    tls = enrolled_tls(tmp_path, pki, GATEWAY)
    assert tls.cert_file is not None
    enrolled = tls.cert_file.read_bytes()
    handler = make_handler(
        state_dir, clock, store, health, restarts, certificates=CertificateInstaller(tls, GATEWAY, clock)
    )
    renewed, another = (renewed_for(pki, tls, GATEWAY, at_ms=NOW_MS) for _ in range(2))
    genuine = over_the_wire(command(CommandName.INSTALL_CERTIFICATE, attachment=renewed))
    assert isinstance(genuine, Command)
    swapped = command(CommandName.INSTALL_CERTIFICATE, attachment=renewed).model_copy(update={"attachment": another})

    refused = only_response(await handler.handle(swapped))  # signed for one certificate, carrying another
    assert tls.cert_file.read_bytes() == enrolled
    installed = only_response(await handler.handle(genuine))
    empty = only_response(await handler.handle(command(CommandName.INSTALL_CERTIFICATE)))

    assert (refused.ok, installed.ok, empty.ok) == (False, True, False)
    assert "signature" in str(refused.error)
    assert tls.cert_file.read_bytes() == renewed
    assert "not_after" in installed.result
    assert "carries the certificate as its attachment" in str(empty.error)


# --- every command ------------------------------------------------------------------------------------


async def test_a_command_older_than_its_timeout_is_refused_as_expired(
    handler: CommandHandler, store: SnapshotStore, restarts: Restarts, state_dir: Path
) -> None:
    info = kept(store)
    stale = NOW_MS - 3 * 3_600_000  # queued while the gateway was offline

    answers = [
        only_response(await handler.handle(command(CommandName.RESTART_AGENT, ts=stale))),
        only_response(await handler.handle(command(CommandName.DIAGNOSTICS, ts=NOW_MS - 31_000))),
        only_response(await handler.handle(fetch(info.id, requested_by=OFFICER, reason=WHY, ts=stale))),
    ]
    await asyncio.sleep(0)

    assert [answer.ok for answer in answers] == [False, False, False]
    assert all(answer.error is not None and answer.error.startswith("expired") for answer in answers)
    assert answers[2].attachment is None
    assert restarts.calls == 0
    assert [record["granted"] for record in audit_records(state_dir)] == [False]


@pytest.mark.parametrize("ahead_ms", [60_001, 3_600_000, 86_400_000], ids=["just-beyond", "an-hour", "a-day"])
async def test_a_command_dated_in_the_future_beyond_the_allowance_is_refused_saying_why(
    handler: CommandHandler, store: SnapshotStore, restarts: Restarts, state_dir: Path, ahead_ms: int
) -> None:
    info = kept(store)
    future = NOW_MS + ahead_ms  # the fleet's clock runs ahead, or this gateway's behind

    answers = [
        only_response(await handler.handle(command(CommandName.RESTART_AGENT, ts=future))),
        only_response(await handler.handle(fetch(info.id, requested_by=OFFICER, reason=WHY, ts=future))),
    ]
    await asyncio.sleep(0)

    assert [answer.ok for answer in answers] == [False, False]
    for answer in answers:
        assert answer.error is not None
        assert answer.error.startswith(f"dated {ahead_ms / 1000:.0f} s in the future")
        assert "allowed 60 s" in answer.error
        assert "clock is wrong" in answer.error
    assert answers[1].attachment is None
    assert restarts.calls == 0
    assert [record["granted"] for record in audit_records(state_dir)] == [False]


async def test_a_command_dated_ahead_within_the_allowance_runs(handler: CommandHandler) -> None:
    response = only_response(await handler.handle(command(CommandName.DIAGNOSTICS, ts=NOW_MS + 60_000)))

    assert response.ok


async def test_the_allowance_for_a_command_dated_ahead_is_settable(
    state_dir: Path, clock: FakeClock, store: SnapshotStore, health: Health, restarts: Restarts
) -> None:
    strict = make_handler(state_dir, clock, store, health, restarts, max_ahead_s=5.0)

    refused = only_response(await strict.handle(command(CommandName.DIAGNOSTICS, ts=NOW_MS + 5_001)))
    taken = only_response(await strict.handle(command(CommandName.DIAGNOSTICS, ts=NOW_MS + 5_000)))

    assert not refused.ok
    assert refused.error is not None
    assert "allowed 5 s" in refused.error
    assert taken.ok


async def test_a_command_within_its_timeout_runs(handler: CommandHandler) -> None:
    response = only_response(await handler.handle(command(CommandName.DIAGNOSTICS, ts=NOW_MS - 29_000)))

    assert response.ok


async def test_a_command_for_another_gateway_is_refused(handler: CommandHandler, restarts: Restarts) -> None:
    response = only_response(await handler.handle(command(CommandName.RESTART_AGENT, gateway_id="gw-02")))
    await asyncio.sleep(0)

    assert not response.ok
    assert restarts.calls == 0


async def test_unknown_arguments_are_refused(handler: CommandHandler) -> None:
    response = only_response(await handler.handle(command(CommandName.DIAGNOSTICS, args={"verbose": True})))

    assert not response.ok
    assert response.error is not None
    assert "verbose" in response.error


async def test_a_repeated_delivery_of_one_request_is_answered_once(handler: CommandHandler, restarts: Restarts) -> None:
    request = command(CommandName.RESTART_AGENT)

    first = await handler.handle(request)
    again = await handler.handle(request)
    await asyncio.sleep(0)

    assert only_response(first).ok
    assert again == []
    assert restarts.calls == 1


# --- signatures and replays ---


async def test_an_unsigned_command_is_refused_before_anything_runs(handler: CommandHandler, restarts: Restarts) -> None:
    unsigned = command(CommandName.RESTART_AGENT).model_copy(update={"signature": None, "key_id": None})

    response = only_response(await handler.handle(unsigned))
    await asyncio.sleep(0)

    assert not response.ok
    assert response.error is not None
    assert response.error.startswith("unsigned command refused")
    assert restarts.calls == 0


@pytest.mark.parametrize(
    "forge",
    [
        lambda c: signed(c.model_copy(update={"signature": None, "key_id": None}), Ed25519PrivateKey.generate()),
        lambda c: c.model_copy(update={"timeout_s": 3600.0}),  # a later expiry
        lambda c: c.model_copy(update={"gateway_id": "gw-01", "requested_by": "intruder"}),  # who asked
        lambda c: c.model_copy(update={"request_id": uuid.uuid4()}),  # a fresh id to slip past the memory
    ],
    ids=["other-key", "extended", "requester", "new-request-id"],
)
async def test_a_forged_or_altered_command_is_refused(handler: CommandHandler, restarts: Restarts, forge: Any) -> None:
    response = only_response(await handler.handle(forge(command(CommandName.RESTART_AGENT))))
    await asyncio.sleep(0)

    assert not response.ok
    assert response.error is not None
    assert "signature does not verify" in response.error
    assert restarts.calls == 0


async def test_a_command_replayed_after_a_restart_is_ignored(
    state_dir: Path, clock: FakeClock, store: SnapshotStore, health: Health, restarts: Restarts
) -> None:
    request = command(CommandName.RESTART_AGENT)
    assert only_response(await make_handler(state_dir, clock, store, health, restarts).handle(request)).ok
    await asyncio.sleep(0)

    again = await make_handler(state_dir, clock, store, health, restarts).handle(request)  # the agent restarted
    await asyncio.sleep(0)

    assert again == []
    assert restarts.calls == 1


async def test_expired_commands_are_forgotten_at_start(state_dir: Path, clock: FakeClock) -> None:
    memory = CommandMemory(state_dir / COMMAND_MEMORY_NAME)
    memory.load(clock())
    old, recent = uuid.uuid4(), uuid.uuid4()
    assert memory.remember(old, clock() - 2 * 3_600_000, clock())
    assert memory.remember(recent, clock() + 30_000, clock())

    reloaded = CommandMemory(state_dir / COMMAND_MEMORY_NAME)
    reloaded.load(clock())

    assert len(reloaded) == 1
    assert not reloaded.remember(recent, clock() + 30_000, clock())
    assert len((state_dir / COMMAND_MEMORY_NAME).read_text().splitlines()) == 1, "rewritten with the live ids only"


async def test_a_full_memory_refuses_new_commands_rather_than_forget(
    state_dir: Path, clock: FakeClock, store: SnapshotStore, health: Health, restarts: Restarts
) -> None:
    memory = CommandMemory(state_dir / COMMAND_MEMORY_NAME, max_remembered=2)
    handler = make_handler(state_dir, clock, store, health, restarts, memory=memory)

    answers = [only_response(await handler.handle(command(CommandName.DIAGNOSTICS))) for _ in range(3)]

    assert [answer.ok for answer in answers] == [True, True, False]
    assert answers[2].error is not None
    assert "could run twice" in answers[2].error


async def test_a_command_whose_memory_cannot_be_written_is_refused(
    state_dir: Path, clock: FakeClock, store: SnapshotStore, health: Health, restarts: Restarts
) -> None:
    blocked = state_dir.parent / "not-a-dir"
    blocked.write_bytes(b"")
    memory = CommandMemory(blocked / COMMAND_MEMORY_NAME)
    handler = make_handler(state_dir, clock, store, health, restarts, memory=memory)

    response = only_response(await handler.handle(command(CommandName.RESTART_AGENT)))
    await asyncio.sleep(0)

    assert not response.ok
    assert restarts.calls == 0
