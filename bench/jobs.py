"""Benchmark group ``jobs``: how long the village waits while its agent restarts for an update
(``jobs.local_safety_downtime_s``, :mod:`bench.jobs_safety`), and an agent-update job across many gateways against
the fleet's bare command fan-out.

The fleet (:class:`~fleet.service.FleetService`, in this process: SQLite registry, embedded time series) and a real
Mosquitto; :data:`GATEWAYS` simulated gateways in a process of their own (:mod:`bench.jobs_gateways`: the real
protocol over one MQTT connection each, the install simulated at :data:`STEP_S` a step). Each run:

- **bare fan-out** (the baseline): the fleet's command dispatcher sends ``diagnostics`` to every gateway, as many at
  once as the job engine sends, and waits until every answer is stored;
- **the job**: ``POST /jobs`` updates every gateway to a new release in waves (a canary of 1 %, then 10 %, 50 % and
  100 % of them, no throttle beyond the engine's own concurrency), and waits until it is done.

Figures (medians of the runs):

- ``jobs.wave_seconds``: the job's last wave (half the gateways), from its first command to its last gateway's
  ``succeeded``; baseline: the bare fan-out to as many gateways. The wave also holds each gateway's simulated
  update (7 steps of :data:`STEP_S`, a simulated restart and a heartbeat with each state), which the fan-out does
  not: the ratio is the price of following an update, not of sending it.
- ``jobs.fleet_cpu_ms_per_gateway``: CPU time of the fleet's process (all its threads) during the whole job,
  per gateway; baseline: the same during the bare fan-out.
"""

import asyncio
import json
import logging
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert

from bench.fleet_gateways import VILLAGES, gateway_id, village_id
from bench.harness import Figure, Profile, median, register_group
from bench.jobs_gateways import OLD_VERSION
from bench.jobs_safety import local_safety_downtime
from fleet.access.roles import Actor, Role
from fleet.commands.store import FINAL, NewCommand
from fleet.db.engine import create_engine, migrate
from fleet.db.schema import CommandRow, CountyRow, GatewayRow, TownRow, VillageRow
from fleet.service import FleetService
from fleet.settings import (
    DEVELOPMENT_ADMIN_TOKEN,
    ApiSettings,
    BrokerSettings,
    FleetSettings,
    JobSettings,
    PresenceSettings,
    ReleaseSettings,
    TimeSeriesSettings,
)
from protocol.config_signing import public_key_pem
from protocol.messages import CommandName
from protocol.releases import ReleaseManifest, describe, sign_release
from protocol.updates import ReleaseKind
from simulators.infra.mosquitto import MosquittoBroker

logger = logging.getLogger(__name__)

GATEWAYS: Final = 2_000
QUICK_GATEWAYS: Final = 200
STEP_S: Final = 0.05
INTERVAL_S: Final = 30.0
_FAN_OUT_CONCURRENCY: Final = 50  # as the job engine sends (fleet.jobs.engine)
_DONE_TIMEOUT_S: Final = 600.0
_POLL_S: Final = 0.5
LAST_WAVE_SHARE: Final = 0.5
"""The share of the gateways the job's last wave holds (waves to 1 %, 10 %, 50 %, 100 %)."""


@register_group(
    "jobs", "the village's wait while the agent restarts for an update; an update job against the bare fan-out"
)
def run(profile: Profile) -> list[Figure]:
    quick = profile.runs < 5
    runs = 1 if quick else 3
    return [local_safety_downtime(runs), *asyncio.run(_measure(QUICK_GATEWAYS if quick else GATEWAYS, runs))]


async def _measure(count: int, runs: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="outpost-bench-jobs-") as scratch:
        root = Path(scratch)
        key = Ed25519PrivateKey.generate()
        await _seed(root / "fleet.db", count)
        async with MosquittoBroker() as broker:
            fleet = FleetService(_settings(root, broker, key))
            stop = asyncio.Event()
            service = asyncio.create_task(fleet.run(stop))
            await _until(lambda: fleet.ready.is_set() and fleet.ingest.connected, "the fleet up")
            gateways = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.jobs_gateways", broker.host, str(broker.port), str(count), str(STEP_S),
                str(INTERVAL_S), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                assert gateways.stdout is not None
                ready = json.loads(await asyncio.wait_for(gateways.stdout.readline(), _DONE_TIMEOUT_S))
                assert ready == {"ready": count}, ready
                headers = {"Authorization": f"Bearer {DEVELOPMENT_ADMIN_TOKEN}"}
                async with httpx.AsyncClient(base_url=fleet.http.url, headers=headers, timeout=120) as api:
                    await _until_online(api, count)
                    fan_outs: list[tuple[float, float]] = []
                    jobs: list[tuple[float, float]] = []
                    for n in range(runs):
                        fan_outs.append(await _fan_out(fleet, count))
                        version = f"{n + 2}.0.0"
                        await _upload(api, root / f"release-{version}", version, key)
                        jobs.append(await _job(api, version, count))
                        logger.info("run %d: fan-out %s, job %s", n + 1, fan_outs[-1], jobs[-1])
            finally:
                if gateways.stdin is not None:
                    gateways.stdin.close()
                gateways.kill()
                await gateways.wait()
                stop.set()
                await service
    half_fan_out = [seconds * LAST_WAVE_SHARE for seconds, _ in fan_outs]
    return [
        Figure.measured(
            "jobs.wave_seconds", median([wave for wave, _ in jobs]), "s", better="lower", runs=runs,
            baseline=median(half_fan_out),
        ),
        Figure.measured(
            "jobs.fleet_cpu_ms_per_gateway", median([cpu for _, cpu in jobs]), "ms", better="lower", runs=runs,
            baseline=median([cpu for _, cpu in fan_outs]),
        ),
    ]  # fmt: skip


def _settings(root: Path, broker: MosquittoBroker, key: Ed25519PrivateKey) -> FleetSettings:
    trusted = root / "release-keys.pem"
    trusted.write_text(public_key_pem(key.public_key()))
    return FleetSettings(
        environment="development",
        database_url=f"sqlite+aiosqlite:///{root / 'fleet.db'}",
        broker=BrokerSettings(host=broker.host, port=broker.port, client_id="fleet-bench-jobs"),
        api=ApiSettings(port=0),
        timeseries=TimeSeriesSettings(embedded_path=root / "timeseries.db"),
        presence=PresenceSettings(default_interval_s=INTERVAL_S),
        releases=ReleaseSettings(directory=root / "releases", trusted_keys_file=trusted),
        jobs=JobSettings(tick_s=0.5),
    )


async def _seed(database: Path, count: int) -> None:
    """A county of :data:`VILLAGES` villages and ``count`` enrolled gateways (their keys are never used here)."""
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        await migrate(engine)
        key = public_key_pem(Ed25519PrivateKey.generate().public_key())
        now = int(time.time() * 1000)
        async with engine.begin() as connection:
            await connection.execute(insert(CountyRow), [{"id": "bench", "name": "Bench", "created_ms": now}])
            await connection.execute(
                insert(TownRow), [{"id": "town", "county_id": "bench", "name": "Town", "created_ms": now}]
            )
            villages = [
                {"id": village_id(n), "town_id": "town", "name": village_id(n), "first_seen_ms": now}
                for n in range(VILLAGES)
            ]
            await connection.execute(insert(VillageRow), villages)
            rows = [
                {"id": gateway_id(n), "village_id": village_id(n), "first_seen_ms": now, "public_key_pem": key,
                 "public_key_sha256": secrets.token_hex(32), "enrolled_ms": now, "agent_version": OLD_VERSION}
                for n in range(count)
            ]  # fmt: skip
            await connection.execute(insert(GatewayRow), rows)
    finally:
        await engine.dispose()


async def _fan_out(fleet: FleetService, count: int) -> tuple[float, float]:
    """``diagnostics`` to every gateway through the fleet's dispatcher; (seconds, fleet CPU ms per gateway)."""
    actor = Actor("bench", Role.ADMIN)
    limit = asyncio.Semaphore(_FAN_OUT_CONCURRENCY)

    async def send(n: int) -> str:
        command = NewCommand(gateway_id(n), village_id(n), CommandName.DIAGNOSTICS, {}, "bench", 120.0)
        async with limit:
            return (await fleet.commands.send(actor, command)).request_id

    started, cpu = time.perf_counter(), time.process_time()
    request_ids = await asyncio.gather(*(send(n) for n in range(count)))
    for request_id in request_ids:
        row: CommandRow = await fleet.commands.outcome(request_id, _DONE_TIMEOUT_S)
        assert row.state in {state.value for state in FINAL}, row.state
    return time.perf_counter() - started, (time.process_time() - cpu) * 1000 / count


async def _job(api: httpx.AsyncClient, version: str, count: int) -> tuple[float, float]:
    """An update job to every gateway; (its last wave's seconds, fleet CPU ms per gateway over the whole job)."""
    body = {
        "kind": "update_agent", "version": version, "target": {"everywhere": True}, "reason": "bench",
        "waves": {"canary": max(1, count // 100), "steps": [0.1, 0.5, 1.0], "max_in_flight": count,
                  "per_second": 1000},
        "abort": {"failures": max(1, count // 20)},
    }  # fmt: skip
    cpu = time.process_time()
    created = await api.post("/jobs", json=body)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    job: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal job
        job = (await api.get(f"/jobs/{job_id}")).json()
        return bool(job["state"] != "running")

    await _until_async(done, f"job {job_id} done")
    cpu_ms = (time.process_time() - cpu) * 1000 / count
    if job["state"] != "done" or job["counts"] != {"succeeded": count}:
        raise RuntimeError(f"job {job_id} ended {job['state']} ({job['state_reason']}): {job['counts']}")
    last = max(target["wave"] for target in job["targets"])
    wave = [target for target in job["targets"] if target["wave"] == last]
    seconds = (max(t["changed_ms"] for t in wave) - min(t["sent_ms"] for t in wave)) / 1000
    return seconds, cpu_ms


async def _upload(api: httpx.AsyncClient, directory: Path, version: str, key: Ed25519PrivateKey) -> None:
    wheel = f"wheels/outpost-{version}-py3-none-any.whl"
    (directory / "wheels").mkdir(parents=True)
    (directory / wheel).write_bytes(version.encode() * 1000)
    manifest = ReleaseManifest(
        kind=ReleaseKind.AGENT, version=version, created_ms=int(time.time() * 1000),
        install=f"outpost[edge]=={version}", files=describe(directory, [wheel]),
    )  # fmt: skip
    release = sign_release(key, manifest)
    assert (await api.post("/releases", json=release.model_dump(mode="json"))).status_code == 201
    answer = await api.put(f"/releases/agent/{version}/files/{wheel}", content=(directory / wheel).read_bytes())
    assert answer.json()["state"] == "ready", answer.text


async def _until_online(api: httpx.AsyncClient, count: int) -> None:
    async def online() -> bool:
        listed = (await api.get("/gateways")).json()
        return sum(1 for gateway in listed if gateway["online"]) == count

    await _until_async(online, f"{count} gateways online")


async def _until(condition: Callable[[], bool], what: str) -> None:
    async def check() -> bool:
        return bool(condition())

    await _until_async(check, what)


async def _until_async(check: Callable[[], Awaitable[bool]], what: str) -> None:
    give_up = time.monotonic() + _DONE_TIMEOUT_S
    while not await check():
        if time.monotonic() > give_up:
            raise TimeoutError(f"no {what} within {_DONE_TIMEOUT_S:.0f} s")
        await asyncio.sleep(_POLL_S)
