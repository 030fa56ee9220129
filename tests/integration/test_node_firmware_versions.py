"""The firmware version the real node firmware reports reaches the fleet's time series, end to end.

A one-village :class:`SimulatedCounty` with a local Mosquitto runs the real firmware on three simulated
nodes and the real gateway agent; the fleet (``fleet run`` in this process, SQLite, embedded time series)
takes the gateway's heartbeats from the county's Mosquitto and its state export writes one
``device_firmware`` point per node, tagged with the version the firmware's heartbeat sent.
"""

from pathlib import Path

import pytest

from edge.settings import BrokerSettings
from fleet.settings import StateExportSettings
from fleet.timeseries.embedded import EmbeddedSink
from protocol.series import DEVICE_FIRMWARE, UNASSIGNED
from simulators.county import SimulatedCounty
from simulators.infra.mosquitto import MosquittoBroker
from simulators.nodes.firmware import load_firmware
from simulators.nodes.village import node_devices
from simulators.nodes.village_broker import VillageMosquitto
from tests.integration.conftest import Platform, eventually, fleet_settings, running_service

pytestmark = pytest.mark.integration


async def test_the_firmware_version_each_node_reports_is_exported_as_device_firmware(
    tmp_path: Path, mosquitto: MosquittoBroker, village_broker: VillageMosquitto, platform: Platform
) -> None:
    version = load_firmware().version
    settings = fleet_settings(tmp_path / "fleet", mosquitto, platform.server.url).model_copy(
        update={"state_export": StateExportSettings(interval_s=1.0)}
    )
    county = SimulatedCounty(
        1,
        BrokerSettings(host=mosquitto.host, port=mosquitto.port),
        tmp_path / "county",
        heartbeat_interval_s=1.0,
        local_brokers=[village_broker],
    )
    [gateway] = county.gateways
    village_id = gateway.settings.village_id
    nodes = sorted(spec.id for spec in node_devices(village_id))
    (tmp_path / "fleet").mkdir()

    async with running_service(settings) as fleet:
        sink = fleet.writer.sink
        assert isinstance(sink, EmbeddedSink)

        async def latest() -> dict[str, tuple[dict[str, str], float]]:
            """Each node's latest device_firmware point, by device."""
            return {
                tags["device"]: (tags, value) for tags, value, _ in await sink.series(DEVICE_FIRMWARE.name, "count")
            }

        async def every_node_exported() -> bool:
            return sorted(await latest()) == nodes

        await county.start()
        try:
            await eventually(every_node_exported, timeout_s=30, what="every node's firmware version exported")
            exported = await latest()
        finally:
            await county.stop()

    place = {"county": UNASSIGNED, "town": UNASSIGNED, "village": village_id, "gateway": gateway.gateway_id}
    assert exported == {node: (place | {"device": node, "firmware": version}, 1.0) for node in nodes}
