"""The registry on a real, migrated SQLite file: registration, presence, batched health, and restarts."""

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import event, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from fleet.db.engine import create_engine, migrate, session_factory
from fleet.errors import DatabaseUnavailableError, TransientError
from fleet.gateways.presence import OfflineReason, Transition
from fleet.gateways.registry import AFTER_RESTART, Registry
from protocol.messages import GatewayHealth, Heartbeat
from tests.fleet.helpers import FakeClock, database_url


@pytest.fixture
def registry(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> Registry:
    return Registry(sessions, clock)


def heartbeat(gateway_id: str, ts: int, interval_s: float = 10.0, cpu: float = 12.5) -> Heartbeat:
    return Heartbeat(
        gateway_id=gateway_id,
        seq=1,
        event_id=uuid.uuid4(),
        ts=ts,
        interval_s=interval_s,
        health=GatewayHealth(cpu_percent=cpu, memory_percent=40.0, disk_percent=70.0, uptime_s=99.0),
    )


async def test_migration_creates_the_tables_and_can_run_again(engine: AsyncEngine) -> None:
    await migrate(engine)

    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert {"villages", "gateways", "alerts", "alembic_version"} <= tables


async def test_registering_creates_the_village_and_the_gateway(registry: Registry, clock: FakeClock) -> None:
    await registry.register("lakeside", "gw-01", "0.1.0")

    gateway = await registry.gateway("gw-01")
    assert gateway is not None
    assert gateway.village_id == "lakeside"
    assert gateway.agent_version == "0.1.0"
    assert gateway.first_seen_ms == clock.now_ms
    assert gateway.online is False
    assert gateway.presence_reason == "never_connected"
    assert registry.knows("gw-01", "lakeside")
    assert not registry.knows("gw-01", "riverside")
    assert not registry.knows("gw-02", "lakeside")


async def test_registering_again_keeps_first_seen_and_updates_the_version(registry: Registry, clock: FakeClock) -> None:
    await registry.register("lakeside", "gw-01", "0.1.0")
    first_seen = clock.now_ms
    clock.now_ms += 60_000

    await registry.register("lakeside", "gw-01", "0.2.0")
    await registry.register("lakeside", "gw-01", None)

    gateway = await registry.gateway("gw-01")
    assert gateway is not None
    assert gateway.first_seen_ms == first_seen
    assert gateway.agent_version == "0.2.0"
    assert len(await registry.gateways()) == 1


async def test_a_gateway_that_changed_village_moves(registry: Registry) -> None:
    await registry.register("lakeside", "gw-01")

    await registry.register("riverside", "gw-01")

    assert [g.id for g in await registry.gateways("riverside")] == ["gw-01"]
    assert await registry.gateways("lakeside") == []
    assert registry.knows("gw-01", "riverside")
    assert not registry.knows("gw-01", "lakeside")


async def test_gateways_are_listed_by_village_then_id(registry: Registry) -> None:
    for village_id, gateway_id in [("riverside", "gw-09"), ("lakeside", "gw-02"), ("lakeside", "gw-01")]:
        await registry.register(village_id, gateway_id)

    listed = [(g.village_id, g.id) for g in await registry.gateways()]

    assert listed == [("lakeside", "gw-01"), ("lakeside", "gw-02"), ("riverside", "gw-09")]
    assert [g.id for g in await registry.gateways("lakeside")] == ["gw-01", "gw-02"]
    assert await registry.gateway("gw-unknown") is None


async def test_presence_transitions_are_stored(registry: Registry) -> None:
    await registry.register("lakeside", "gw-01")
    await registry.register("lakeside", "gw-02")

    await registry.apply(
        [
            Transition("gw-01", "lakeside", True, "connected", 1_000),
            Transition("gw-02", "lakeside", False, OfflineReason.LOST, 2_000),
        ]
    )

    gw1, gw2 = await registry.gateways()
    assert (gw1.online, gw1.presence_reason, gw1.presence_changed_ms) == (True, "connected", 1_000)
    assert (gw2.online, gw2.presence_reason, gw2.presence_changed_ms) == (False, "lost", 2_000)


async def test_a_gateway_first_heard_on_the_bulk_lane_is_registered_before_its_presence_is_stored(
    registry: Registry,
) -> None:
    """Telemetry (bulk lane) can bring a gateway online before the control lane registers it: its presence
    change must not be lost to an UPDATE that matches no row."""
    registry.note_seen("gw-new", "lakeside", 1_000)

    await registry.apply([Transition("gw-new", "lakeside", True, "connected", 1_000)])

    (gateway,) = await registry.gateways()
    assert (gateway.id, gateway.online, gateway.presence_reason) == ("gw-new", True, "connected")


async def test_a_storm_of_presence_changes_is_written_in_a_few_transactions_without_holding_the_caller(
    registry: Registry, engine: AsyncEngine
) -> None:
    gateways = [f"gw-{n:04d}" for n in range(1_000)]
    for gateway_id in gateways:
        registry.note_seen(gateway_id, "lakeside", 500)
    await registry.flush()
    commits: list[int] = []
    event.listen(engine.sync_engine, "commit", lambda connection: commits.append(1))

    # As the ingest loop does for each Last Will: apply and go on to the next message at once.
    written = [registry.apply([Transition(g, "lakeside", False, OfflineReason.LOST, 2_000)]) for g in gateways]
    await asyncio.gather(*written)

    assert {(g.online, g.presence_reason) for g in await registry.gateways()} == {(False, "lost")}
    assert len(commits) <= 2, "the first change's transaction, then everything queued while it was written"


async def test_presence_changes_the_database_did_not_take_are_written_by_the_next_flush(
    registry: Registry, engine: AsyncEngine
) -> None:
    await registry.register("lakeside", "gw-01")
    async with engine.begin() as connection:  # the table disappears, as on a broken database
        await connection.execute(text("ALTER TABLE gateways RENAME TO gateways_away"))

    await registry.apply([Transition("gw-01", "lakeside", False, OfflineReason.LOST, 2_000)])
    async with engine.begin() as connection:
        await connection.execute(text("ALTER TABLE gateways_away RENAME TO gateways"))
    before = await registry.gateway("gw-01")
    assert before is not None
    assert before.presence_changed_ms is None, "not written yet"

    await registry.flush()

    gateway = await registry.gateway("gw-01")
    assert gateway is not None
    assert (gateway.online, gateway.presence_reason, gateway.presence_changed_ms) == (False, "lost", 2_000)


async def test_applying_no_transitions_changes_nothing(registry: Registry) -> None:
    await registry.register("lakeside", "gw-01")

    await registry.apply([])

    gateway = await registry.gateway("gw-01")
    assert gateway is not None
    assert gateway.presence_changed_ms is None


async def test_last_seen_and_health_are_written_in_one_flush(registry: Registry) -> None:
    await registry.register("lakeside", "gw-01")
    await registry.register("lakeside", "gw-02")
    registry.note_seen("gw-01", "lakeside", 1_000)
    registry.note_seen("gw-01", "lakeside", 1_500)
    registry.note_heartbeat("lakeside", heartbeat("gw-02", ts=1_900, interval_s=5.0), now_ms=2_000)
    before = await registry.gateway("gw-01")
    assert before is not None
    assert before.last_seen_ms is None, "notes wait for the flush"

    flushed = await registry.flush()

    assert flushed == 2
    gw1, gw2 = await registry.gateways()
    assert gw1.last_seen_ms == 1_500
    assert gw1.last_health is None
    assert gw2.last_seen_ms == 2_000
    assert gw2.last_health is not None
    assert {k: gw2.last_health[k] for k in ("cpu_percent", "memory_percent", "disk_percent", "uptime_s")} == {
        "cpu_percent": 12.5,
        "memory_percent": 40.0,
        "disk_percent": 70.0,
        "uptime_s": 99.0,
    }
    assert gw2.last_health_ms == 1_900
    assert gw2.heartbeat_interval_s == 5.0


async def test_a_flush_with_nothing_noted_writes_nothing(registry: Registry) -> None:
    assert await registry.flush() == 0


async def test_notes_are_flushed_once(registry: Registry) -> None:
    await registry.register("lakeside", "gw-01")
    registry.note_seen("gw-01", "lakeside", 1_000)
    await registry.flush()

    assert await registry.flush() == 0


async def test_later_traffic_keeps_the_last_health(registry: Registry) -> None:
    await registry.register("lakeside", "gw-01")
    registry.note_heartbeat("lakeside", heartbeat("gw-01", ts=900, cpu=50.0), now_ms=1_000)
    registry.note_seen("gw-01", "lakeside", 3_000)

    await registry.flush()

    gateway = await registry.gateway("gw-01")
    assert gateway is not None
    assert gateway.last_seen_ms == 3_000
    assert gateway.last_health is not None
    assert gateway.last_health["cpu_percent"] == 50.0


async def test_a_failed_flush_keeps_the_notes_for_the_next_one_and_newer_notes_win(
    registry: Registry, engine: AsyncEngine
) -> None:
    await registry.register("lakeside", "gw-01")
    await registry.register("lakeside", "gw-02")
    registry.note_seen("gw-01", "lakeside", 1_000)
    registry.note_seen("gw-02", "lakeside", 1_000)
    async with engine.begin() as connection:  # the table disappears, as on a broken database
        await connection.execute(text("ALTER TABLE gateways RENAME TO gateways_away"))

    with pytest.raises(DatabaseUnavailableError):
        await registry.flush()
    registry.note_seen("gw-01", "lakeside", 2_000)
    async with engine.begin() as connection:
        await connection.execute(text("ALTER TABLE gateways_away RENAME TO gateways"))

    assert await registry.flush() == 2
    gw1, gw2 = await registry.gateways()
    assert gw1.last_seen_ms == 2_000
    assert gw2.last_seen_ms == 1_000


async def test_bulk_traffic_of_new_gateways_registers_them_all_in_the_next_flush(
    registry: Registry, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    await registry.register("lakeside", "gw-01")
    registry.note_seen("gw-01", "lakeside", 1_000)
    for n in range(50):
        registry.note_seen(f"gw-new-{n:02d}", f"village-{n % 5}", 1_000 + n)
    assert not registry.knows("gw-new-00", "village-0"), "registered by the flush, not on the message path"

    assert await registry.flush() == 51

    gateways = {gateway.id: gateway for gateway in await registry.gateways()}
    assert len(gateways) == 51
    assert gateways["gw-new-07"].village_id == "village-2"
    assert gateways["gw-new-07"].last_seen_ms == 1_007
    assert gateways["gw-new-07"].first_seen_ms == clock.now_ms
    assert registry.knows("gw-new-49", "village-4")
    async with sessions() as session:
        villages = (await session.execute(text("SELECT id, name FROM villages ORDER BY id"))).all()
    assert [tuple(row) for row in villages] == [("lakeside", "lakeside")] + [
        (f"village-{n}", f"village-{n}") for n in range(5)
    ]


async def test_bulk_traffic_from_another_village_moves_the_gateway_at_the_flush(registry: Registry) -> None:
    await registry.register("lakeside", "gw-01")

    registry.note_seen("gw-01", "riverside", 2_000)
    await registry.flush()

    [gateway] = await registry.gateways()
    assert (gateway.village_id, gateway.last_seen_ms) == ("riverside", 2_000)
    assert registry.knows("gw-01", "riverside")


async def test_newcomers_survive_a_failed_flush(registry: Registry, engine: AsyncEngine) -> None:
    registry.note_seen("gw-new", "lakeside", 1_000)
    async with engine.begin() as connection:
        await connection.execute(text("ALTER TABLE gateways RENAME TO gateways_away"))

    with pytest.raises(DatabaseUnavailableError):
        await registry.flush()
    async with engine.begin() as connection:
        await connection.execute(text("ALTER TABLE gateways_away RENAME TO gateways"))

    assert await registry.flush() == 1
    [gateway] = await registry.gateways()
    assert (gateway.id, gateway.village_id, gateway.last_seen_ms) == ("gw-new", "lakeside", 1_000)


async def test_an_unmigrated_database_is_reported_as_unavailable(tmp_path: Path, clock: FakeClock) -> None:
    engine = create_engine(database_url(tmp_path))
    try:
        registry = Registry(session_factory(engine), clock)

        with pytest.raises(TransientError, match="register gateway gw-01"):
            await registry.register("lakeside", "gw-01")
        with pytest.raises(DatabaseUnavailableError):
            await registry.load()
    finally:
        await engine.dispose()


async def test_after_a_fleet_restart_everyone_is_offline_until_heard_from(tmp_path: Path, clock: FakeClock) -> None:
    before = create_engine(database_url(tmp_path))
    await migrate(before)
    old = Registry(session_factory(before), clock)
    await old.register("lakeside", "gw-online")
    await old.register("riverside", "gw-shutdown")
    await old.apply(
        [
            Transition("gw-online", "lakeside", True, "connected", 1_000),
            Transition("gw-shutdown", "riverside", False, OfflineReason.SHUTDOWN, 1_500),
        ]
    )
    await before.dispose()

    clock.now_ms = 9_000_000
    after = create_engine(database_url(tmp_path))
    try:
        await migrate(after)
        restarted = Registry(session_factory(after), clock)
        await restarted.load()

        online, shutdown = await restarted.gateways()
        assert (online.id, online.online, online.presence_reason, online.presence_changed_ms) == (
            "gw-online",
            False,
            AFTER_RESTART,
            9_000_000,
        )
        assert AFTER_RESTART == "unknown_after_fleet_restart"
        assert (shutdown.online, shutdown.presence_reason, shutdown.presence_changed_ms) == (False, "shutdown", 1_500)
        assert restarted.knows("gw-online", "lakeside")
        assert restarted.knows("gw-shutdown", "riverside")
    finally:
        await after.dispose()


async def test_ingest_processes_meeting_a_new_gateway_at_the_same_moment_all_register_it(
    any_engine: AsyncEngine, clock: FakeClock
) -> None:
    """Several ingest workers take one new gateway's first messages at once: none may fail on the key."""
    workers = [Registry(session_factory(any_engine), clock) for _ in range(3)]

    for n in range(5):
        await asyncio.gather(*(worker.register("riverside", f"gw-{n}", "1.2.0") for worker in workers))

    gateways = await workers[0].gateways()
    assert [(g.id, g.village_id, g.agent_version) for g in gateways] == [
        (f"gw-{n}", "riverside", "1.2.0") for n in range(5)
    ]
    assert all(worker.knows(f"gw-{n}", "riverside") for worker in workers for n in range(5))
