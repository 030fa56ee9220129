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
now).

The county's own gateways are not enrolled, and jobs reach only enrolled ones: so each fleet also has
:data:`JOB_GATEWAYS` light simulated gateways of its own (:class:`~simulators.updating_gateway.UpdatingGateway`,
the real protocol, the install simulated) enrolled in :data:`JOB_VILLAGE`, holds a signed agent release
:data:`NEW_AGENT`, and runs an agent-update job on them in waves from the start of the run; one of them fails
the new agent's health gate and rolls back (the job does not abort on it). Each fleet's job gateways are
enrolled in that fleet only, so each fleet's commands reach only its own; the other fleet registers them as
gateways it hears from, as it does the county's.

Then the fleets, the county, the platforms and the brokers stop, and only the two time-series
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
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
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
    ReleaseSettings,
    StateExportSettings,
)
from protocol.clock import utc_now_ms
from protocol.config_signing import public_key_pem
from protocol.messages import Severity
from protocol.releases import ReleaseManifest, describe, sign_release
from protocol.updates import ReleaseKind
from simulators.county import SimulatedCounty, village_ids
from simulators.demo.stimulus import Stimulus
from simulators.governance.case_loop import CaseLoopSettings
from simulators.governance.platform import GovernancePlatform, callback_url_for
from simulators.infra.influxdb import InfluxDBServer
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.victoria import VictoriaMetricsServer
from simulators.nodes.village import NODE_IDS
from simulators.nodes.village_broker import VillageMosquitto
from simulators.updating_gateway import UpdatingGateway
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
JOB_VILLAGE: Final = VILLAGES[-1]
"""Where each fleet's job gateways are enrolled: not the village the dashboards are looked at for."""
JOB_GATEWAYS: Final = 4
"""Each fleet's job gateways: a canary wave of one, then waves up to half and all of them."""
JOB_WAVES: Final = {"canary": 1, "steps": [0.5, 1.0]}
ROLLING_BACK: Final = 2
"""The job gateway (by number) whose new agent fails its health gate: it rolls back by itself."""
OLD_AGENT: Final = "1.0.0"
NEW_AGENT: Final = "1.1.0"
JOB_STEP_S: Final = RUN_S / 40
"""How long each simulated step of an update takes: the job ends about halfway through the run, its states each
seen by several of the 1 s state export's rounds (and, in a long run for the previews, by several 15 s buckets)."""
RELEASE_KEY: Final = Ed25519PrivateKey.generate()


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
        release_keys = root / "release-keys.pem"
        release_keys.write_text(public_key_pem(RELEASE_KEY.public_key()))
        fleets: dict[str, FleetService] = {}
        for name, influx in targets.items():
            releases = ReleaseSettings(directory=root / name / "releases", trusted_keys_file=release_keys)
            settings = _fleet_settings(root / name, county_broker, platforms[name], name, influx, releases)
            fleets[name] = await running.enter_async_context(running_service(settings))
            platforms[name].set_callback_url(callback_url_for(fleets[name].http.url))
            platforms[name].faults.fail(1, status=REFUSED_FOR_GOOD)
        apis = {name: await running.enter_async_context(fleet_api(fleet.http.url)) for name, fleet in fleets.items()}
        for api in apis.values():
            imported = await api.post("/sites/import", content=site_sheet(), headers={"Content-Type": "text/csv"})
            assert imported.status_code == HTTPStatus.OK, imported.text
        release = _agent_release(root / "release", NEW_AGENT)
        job_gateways = {name: await _prepare_job(api, name, release) for name, api in apis.items()}

        stop_acknowledging = asyncio.Event()
        acknowledgers = [
            asyncio.create_task(_acknowledge_centre_presses(api, stop_acknowledging), name=f"acknowledge-{name}")
            for name, api in apis.items()
        ]
        try:
            await county.start()
            for name, api in apis.items():
                for gateway_id in job_gateways[name]:
                    await running.enter_async_context(_job_gateway(county_broker, gateway_id))
                await _start_job(api, job_gateways[name])
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
    jobs = await api.get("/jobs")
    jobs.raise_for_status()
    return {
        "acknowledged": acknowledged,
        "alerts": states,
        "dead_deliveries": len(dead.json()),
        "cases": len(platform.ledger.cases),
        "jobs": {job["id"]: f"{job['state']} {job['counts']}" for job in jobs.json()},
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
    directory: Path,
    broker: MosquittoBroker,
    platform: GovernancePlatform,
    name: str,
    influx: InfluxSettings,
    releases: ReleaseSettings,
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
        releases=releases,
    )
    return settings.model_copy(
        update={
            "state_export": StateExportSettings(interval_s=1.0),
            "ingest": IngestSettings(share_group=f"dashboards-{name}"),  # each fleet takes every message
        }
    )


@dataclass(frozen=True, slots=True)
class _Release:
    """A signed agent release and its files, as ``outpost fleet releases upload`` sends them."""

    signed: dict[str, Any]
    files: dict[str, bytes]


def _agent_release(directory: Path, version: str) -> _Release:
    """An agent release of ``version`` signed with :data:`RELEASE_KEY`: one made-up wheel (the install is
    simulated)."""
    wheel = f"wheels/outpost-{version}-py3-none-any.whl"
    (directory / "wheels").mkdir(parents=True)
    (directory / wheel).write_bytes(version.encode() * 100)
    manifest = ReleaseManifest(
        kind=ReleaseKind.AGENT,
        version=version,
        created_ms=utc_now_ms(),
        install=f"outpost[edge]=={version}",
        files=describe(directory, [wheel]),
    )
    signed = sign_release(RELEASE_KEY, manifest).model_dump(mode="json")
    return _Release(signed, {wheel: (directory / wheel).read_bytes()})


async def _prepare_job(api: httpx.AsyncClient, name: str, release: _Release) -> list[str]:
    """Upload ``release`` to the fleet and enroll its job gateways in :data:`JOB_VILLAGE`; their ids."""
    uploaded = await api.post("/releases", json=release.signed)
    assert uploaded.status_code == HTTPStatus.CREATED, uploaded.text
    version = release.signed["manifest"]["version"]
    for path, content in release.files.items():
        answer = await api.put(f"/releases/agent/{version}/files/{path}", content=content)
        assert answer.status_code == HTTPStatus.OK, answer.text
    stored = await api.get(f"/releases/agent/{version}")
    assert stored.status_code == HTTPStatus.OK, stored.text
    assert stored.json()["state"] == "ready", stored.text
    gateway_ids = [f"gw-job-{name}-{number}" for number in range(JOB_GATEWAYS)]
    for gateway_id in gateway_ids:
        token = await api.post("/enrollment-tokens", json={"village_id": JOB_VILLAGE, "gateway_id": gateway_id})
        assert token.status_code == HTTPStatus.CREATED, token.text
        enrolment = {
            "schema_version": 1,
            "token": token.json()["secret"],
            "public_key_pem": public_key_pem(Ed25519PrivateKey.generate().public_key()),
            "hostname": gateway_id,
            "agent_version": OLD_AGENT,
        }
        enrolled = await api.post("/enroll", json=enrolment)
        assert enrolled.status_code == HTTPStatus.OK, enrolled.text
    return gateway_ids


def _job_gateway(broker: MosquittoBroker, gateway_id: str) -> UpdatingGateway:
    number = int(gateway_id.rsplit("-", 1)[1])

    def fails(version: str) -> str | None:
        return "no heartbeat reached the broker" if version == NEW_AGENT and number == ROLLING_BACK else None

    return UpdatingGateway(
        broker.host, broker.port, JOB_VILLAGE, gateway_id, agent_version=OLD_AGENT, interval_s=1.0, fails=fails,
        step_s=JOB_STEP_S,
    )  # fmt: skip


async def _start_job(api: httpx.AsyncClient, gateway_ids: list[str]) -> None:
    """Update the job gateways to :data:`NEW_AGENT` in waves; a rollback does not abort the job."""
    request = {
        "kind": "update_agent",
        "version": NEW_AGENT,
        "target": {"gateways": gateway_ids},
        "waves": JOB_WAVES,
        "abort": {"failures": None},
        "reason": "the dashboards' seed",
    }
    created = await api.post("/jobs", json=request)
    assert created.status_code == HTTPStatus.CREATED, created.text


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
