"""Telemetry written through the fleet into a real InfluxDB-API server (VictoriaMetrics) reads back."""

import uuid

import aiomqtt
import pytest
from pydantic import AnyHttpUrl, SecretStr

from fleet.settings import InfluxSettings
from protocol.codec import encode
from protocol.messages import TelemetryBatch, TelemetryPoint
from protocol.topics import Channel, gateway_topic
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.victoria import VictoriaMetricsServer
from tests.integration.conftest import FleetFactory, eventually

pytestmark = pytest.mark.integration

BASE_MS = 1_795_000_000_000


async def test_telemetry_points_written_through_the_fleet_can_be_read_back(
    mosquitto: MosquittoBroker, victoria: VictoriaMetricsServer, start_fleet: FleetFactory
) -> None:
    fleet = await start_fleet(
        influx=InfluxSettings(url=AnyHttpUrl(victoria.url), token=SecretStr("unused-by-victoria"), bucket="outpost")
    )
    points = [
        TelemetryPoint(device_id="cam-entrance", metric="line_in", value=float(i % 7), ts=BASE_MS + i * 1000)
        for i in range(120)
    ]
    batch = TelemetryBatch(gateway_id="gw-taoyuan", seq=1, event_id=uuid.uuid4(), ts=BASE_MS, points=points)
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="gw-taoyuan") as client:
        await client.publish(gateway_topic("taoyuan", "gw-taoyuan", Channel.TELEMETRY), encode(batch), qos=1)
        # The same batch again (a QoS 1 redelivery): it must not be stored twice.
        await client.publish(gateway_topic("taoyuan", "gw-taoyuan", Channel.TELEMETRY), encode(batch), qos=1)

    async def written() -> bool:
        return fleet.writer.written >= len(points)

    await eventually(written, what="points accepted by VictoriaMetrics")
    await victoria.flush()
    [series] = await victoria.export('telemetry_line_in{gateway="gw-taoyuan"}')
    assert series["metric"] == {
        "__name__": "telemetry_line_in",
        "device": "cam-entrance",
        "gateway": "gw-taoyuan",
        "village": "taoyuan",
    }
    assert series["timestamps"] == [p.ts for p in points]
    assert series["values"] == [p.value for p in points]
    assert fleet.health().ingest.duplicates == 1
    assert fleet.health().timeseries.sink == "influxdb"
