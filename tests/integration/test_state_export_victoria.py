"""The fleet's state export read back from a real VictoriaMetrics by the PromQL names dashboards use
(:meth:`protocol.series.Field.prom_name`), written by the running fleet through its batching writer and
InfluxDB-API sink."""

from pathlib import Path
from typing import Any

import pytest
from pydantic import AnyHttpUrl, SecretStr

from fleet.db.engine import create_engine, migrate, session_factory
from fleet.settings import InfluxSettings, StateExportSettings
from protocol.series import ALERT_STEP, FLEET_INGEST, GATEWAY_STATE, VILLAGE_STATE
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.victoria import VictoriaMetricsServer
from tests.fleet.state_export.seed import add_rows, alert, county, gateway, step, town, village
from tests.integration.conftest import Platform, eventually, fleet_settings, running_service

pytestmark = pytest.mark.integration

STEP_MS = 1_790_000_000_000


async def seed(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        await add_rows(
            session_factory(engine),
            [
                county(),
                town("riverside"),
                village("xihe", "riverside", latitude=30.123456, longitude=120.654321),
                village("dongpo"),  # no town, no coordinates, no gateways
                gateway("gw-1", "xihe", agent_version="1.4.0"),
                alert("a1", "gw-1", "xihe", raised_at_ms=STEP_MS - 3_000, escalate_at_ms=None),
                step("a1", "raise", STEP_MS - 2_000),
                step("a1", "note", STEP_MS),
                step("a1", "acknowledge", STEP_MS + 27_000),
            ],
        )
    finally:
        await engine.dispose()


def instant(answer: dict[str, Any]) -> list[tuple[dict[str, str], float]]:
    assert answer["status"] == "success", answer
    return [(item["metric"], float(item["value"][1])) for item in answer["data"]["result"]]


async def test_the_exported_state_is_queryable_by_its_promql_names(
    tmp_path: Path, mosquitto: MosquittoBroker, victoria: VictoriaMetricsServer, platform: Platform
) -> None:
    influx = InfluxSettings(url=AnyHttpUrl(victoria.url), token=SecretStr("unused-by-victoria"), bucket="outpost")
    settings = fleet_settings(tmp_path, mosquitto, platform.server.url, influx=influx).model_copy(
        update={"state_export": StateExportSettings(interval_s=1.0)}
    )
    await seed(settings.database_url)

    async with running_service(settings) as fleet:
        export = fleet.state_export
        assert export is not None

        async def two_rounds() -> bool:  # the second after ingest connected
            return export.rounds >= 2

        await eventually(two_rounds, what="two state export rounds")
        await victoria.flush()

        status = VILLAGE_STATE.field("status").prom_name
        assert instant(await victoria.query(f'{status}{{town="riverside"}}')) == [
            (
                {
                    "__name__": "village_state_status",
                    "county": "north",
                    "town": "riverside",
                    "village": "xihe",
                    "latitude": "30.12346",
                    "longitude": "120.65432",
                },
                2.0,  # a critical alert open
            )
        ]
        assert instant(await victoria.query(f'{status}{{town="unassigned"}}')) == [
            (
                {"__name__": "village_state_status", "county": "unassigned", "town": "unassigned", "village": "dongpo"},
                0.0,
            )
        ]
        versions = instant(
            await victoria.query(f"count by (agent_version) ({GATEWAY_STATE.field('online').prom_name})")
        )
        assert versions == [({"agent_version": "1.4.0"}, 1.0)]
        connected = FLEET_INGEST.field("connected").prom_name
        assert instant(await victoria.query(f'{connected}{{instance="fleet-0"}}'))[0][1] == 1.0

        [acknowledge] = await victoria.export(f'{ALERT_STEP.field("since_raised_s").prom_name}{{step="acknowledge"}}')
        assert acknowledge["metric"]["town"] == "riverside"
        assert acknowledge["metric"]["level"] == "village"
        assert acknowledge["timestamps"] == [STEP_MS + 27_000]
        assert acknowledge["values"] == [30.0]  # time to acknowledge
        steps = await victoria.export(f'{ALERT_STEP.field("count").prom_name}{{village="xihe"}}')
        assert sorted(series["metric"]["step"] for series in steps) == ["acknowledge", "raise"]  # no note
