"""The inventory moving and removing gateways: as before without broker access, and with the desired config
following the gateway at once when config push is wired in (the broker side is proven on a real Mosquitto
in tests/integration/test_gateway_broker_sync.py)."""

import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.audit import AuditLog
from fleet.configs.desired import Published, mark_published, unpublished
from fleet.configs.push import ConfigPush
from fleet.configs.state import SyncStatus
from fleet.db.schema import GatewayConfigRow
from fleet.layers.scope import Scope
from fleet.sites.inventory import GatewayInventory
from fleet.sites.schemas import GatewayPatch
from tests.fleet.configs.parts import config_push
from tests.fleet.configs.sites import ADMIN, build_county
from tests.fleet.helpers import FakeClock


async def test_without_broker_access_a_gateway_moves_and_is_removed_as_before(
    any_sessions: async_sessionmaker[AsyncSession], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    await build_county(any_sessions, clock)
    inventory = GatewayInventory(any_sessions, clock)

    with caplog.at_level(logging.INFO, logger="fleet.sites.inventory"):
        moved = await inventory.update_gateway(ADMIN, "gw-2", GatewayPatch(village_id="dongcun", name="Well"))
        await inventory.delete_gateway(ADMIN, "gw-1")

    assert (moved.village_id, moved.name) == ("dongcun", "Well")
    entries = await AuditLog(any_sessions).entries(target_type="gateway")
    assert [(e.action, e.target_id) for e in entries[:2]] == [("gateway.delete", "gw-1"), ("gateway.update", "gw-2")]
    update = entries[1]
    assert update.before is not None
    assert update.after is not None
    assert (update.before["village_id"], update.after["village_id"]) == ("shiqiao", "dongcun")
    assert "gateway gw-2 moved to dongcun; its broker login is not managed by this fleet" in caplog.messages
    assert "gateway gw-1 removed; its broker login, if any, is not managed by this fleet" in caplog.messages


@pytest.fixture
async def push(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ConfigPush:
    """Config push with every gateway's desired config taken by the broker: shiqiao 20 s, dongcun 30 s."""
    await build_county(sessions, clock)
    push = config_push(sessions, clock)
    await push.put_layer(ADMIN, Scope.VILLAGE, "shiqiao", {"heartbeat_interval_s": 20.0})
    await push.put_layer(ADMIN, Scope.VILLAGE, "dongcun", {"heartbeat_interval_s": 30.0})
    async with sessions.begin() as session:
        pending = await unpublished(session, "", 100)
        sent = [Published(p.gateway_id, p.village_id, p.version, "s" * 86, push.signer.key_id) for p in pending]
        await mark_published(session, sent, clock())
    push.changed.clear()
    return push


async def test_a_moved_gateway_gets_its_new_villages_desired_config_at_once(
    push: ConfigPush, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    inventory = GatewayInventory(sessions, clock, configs=push)

    await inventory.update_gateway(ADMIN, "gw-2", GatewayPatch(village_id="dongcun"))

    view = await push.gateway_config("gw-2")
    assert (view.sync.village_id, view.sync.desired_version, view.sync.status) == (
        "dongcun",
        2,
        SyncStatus.NOT_PUBLISHED,
    )
    assert view.resolved is not None
    assert view.resolved.heartbeat_interval_s == 30.0
    async with sessions() as session:
        assert [(p.gateway_id, p.village_id) for p in await unpublished(session, "", 100)] == [("gw-2", "dongcun")]
    assert push.changed.is_set()  # the publisher is woken
    assert (await push.reconcile()).changed == []  # nothing left for the reconciliation to catch up on


async def test_a_renamed_gateway_keeps_its_desired_config(
    push: ConfigPush, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    inventory = GatewayInventory(sessions, clock, configs=push)

    await inventory.update_gateway(ADMIN, "gw-2", GatewayPatch(name="Well"))

    view = await push.gateway_config("gw-2")
    assert (view.sync.village_id, view.sync.desired_version, view.sync.status) == (
        "shiqiao",
        1,
        SyncStatus.PENDING,
    )


async def test_a_removed_gateways_desired_config_goes_with_it(
    push: ConfigPush, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    inventory = GatewayInventory(sessions, clock, configs=push)

    await inventory.delete_gateway(ADMIN, "gw-1")

    async with sessions() as session:
        assert await session.get(GatewayConfigRow, "gw-1") is None
    assert "gw-1" not in [sync.gateway_id for sync in (await push.statuses()).gateways]
