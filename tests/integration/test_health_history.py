"""Health history read back from real time-series servers: VictoriaMetrics (PromQL) and InfluxDB 1.6 (InfluxQL).

VictoriaMetrics end to end: heartbeats published to Mosquitto, stored by the running fleet, answered by
``GET /gateways/{id}/health``. InfluxDB 1.6 cannot take the fleet's writes (it has no v2 write API),
so its points are seeded through its v1 ``/write``; the reader is the fleet's.
"""

from collections.abc import AsyncIterator

import aiomqtt
import pytest
from pydantic import AnyHttpUrl, SecretStr

from fleet.errors import TimeSeriesUnavailableError
from fleet.settings import InfluxSettings
from fleet.timeseries.history import MAX_SAMPLES, HealthQuery, HealthSample
from fleet.timeseries.history_influxql import InfluxqlHealthHistory
from protocol.codec import encode
from protocol.topics import Channel, gateway_topic
from simulators.infra.influxdb import InfluxDBServer
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.victoria import VictoriaMetricsServer
from tests.fleet.health_history_data import (
    BASE_MS,
    COUNT,
    GATEWAY,
    OTHER_GATEWAY,
    PERIOD_MS,
    STEP_MS,
    UNTIL_MS,
    VILLAGE,
    assert_samples,
    expected_raw,
    expected_stepped,
    heartbeat,
    seed_points,
)
from tests.integration.conftest import FleetFactory, eventually, fleet_api

pytestmark = pytest.mark.integration

DATABASE = "outpost"


@pytest.fixture
async def influxdb() -> AsyncIterator[InfluxDBServer]:
    if not InfluxDBServer.available():
        pytest.fail(InfluxDBServer.not_installed_message())
    async with InfluxDBServer() as server:
        await server.create_database(DATABASE)
        await server.write(DATABASE, [point.line() for point in seed_points()])
        yield server


async def test_health_history_written_by_the_fleet_is_read_back_from_victoria_metrics(
    mosquitto: MosquittoBroker, victoria: VictoriaMetricsServer, start_fleet: FleetFactory
) -> None:
    fleet = await start_fleet(
        influx=InfluxSettings(url=AnyHttpUrl(victoria.url), token=SecretStr("unused-by-victoria"))
    )
    heartbeats = [
        *(heartbeat(GATEWAY, i, BASE_MS + i * PERIOD_MS) for i in range(COUNT)),
        *(heartbeat(OTHER_GATEWAY, COUNT - i, BASE_MS + i * PERIOD_MS) for i in range(COUNT)),
        heartbeat(GATEWAY, 0, UNTIL_MS, seq=COUNT),  # at until: outside the range
    ]
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="health-history-publisher") as client:
        for beat in heartbeats:
            topic = gateway_topic(VILLAGE, beat.gateway_id, Channel.HEARTBEAT)
            await client.publish(topic, encode(beat), qos=1)

    async def stored() -> bool:
        return fleet.writer.written >= len(heartbeats)

    await eventually(stored, what="heartbeats written to VictoriaMetrics")
    await victoria.flush()

    async with fleet_api(fleet.http.url) as api:
        raw = (await api.get(f"/gateways/{GATEWAY}/health", params={"since": BASE_MS, "until": UNTIL_MS})).json()
        stepped = (
            await api.get(f"/gateways/{GATEWAY}/health", params={"since": BASE_MS, "until": UNTIL_MS, "step": "30s"})
        ).json()
        first_page = (
            await api.get(f"/gateways/{GATEWAY}/health", params={"since": BASE_MS, "until": UNTIL_MS, "limit": 5})
        ).json()

    assert raw["store"] == "victoriametrics"
    assert_samples([HealthSample(**s) for s in raw["samples"]], expected_raw())
    assert stepped["step_ms"] == STEP_MS
    assert_samples([HealthSample(**s) for s in stepped["samples"]], expected_stepped())
    assert first_page["truncated"]
    assert_samples([HealthSample(**s) for s in first_page["samples"]], expected_raw()[:5])


def _influxql_reader(server: InfluxDBServer, database: str = DATABASE) -> InfluxqlHealthHistory:
    settings = InfluxSettings(
        url=AnyHttpUrl(server.url),
        token=SecretStr("ignored-without-auth"),
        query_language="influxql",
        influxql_database=database,
    )
    return InfluxqlHealthHistory(settings)


async def test_health_history_is_read_back_from_influxdb_1_6_with_influxql(influxdb: InfluxDBServer) -> None:
    reader = _influxql_reader(influxdb)

    raw = await reader.health(HealthQuery.of(GATEWAY, BASE_MS, UNTIL_MS, None, MAX_SAMPLES))
    stepped = await reader.health(HealthQuery.of(GATEWAY, BASE_MS, UNTIL_MS, STEP_MS, MAX_SAMPLES))
    first = await reader.health(HealthQuery.of(GATEWAY, BASE_MS, UNTIL_MS, None, 5))
    rest = await reader.health(HealthQuery.of(GATEWAY, first.samples[-1].ts_ms + 1, UNTIL_MS, None, MAX_SAMPLES))

    assert_samples(raw.samples, expected_raw())
    assert not raw.truncated
    assert_samples(stepped.samples, expected_stepped())
    assert first.truncated
    assert_samples([*first.samples, *rest.samples], expected_raw())


async def test_an_influxdb_without_the_database_is_unavailable_not_empty(influxdb: InfluxDBServer) -> None:
    reader = _influxql_reader(influxdb, database="no-such-database")

    with pytest.raises(TimeSeriesUnavailableError, match="database not found"):
        await reader.health(HealthQuery.of(GATEWAY, BASE_MS, UNTIL_MS, None, 10))
