"""The village stays safe when the gateway's storage fails: a full disk, a corrupt buffer database.

A real agent, a real village Mosquitto with the village centre listening, a real county Mosquitto: each
press must sound the siren and reach the village centre within 200 ms while the fault lasts, and every
panic alert must reach the county once it can.
"""

import errno
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from edge.faults import ALERTS_UNBUFFERED, BUFFER_RESET_CORRUPT, STORE_FAILED
from edge.settings import BrokerSettings
from protocol.clock import utc_now_ms
from protocol.messages import Alert, Heartbeat
from protocol.topics import Channel
from simulators.infra.mosquitto import MosquittoBroker
from tests.edge.disk import small_filesystem
from tests.integration.conftest import eventually
from tests.integration.faults.gateway_rig import gateway_settings, panic_alerts, running_village
from tests.integration.recorder import Recorder

pytestmark = pytest.mark.integration

PRESSES = 3
STATE_FS_BYTES = 8 * 1024 * 1024


@pytest.fixture
async def county() -> AsyncIterator[MosquittoBroker]:
    """The county's broker, keeping sessions on disk so the recorder's survives a stop."""
    async with MosquittoBroker(persistence=True) as broker:
        yield broker


@pytest.fixture
def state_fs(tmp_path: Path) -> Iterator[Path]:
    """The gateway's state directory on a tmpfs of its own, small enough to fill for real."""
    try:
        with small_filesystem(tmp_path / "state", STATE_FS_BYTES) as path:
            yield path
    except PermissionError as exc:
        pytest.skip(f"a full disk needs a file system of its own: {exc}")


def fill(directory: Path) -> int:
    """Write a file until the file system refuses with ENOSPC; returns its size."""
    written = 0
    refusal: OSError | None = None
    with (directory / "filler").open("wb") as handle:
        while refusal is None:
            try:
                handle.write(b"\0" * 65536)
                handle.flush()
            except OSError as exc:
                refusal = exc
            else:
                written += 65536
        os.fsync(handle.fileno())
    assert refusal.errno == errno.ENOSPC
    return written


def _arrived(recorder: Recorder, alerts: list[Alert]) -> bool:
    ids = {alert.event_id for alert in alerts}
    return ids <= set(recorder.unique())


async def test_on_a_full_disk_presses_act_locally_at_once_and_every_alert_reaches_the_county(
    county: MosquittoBroker, local_broker: MosquittoBroker, state_fs: Path, record_property: object
) -> None:
    settings = gateway_settings(state_fs, BrokerSettings(port=county.port, keepalive_s=5), local_broker, camera=True)
    async with (
        Recorder(county.host, county.port, [Channel.ALERT]) as recorder,
        running_village(settings, local_broker, utc_now_ms) as rig,
    ):
        agent = rig.agent
        await eventually(lambda: _true(agent.uplink.connected.is_set()), what="the uplink connecting")
        await county.stop()  # nothing is forwarded: the camera's telemetry piles up in the buffer
        await eventually(lambda: _true(agent.buffer.depth >= 5), what="telemetry in the buffer")
        fill(state_fs)

        await eventually(lambda: _true(agent.faults.counts[STORE_FAILED] > 0), what="the buffer meeting the full disk")
        alerts = [await rig.press() for _ in range(PRESSES)]
        await county.start()
        await eventually(lambda: _true(_arrived(recorder, alerts)), timeout_s=20, what="the alerts at the county")
        counts = dict(agent.faults.counts)
        dropped = dict(agent.buffer.dropped)

    rig.report(record_property, "full disk")  # type: ignore[arg-type]
    assert len(panic_alerts(alerts)) == PRESSES
    # On a full file system SQLite cannot even delete (the WAL must grow) and this gateway keeps no
    # snapshots to free: the alerts went to the county from the uplink's memory.
    assert counts[ALERTS_UNBUFFERED] == PRESSES
    assert Channel.ALERT not in dropped


async def _true(value: bool) -> bool:
    return value


async def test_with_a_corrupt_buffer_database_the_agent_starts_fresh_acts_locally_and_reports_it(
    tmp_path: Path, county: MosquittoBroker, local_broker: MosquittoBroker, record_property: object
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    garbage = os.urandom(64 * 1024)
    (state / "buffer.db").write_bytes(garbage)
    settings = gateway_settings(state, BrokerSettings(port=county.port, keepalive_s=5), local_broker)
    async with (
        Recorder(county.host, county.port, [Channel.ALERT, Channel.HEARTBEAT]) as recorder,
        running_village(settings, local_broker, utc_now_ms) as rig,
    ):
        alerts = [await rig.press() for _ in range(PRESSES)]
        await eventually(lambda: _true(_arrived(recorder, alerts)), what="the alerts at the county")

        def reported() -> list[Heartbeat]:
            return [
                heartbeat
                for arrival in recorder.arrivals
                if isinstance(heartbeat := arrival.message, Heartbeat)
                and heartbeat.health.dropped.get(BUFFER_RESET_CORRUPT) == 1
            ]

        await eventually(lambda: _true(bool(reported())), what="a heartbeat reporting the reset")

    rig.report(record_property, "corrupt buffer.db")  # type: ignore[arg-type]
    [kept] = [path for path in state.iterdir() if path.name.startswith("buffer.db.corrupt-")]
    assert kept.read_bytes() == garbage  # kept for inspection
    assert len(panic_alerts(alerts)) == PRESSES
