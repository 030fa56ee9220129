"""Jobs in the fleet database, on SQLite and on PostgreSQL: who a selector picks, the waves, staff controls in one
transaction, counts, and the engine's query for aborted jobs that still have gateways to put back."""

from collections.abc import Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor, Role
from fleet.db.schema import CountyRow, DeviceRow, GatewayRow, JobTargetRow, TownRow, VillageRow
from fleet.errors import ConflictError, InvalidRequestError
from fleet.jobs.engine import JobEngine
from fleet.jobs.spec import AbortPolicy, JobRequest
from fleet.jobs.states import FINAL, JobState, TargetState
from fleet.jobs.store import JobStore, TargetChange
from tests.fleet.commands.parts import unconnected_commands
from tests.fleet.helpers import FakeClock
from tests.fleet.releases.parts import release_store

ADMIN = Actor("admin", Role.ADMIN)
KEY = "-----BEGIN PUBLIC KEY-----\nnot checked here\n-----END PUBLIC KEY-----\n"


async def _county(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Two towns, three villages, six gateways (one revoked, one never enrolled), agent 1.0.0 but two on 1.1.0."""
    async with sessions.begin() as session:
        session.add(CountyRow(id="anxi", name="Anxi", created_ms=0))
        session.add_all([TownRow(id=t, county_id="anxi", name=t, created_ms=0) for t in ("hutou", "longmen")])
        await session.flush()
        for village, town in (("shiqiao", "hutou"), ("lianhe", "hutou"), ("xiaba", "longmen")):
            session.add(VillageRow(id=village, town_id=town, name=village, first_seen_ms=0))
        await session.flush()
        for n, village in enumerate(("shiqiao", "shiqiao", "lianhe", "lianhe", "xiaba", "xiaba")):
            session.add(
                GatewayRow(
                    id=f"gw-{n}",
                    village_id=village,
                    first_seen_ms=0,
                    public_key_pem=None if n == 5 else KEY,
                    revoked_ms=1 if n == 4 else None,
                    agent_version="1.1.0" if n in (1, 2) else "1.0.0",
                )
            )
        await session.flush()
        session.add(DeviceRow(gateway_id="gw-3", id="cam-1", kind="checkpoint_camera", created_ms=0))


def _request(**target: object) -> JobRequest:
    return JobRequest.model_validate(
        {"kind": "update_agent", "version": "1.1.0", "target": target, "reason": "test", "waves": {"canary": 1}}
    )


def _ids(targets: Sequence[JobTargetRow]) -> list[str]:
    return sorted(t.gateway_id for t in targets)


@pytest.fixture
async def store(any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> JobStore:
    await _county(any_sessions)
    return JobStore(any_sessions, clock)


async def test_a_selector_picks_enrolled_unrevoked_gateways_by_place_version_and_device(store: JobStore) -> None:
    everywhere = await store.create(ADMIN, _request(everywhere=True))
    by_town = await store.create(ADMIN, _request(towns=["longmen"], villages=["shiqiao"]))
    by_version = await store.create(ADMIN, _request(counties=["anxi"], agent_versions=["1.0.0"]))
    by_device = await store.create(ADMIN, _request(everywhere=True, device_kind="checkpoint_camera"))

    assert _ids(await store.targets(everywhere.id)) == ["gw-0", "gw-1", "gw-2", "gw-3"]
    assert _ids(await store.targets(by_town.id)) == ["gw-0", "gw-1"]  # xiaba's are revoked or never enrolled
    assert _ids(await store.targets(by_version.id)) == ["gw-0", "gw-3"]
    assert _ids(await store.targets(by_device.id)) == ["gw-3"]
    already = {t.gateway_id: (t.state, t.reason) for t in await store.targets(everywhere.id)}
    assert already["gw-1"] == ("succeeded", "runs agent 1.1.0 already")
    assert (await store.counts([everywhere.id]))[everywhere.id] == {TargetState.SUCCEEDED: 2, TargetState.QUEUED: 2}
    with pytest.raises(InvalidRequestError, match="selects no enrolled"):
        await store.create(ADMIN, _request(villages=["nowhere"]))


async def test_staff_controls_are_audited_and_refused_once_the_job_ended(store: JobStore, clock: FakeClock) -> None:
    job = await store.create(ADMIN, _request(everywhere=True))
    assert (await store.control(ADMIN, job.id, JobState.PAUSED, "lunch")).state == "paused"
    assert (await store.control(ADMIN, job.id, JobState.RUNNING, None)).state == "running"
    assert (await store.control(ADMIN, job.id, JobState.CANCELLED, "enough")).state == "cancelled"
    states = {t.gateway_id: t.state for t in await store.targets(job.id)}
    assert states == {"gw-0": "skipped", "gw-1": "succeeded", "gw-2": "succeeded", "gw-3": "skipped"}
    with pytest.raises(ConflictError, match="cannot be resumed"):
        await store.control(ADMIN, job.id, JobState.RUNNING, None)
    assert await store.set_state(job.id, JobState.DONE, "the engine, late") is None  # never over a staff decision


async def test_a_late_report_never_moves_a_finished_gateway_back(store: JobStore) -> None:
    job = await store.create(ADMIN, _request(everywhere=True))
    await store.apply([TargetChange(job.id, "gw-0", TargetState.FAILED, "no")], final=FINAL)
    moved = await store.apply([TargetChange(job.id, "gw-0", TargetState.INSTALLING)], final=FINAL)
    assert moved == 0
    assert (await store.targets(job.id, TargetState.FAILED))[0].gateway_id == "gw-0"


async def test_an_aborted_job_with_updated_gateways_is_still_followed_until_they_are_put_back(
    store: JobStore, any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    job = await store.create(ADMIN, _request(everywhere=True))
    keep = await store.create(ADMIN, _request(everywhere=True).model_copy(update={"abort": AbortPolicy(revert=False)}))
    for each in (job, keep):
        await store.apply([TargetChange(each.id, "gw-0", TargetState.SUCCEEDED)], final=frozenset())
        assert await store.set_state(each.id, JobState.ABORTED, "a test") is not None
    engine = JobEngine(
        store, any_sessions, unconnected_commands(any_sessions, clock), release_store(any_sessions, clock), clock
    )

    followed = [row.id for row in await engine._jobs()]

    assert followed == [job.id]  # gw-0 went from 1.0.0 to 1.1.0; the other job does not revert
