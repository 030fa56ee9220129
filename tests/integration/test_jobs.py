"""Jobs end to end: the real fleet (API, job engine, signed commands, ingest) on a real Mosquitto, and enrolled
simulated gateways that take updates over the real protocol (simulators/updating_gateway.py; the install itself
is simulated).

A good release reaches every gateway wave by wave, the canary first; a bad one aborts on the canary wave, whose
gateways go back by themselves, and the rest are never asked; when a later wave fails, the gateways already
updated are put back on their earlier release; a gateway offline through the waves gets the job when it returns;
a job paused sends nothing until resumed, and a cancelled one skips what it had not sent; a fleet restarted in
the middle of a job finishes it.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.service import FleetService
from fleet.settings import DEVELOPMENT_ADMIN_TOKEN, ReleaseSettings
from protocol.config_signing import public_key_pem
from protocol.releases import ReleaseManifest, describe, sign_release
from protocol.updates import ReleaseKind
from simulators.infra.mosquitto import MosquittoBroker
from simulators.updating_gateway import UpdatingGateway
from tests.integration.conftest import Platform, eventually, fleet_settings

pytestmark = pytest.mark.integration

KEY: Final = Ed25519PrivateKey.generate()
OLD: Final = "1.0.0"
NEW: Final = "2.0.0"
VILLAGES: Final = ("shiqiao", "lianhe", "xiaba")


@dataclass
class County:
    api: httpx.AsyncClient
    gateways: dict[str, UpdatingGateway]
    broker: MosquittoBroker
    failing: set[str]
    """Gateways on which NEW fails its health gate."""


class RunningFleet:
    """A fleet service this test starts and stops itself (to restart it mid-job), on one database."""

    def __init__(self, tmp_path: Path, mosquitto: MosquittoBroker, platform: Platform) -> None:
        trusted = tmp_path / "release-keys.pem"
        trusted.write_text(public_key_pem(KEY.public_key()))
        releases = ReleaseSettings(directory=tmp_path / "fleet-releases", trusted_keys_file=trusted)
        self._settings = fleet_settings(tmp_path, mosquitto, platform.server.url, releases=releases)
        self.service: FleetService | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        self.service = FleetService(self._settings)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.service.run(self._stop))
        service = self.service

        async def ready() -> bool:
            if self._task is not None and self._task.done():
                self._task.result()
            return service.ready.is_set() and service.ingest.connected

        await eventually(ready, what="fleet start-up")
        return service.http.url

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


@pytest.fixture
async def fleet(tmp_path: Path, mosquitto: MosquittoBroker, platform: Platform) -> AsyncIterator[RunningFleet]:
    running = RunningFleet(tmp_path, mosquitto, platform)
    try:
        yield running
    finally:
        with contextlib.suppress(Exception):
            await running.stop()


async def _upload(api: httpx.AsyncClient, directory: Path, version: str) -> None:
    (directory / "wheels").mkdir(parents=True)
    (directory / "wheels" / f"outpost-{version}-py3-none-any.whl").write_bytes(version.encode() * 100)
    manifest = ReleaseManifest(
        kind=ReleaseKind.AGENT,
        version=version,
        created_ms=1_700_000_000_000,
        install=f"outpost[edge]=={version}",
        files=describe(directory, [f"wheels/outpost-{version}-py3-none-any.whl"]),
    )
    release = sign_release(KEY, manifest)
    assert (await api.post("/releases", json=release.model_dump(mode="json"))).status_code == 201
    path = manifest.files[0].path
    answer = await api.put(f"/releases/agent/{version}/files/{path}", content=(directory / path).read_bytes())
    assert answer.json()["state"] == "ready"


async def _enroll(api: httpx.AsyncClient, village_id: str, gateway_id: str) -> None:
    token = await api.post("/enrollment-tokens", json={"village_id": village_id, "gateway_id": gateway_id})
    body = {
        "schema_version": 1,
        "token": token.json()["secret"],
        "public_key_pem": public_key_pem(Ed25519PrivateKey.generate().public_key()),
        "hostname": gateway_id,
        "agent_version": OLD,
    }
    assert (await api.post("/enroll", json=body)).status_code == 200


def _failing_in(failing: set[str], gateway_id: str) -> Callable[[str], str | None]:
    def fails(version: str) -> str | None:
        return "no heartbeat reached the broker" if version == NEW and gateway_id in failing else None

    return fails


@pytest.fixture
async def county(fleet: RunningFleet, mosquitto: MosquittoBroker, tmp_path: Path) -> AsyncIterator[County]:
    """Nine enrolled gateways on agent 1.0.0 in three villages, releases 1.0.0 and 2.0.0 on the fleet."""
    url = await fleet.start()
    headers = {"Authorization": f"Bearer {DEVELOPMENT_ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as api:
        for path, body in (
            ("/counties", {"id": "lishui", "name": "Lishui"}),
            ("/towns", {"id": "shuinan", "county_id": "lishui", "name": "Shuinan"}),
            *(("/villages", {"id": village, "town_id": "shuinan", "name": village}) for village in VILLAGES),
        ):
            assert (await api.post(path, json=body)).status_code == 201
        failing: set[str] = set()
        gateways: dict[str, UpdatingGateway] = {}
        for village in VILLAGES:
            for n in range(3):
                gateway_id = f"gw-{village}-{n}"
                await _enroll(api, village, gateway_id)
                gateways[gateway_id] = UpdatingGateway(
                    mosquitto.host, mosquitto.port, village, gateway_id, agent_version=OLD, interval_s=0.5,
                    fails=_failing_in(failing, gateway_id), step_s=0.05,
                )  # fmt: skip
        for version in (OLD, NEW):
            await _upload(api, tmp_path / f"release-{version}", version)
        county = County(api, gateways, mosquitto, failing)
        yield county
        for gateway in gateways.values():
            with contextlib.suppress(Exception):
                await gateway.__aexit__(None, None, None)


async def _connect(county: County, *gateway_ids: str) -> None:
    for gateway_id in gateway_ids:
        await county.gateways[gateway_id].__aenter__()

    async def online() -> bool:
        listed = (await county.api.get("/gateways")).json()
        return all(g["online"] for g in listed if g["id"] in gateway_ids)

    await eventually(online, what="gateways online")


async def _job(county: County, **body: Any) -> str:
    request = {"kind": "update_agent", "version": NEW, "target": {"everywhere": True}, "reason": "a test"} | body
    created = await county.api.post("/jobs", json=request)
    assert created.status_code == 201, created.text
    job_id: str = created.json()["id"]
    return job_id


async def _until_job(
    county: County, job_id: str, holds: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 60
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal seen
        seen = (await county.api.get(f"/jobs/{job_id}")).json()
        return bool(holds(seen))

    try:
        await eventually(check, timeout_s=timeout_s, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {seen}") from None
    return seen


def _by_wave(job: dict[str, Any]) -> dict[int, list[str]]:
    waves: dict[int, list[str]] = {}
    for target in job["targets"]:
        waves.setdefault(target["wave"], []).append(target["gateway_id"])
    return waves


async def test_a_good_release_reaches_every_gateway_wave_by_wave(county: County) -> None:
    await _connect(county, *county.gateways)
    job_id = await _job(county, waves={"canary": 2, "steps": [0.5, 1.0], "max_in_flight": 3})

    job = await _until_job(county, job_id, lambda j: j["state"] == "done", "the job done")

    assert job["counts"] == {"succeeded": 9}
    waves = _by_wave(job)
    assert [len(waves[w]) for w in sorted(waves)] == [2, 3, 4]
    sent = {t["gateway_id"]: t["sent_ms"] for t in job["targets"]}
    finished = {t["gateway_id"]: t["changed_ms"] for t in job["targets"]}
    for wave in (1, 2):  # no gateway of a wave was sent the job before the whole wave before it had finished
        assert min(sent[g] for g in waves[wave]) >= max(finished[g] for g in waves[wave - 1])
    listed = (await county.api.get("/gateways")).json()
    assert {g["agent_version"] for g in listed} == {NEW}
    audit = (await county.api.get("/audit", params={"target_type": "job"})).json()
    assert [entry["action"] for entry in audit] == ["job.create"]


async def test_a_bad_release_aborts_on_the_canary_wave_and_its_gateways_go_back_by_themselves(county: County) -> None:
    county.failing.update(county.gateways)
    await _connect(county, *county.gateways)
    job_id = await _job(county, waves={"canary": 2, "steps": [1.0]}, abort={"failures": 1})

    job = await _until_job(county, job_id, lambda j: j["state"] == "aborted" and "sent" not in j["counts"]
                           and not set(j["counts"]) & {"downloading", "verifying", "installing", "health_check"},
                           "the job aborted")  # fmt: skip

    canary = _by_wave(job)[0]
    canary_states = {t["gateway_id"]: t["state"] for t in job["targets"] if t["wave"] == 0}
    assert canary_states == dict.fromkeys(canary, "rolled_back")
    assert all("failed its health gate" in t["reason"] for t in job["targets"] if t["wave"] == 0)
    assert {t["state"] for t in job["targets"] if t["wave"] > 0} == {"skipped"}
    assert {g for g, gateway in county.gateways.items() if gateway.updates_asked} == set(canary)
    assert {gateway.agent_version for gateway in county.gateways.values()} == {OLD}


async def test_when_a_later_wave_fails_the_gateways_already_updated_are_put_back(county: County) -> None:
    await _connect(county, *county.gateways)
    job_id = await _job(county, waves={"canary": 3, "steps": [1.0]}, abort={"failures": 1})
    first = (await county.api.get(f"/jobs/{job_id}")).json()
    county.failing.update(_by_wave(first)[1])  # the second wave fails

    canary = set(_by_wave(first)[0])

    def reverted(job: dict[str, Any]) -> bool:
        states = {t["state"] for t in job["targets"] if t["gateway_id"] in canary}
        return job["state"] == "aborted" and states <= {"reverted", "revert_failed"}

    job = await _until_job(county, job_id, reverted, "the job aborted and its canary put back", timeout_s=90)

    assert {t["state"] for t in job["targets"] if t["gateway_id"] in canary} == {"reverted"}
    assert {county.gateways[g].agent_version for g in canary} == {OLD}
    assert {county.gateways[g].updates_asked[-1] for g in canary} == {OLD}


async def test_a_gateway_offline_through_the_waves_gets_the_job_when_it_returns(county: County) -> None:
    away = "gw-xiaba-2"
    await _connect(county, *(g for g in county.gateways if g != away))
    job_id = await _job(county, waves={"canary": 1, "steps": [1.0]})

    job = await _until_job(county, job_id, lambda j: j["counts"].get("succeeded") == 8, "all but the offline one")
    assert job["state"] == "running"
    assert next(t for t in job["targets"] if t["gateway_id"] == away)["state"] == "queued"

    await _connect(county, away)
    job = await _until_job(county, job_id, lambda j: j["state"] == "done", "the job done")
    assert job["counts"] == {"succeeded": 9}


async def test_a_paused_job_sends_nothing_until_resumed_and_a_cancelled_one_skips_the_rest(county: County) -> None:
    await _connect(county, *county.gateways)
    job_id = await _job(county, waves={"canary": 1, "steps": [1.0], "per_second": 1, "max_in_flight": 1})
    await _until_job(county, job_id, lambda j: j["counts"].get("succeeded", 0) >= 1, "the canary done")
    paused = await county.api.post(f"/jobs/{job_id}/control", json={"action": "pause", "reason": "lunch"})
    assert paused.json()["state"] == "paused"
    await asyncio.sleep(1.0)  # whatever was in flight when it paused finishes
    before = (await county.api.get(f"/jobs/{job_id}")).json()["counts"]
    await asyncio.sleep(2.0)
    assert (await county.api.get(f"/jobs/{job_id}")).json()["counts"] == before  # nothing new was sent

    await county.api.post(f"/jobs/{job_id}/control", json={"action": "resume"})
    await _until_job(county, job_id, lambda j: j["counts"].get("succeeded", 0) > before.get("succeeded", 0), "resumed")
    cancelled = await county.api.post(f"/jobs/{job_id}/control", json={"action": "cancel", "reason": "enough"})
    assert cancelled.json()["state"] == "cancelled"
    job = (await county.api.get(f"/jobs/{job_id}")).json()
    assert job["counts"].get("skipped", 0) >= 1
    assert "queued" not in job["counts"]
    again = await county.api.post(f"/jobs/{job_id}/control", json={"action": "resume"})
    assert again.status_code == 409
    audit = (await county.api.get("/audit", params={"target_type": "job"})).json()
    assert sorted(entry["action"] for entry in audit) == ["job.cancel", "job.create", "job.pause", "job.resume"]


async def test_a_fleet_restarted_in_the_middle_of_a_job_finishes_it(county: County, fleet: RunningFleet) -> None:
    await _connect(county, *county.gateways)
    job_id = await _job(county, waves={"canary": 1, "steps": [0.5, 1.0], "per_second": 2, "max_in_flight": 2})
    await _until_job(county, job_id, lambda j: j["counts"].get("succeeded", 0) >= 2, "under way")
    await fleet.stop()
    url = await fleet.start()
    headers = {"Authorization": f"Bearer {DEVELOPMENT_ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as api:
        county.api = api
        job = await _until_job(county, job_id, lambda j: j["state"] == "done", "the job done after a restart")
    assert job["counts"] == {"succeeded": 9}
