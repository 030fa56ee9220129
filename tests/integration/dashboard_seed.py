"""Seeds VictoriaMetrics and InfluxDB 1.6 the way production does, for the dashboard query tests.

Two fleets on one Mosquitto take the same simulated county's traffic: one writes to VictoriaMetrics
(InfluxDB v2 write API, read with PromQL), the other to InfluxDB 1.6 (v1 write API, read with
InfluxQL). Each has its own SQLite database, its own registry (a county, two towns, three villages
with coordinates, imported through its API as a site list), its own reference governance platform
working cases (dispatch, resolve, close) and calling it back, and short acknowledgement deadlines.

While the county runs, presses of each village's ``panic-centre`` are acknowledged through each
fleet's API (acknowledge steps, and alerts that do not escalate); every other alert is left to
escalate until the platform dispatches it. Each platform refuses its first case for good (422), so
each fleet has a dead delivery. A last press just before the end stays open (a critical alert open
now). Then the fleets, the county, the platforms and the brokers stop, and only the two time-series
servers stay up for the queries.
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final

import httpx
from pydantic import AnyHttpUrl, SecretStr

from edge.health import HealthProbe
from edge.settings import BrokerSettings as EdgeBrokerSettings
from fleet.service import FleetService
from fleet.settings import (
    AlertSettings,
    DeliverySettings,
    FleetSettings,
    InfluxSettings,
    IngestSettings,
    StateExportSettings,
)
from protocol.clock import utc_now_ms
from protocol.messages import Severity
from simulators.county import SimulatedCounty, village_ids
from simulators.demo.stimulus import Stimulus
from simulators.governance.case_loop import CaseLoopSettings
from simulators.governance.platform import GovernancePlatform, callback_url_for
from simulators.infra.influxdb import InfluxDBServer
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.victoria import VictoriaMetricsServer
from simulators.nodes.village import NODE_IDS
from simulators.nodes.village_broker import VillageMosquitto
from tests.integration.conftest import (
    PLATFORM_SIGNING_SECRET,
    PLATFORM_TOKEN,
    eventually,
    fleet_api,
    fleet_settings,
    running_service,
)

logger = logging.getLogger(__name__)

COUNTY: Final = "anxi"
VILLAGES: Final = tuple(village_ids(3))
"""The simulated county's villages: the first has sensor nodes on its own broker."""
TOWN_OF: Final = {VILLAGES[0]: "hutou", VILLAGES[1]: "hutou", VILLAGES[2]: "longmen"}
COORDINATES: Final = {
    VILLAGES[0]: (25.05123, 118.01234),
    VILLAGES[1]: (25.07891, 118.04567),
    VILLAGES[2]: (24.99, 117.9),
}
DATABASE: Final = "outpost"
"""The InfluxDB 1.x database the InfluxQL fleet writes to and the dashboards' data source reads."""

RUN_S: Final = float(os.environ.get("OUTPOST_DASHBOARD_SEED_S", "24"))
"""How long the county runs: long enough for cases to be dispatched, resolved and closed, and for several
15 s buckets of gauges. The docs' previews are made with a longer run (docs/dashboards/README.md)."""
ACKNOWLEDGED_DEVICE: Final = "panic-centre"
"""Presses of this button are acknowledged by the village centre; the others escalate."""
LAST_PRESS_BEFORE_END_S: Final = 2.0
DEADLINES: Final = AlertSettings(rules={"ack_deadline_s": dict.fromkeys(Severity, 2.0)})
CASES: Final = CaseLoopSettings(
    dispatch_after_s=4.0,  # after the 2 s deadline: unacknowledged alerts escalate first
    resolve_after_s=3.0,
    feedback_after_s=0.5,
    close_after_s=0.5,
    retry_base_s=0.05,
    retry_cap_s=0.5,
)
DELIVERY: Final = DeliverySettings(retry_base_s=0.2, retry_cap_s=2.0)
REFUSED_FOR_GOOD: Final = HTTPStatus.UNPROCESSABLE_ENTITY
"""What each platform answers its first case request: the fleet dead-letters the message at once."""
SOC_MILLIDEGREES: Final = "48250\n"


@dataclass(frozen=True, slots=True)
class Seed:
    """The two servers' addresses and what was seeded: the places, the time span, the steps taken."""

    victoria_url: str
    influxdb_url: str
    database: str
    county: str
    town_of: Mapping[str, str]
    started_ms: int
    ended_ms: int
    happened: Mapping[str, Any]
    """What the run did, per fleet (alerts by state, deliveries, export rounds): for failure messages."""

    def towns(self) -> set[str]:
        return set(self.town_of.values())

    def villages_of(self, town: str) -> set[str]:
        return {village for village, its_town in self.town_of.items() if its_town == town}


def site_sheet() -> str:
    """The registry as a site list: one row per village, each with its town, county and coordinates."""
    rows = ["county_id,county_name,town_id,town_name,village_id,village_name,latitude,longitude"]
    for village, town in TOWN_OF.items():
        latitude, longitude = COORDINATES[village]
        names = f"{COUNTY},Anxi County,{town},{town.capitalize()} Town,{village},{village.capitalize()}"
        rows.append(f"{names},{latitude},{longitude}")
    return "\n".join(rows) + "\n"


@contextlib.asynccontextmanager
async def seeded(root: Path) -> AsyncIterator[Seed]:
    """Both servers, seeded; they stop (and their files go) when the context ends."""
    async with contextlib.AsyncExitStack() as servers:
        victoria = VictoriaMetricsServer()
        influxdb = InfluxDBServer()
        await asyncio.gather(servers.enter_async_context(victoria), servers.enter_async_context(influxdb))
        await influxdb.create_database(DATABASE)
        started_ms = utc_now_ms()
        happened = await _run_county(root, victoria, influxdb)
        ended_ms = utc_now_ms()
        await victoria.flush()
        yield Seed(victoria.url, influxdb.url, DATABASE, COUNTY, dict(TOWN_OF), started_ms, ended_ms, happened)


async def _run_county(root: Path, victoria: VictoriaMetricsServer, influxdb: InfluxDBServer) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as running:
        county_broker, village_broker = await asyncio.gather(
            running.enter_async_context(MosquittoBroker()), running.enter_async_context(VillageMosquitto(NODE_IDS))
        )
        platforms = {
            name: await running.enter_async_context(
                GovernancePlatform(token=PLATFORM_TOKEN, signing_secrets=[PLATFORM_SIGNING_SECRET], case_loop=CASES)
            )
            for name in ("promql", "influxql")
        }
        county = _county(root, county_broker, village_broker)
        running.push_async_callback(county.stop)  # after the fleets (see tests/integration/test_alert_loop.py)
        targets = {
            "promql": InfluxSettings(url=AnyHttpUrl(victoria.url), token=SecretStr("unused-by-victoria")),
            "influxql": InfluxSettings(
                url=AnyHttpUrl(influxdb.url),
                token=SecretStr("ignored-without-auth"),
                write_api="v1",
                influxql_database=DATABASE,
                query_language="influxql",
            ),
        }
        fleets: dict[str, FleetService] = {}
        for name, influx in targets.items():
            settings = _fleet_settings(root / name, county_broker, platforms[name], name, influx)
            fleets[name] = await running.enter_async_context(running_service(settings))
            platforms[name].set_callback_url(callback_url_for(fleets[name].http.url))
            platforms[name].faults.fail(1, status=REFUSED_FOR_GOOD)
        apis = {name: await running.enter_async_context(fleet_api(fleet.http.url)) for name, fleet in fleets.items()}
        for api in apis.values():
            imported = await api.post("/sites/import", content=site_sheet(), headers={"Content-Type": "text/csv"})
            assert imported.status_code == HTTPStatus.OK, imported.text

        stop_acknowledging = asyncio.Event()
        acknowledgers = [
            asyncio.create_task(_acknowledge_centre_presses(api, stop_acknowledging), name=f"acknowledge-{name}")
            for name, api in apis.items()
        ]
        try:
            await county.start()
            await _stimulate(county)
        finally:
            stop_acknowledging.set()
            acknowledged = await asyncio.gather(*acknowledgers)
        for name, fleet in fleets.items():
            await _exported_after(fleet, f"{name} fleet's state export after the run")
        return {
            name: await _happened(apis[name], fleets[name], platforms[name], count)
            for name, count in zip(apis, acknowledged, strict=True)
        }


async def _happened(
    api: httpx.AsyncClient, fleet: FleetService, platform: GovernancePlatform, acknowledged: int
) -> dict[str, Any]:
    """What one fleet saw: its alerts by state and level, dead deliveries, cases, export rounds."""
    states: dict[str, int] = {}
    for alert in await _alerts(api):
        key = f"{alert['state']}/{alert['level']}"
        states[key] = states.get(key, 0) + 1
    dead = await api.get("/deliveries", params={"state": "dead"})
    dead.raise_for_status()
    return {
        "acknowledged": acknowledged,
        "alerts": states,
        "dead_deliveries": len(dead.json()),
        "cases": len(platform.ledger.cases),
        "export_rounds": fleet.state_export.rounds if fleet.state_export is not None else None,
    }


def _county(root: Path, county_broker: MosquittoBroker, village_broker: VillageMosquitto) -> SimulatedCounty:
    county = SimulatedCounty(
        len(VILLAGES),
        EdgeBrokerSettings(host=county_broker.host, port=county_broker.port),
        root / "county",
        local_brokers=[village_broker],
    )
    # The gateways measure their SoC temperature as on a Pi: a thermal zone file with millidegrees (this
    # host may have none, and then the dashboards' temperature panel would have nothing to show).
    zone = root / "thermal_zone0_temp"
    zone.write_text(SOC_MILLIDEGREES)
    for gateway in county.gateways:
        gateway.agent._health = HealthProbe(gateway.settings.state_dir, thermal_zone=zone)
    return county


def _fleet_settings(
    directory: Path, broker: MosquittoBroker, platform: GovernancePlatform, name: str, influx: InfluxSettings
) -> FleetSettings:
    directory.mkdir(parents=True, exist_ok=True)
    settings = fleet_settings(
        directory,
        broker,
        platform.url,
        client_id=f"fleet-{name}",
        influx=influx,
        heartbeat_interval_s=2.0,
        signing_secret=PLATFORM_SIGNING_SECRET,
        alerts=DEADLINES,
        delivery=DELIVERY,
    )
    return settings.model_copy(
        update={
            "state_export": StateExportSettings(interval_s=1.0),
            "ingest": IngestSettings(share_group=f"dashboards-{name}"),  # each fleet takes every message
        }
    )


async def _stimulate(county: SimulatedCounty) -> None:
    """The demo's stimulus (random presses, doors, passers-by, node faults) and, in every village, both
    wired buttons pressed early (one acknowledged, one escalating); one last press near the end stays open."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    stimulus = Stimulus(county, press_every_s=4.0, fault_every_s=7.0, started=started)
    await asyncio.sleep(1.5)  # the gateways connect and say hello
    for gateway in county.gateways:
        for button in gateway.panic_buttons:
            button.press()
    last_press_done = False
    while (now := loop.time()) < started + RUN_S:
        stimulus.tick(now)
        if not last_press_done and now >= started + RUN_S - LAST_PRESS_BEFORE_END_S:
            county.gateways[0].panic_buttons[-1].press()
            last_press_done = True
        await asyncio.sleep(0.1)
    logger.info("stimulus: %d presses, faults %s", stimulus.presses, dict(stimulus.faults))


async def _acknowledge_centre_presses(api: httpx.AsyncClient, stop: asyncio.Event) -> int:
    """Acknowledge every raised panic alert of :data:`ACKNOWLEDGED_DEVICE` until ``stop``; how many."""
    acknowledged = 0
    while not stop.is_set():
        for alert in await _alerts(api, state="raised"):
            if alert["device_id"] != ACKNOWLEDGED_DEVICE:
                continue
            answer = await api.post(f"/alerts/{alert['id']}/acknowledge", json={"reason": "the centre is on it"})
            if answer.status_code == HTTPStatus.OK:
                acknowledged += 1
            elif answer.status_code != HTTPStatus.CONFLICT:  # dispatched meanwhile: fine
                answer.raise_for_status()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)
    return acknowledged


async def _alerts(api: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    answer = await api.get("/alerts", params={"limit": "1000", **params})
    answer.raise_for_status()
    alerts: list[dict[str, Any]] = answer.json()
    return alerts


async def _exported_after(fleet: FleetService, what: str) -> None:
    """Wait for two more state export rounds: one started after the run ended, so the gauges are current."""
    export = fleet.state_export
    assert export is not None, "the state export is off"
    target = export.rounds + 2

    async def done() -> bool:
        return export.rounds >= target

    await eventually(done, timeout_s=15, what=what)
