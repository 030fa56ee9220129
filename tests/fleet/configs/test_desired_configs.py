"""Each gateway's desired config: which layers reach it, when its version moves, and how reports change its status."""

import uuid
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.audit import AuditLog
from fleet.configs.desired import Published, mark_published, unpublished
from fleet.configs.push import ConfigPush
from fleet.configs.signing import ConfigSigner
from fleet.configs.state import SyncStatus
from fleet.db.schema import GatewayConfigRow
from fleet.errors import InvalidRequestError, NotFoundError
from fleet.layers.scope import Scope
from fleet.sites.inventory import GatewayInventory
from fleet.sites.schemas import GatewayPatch, VillagePatch
from fleet.sites.store import SiteStore
from protocol.messages import ConfigReported, ConfigStatus
from tests.fleet.configs.parts import config_push
from tests.fleet.configs.sites import ADMIN, build_county
from tests.fleet.helpers import FakeClock
from tests.signing_keys import SigningKeys

PANIC = {"kind": "panic_button", "id": "panic-1"}


@pytest.fixture
async def push(sessions: async_sessionmaker[AsyncSession], clock: FakeClock) -> ConfigPush:
    await build_county(sessions, clock)
    return config_push(sessions, clock)


async def _versions(push: ConfigPush) -> dict[str, int | None]:
    return {sync.gateway_id: sync.desired_version for sync in (await push.statuses()).gateways}


async def _statuses(push: ConfigPush) -> dict[str, SyncStatus]:
    return {sync.gateway_id: sync.status for sync in (await push.statuses()).gateways}


def _report(gateway_id: str, version: int, status: ConfigStatus, error: str | None = None) -> ConfigReported:
    return ConfigReported(
        gateway_id=gateway_id, seq=1, event_id=uuid.uuid4(), ts=1, version=version, status=status, error=error
    )


async def _publish_all(push: ConfigPush, sessions: async_sessionmaker[AsyncSession]) -> None:
    """Mark every unpublished desired config as the broker having taken it (what the publisher does after PUBACK)."""
    async with sessions.begin() as session:
        pending = await unpublished(session, "", 10_000)
        sent = [Published(p.gateway_id, p.village_id, p.version, "s" * 86, push.signer.key_id) for p in pending]
        await mark_published(session, sent, 1)


async def test_a_layer_reaches_exactly_the_gateways_below_it(push: ConfigPush) -> None:
    town = await push.put_layer(ADMIN, Scope.TOWN, "hutou", {"heartbeat_interval_s": 20.0})
    assert (town.gateways, town.changed) == (3, 3)
    assert await _versions(push) == {"gw-1": 1, "gw-2": 1, "gw-3": 1, "gw-4": None, "gw-5": None}

    county = await push.put_layer(ADMIN, Scope.COUNTY, "anxi", {"telemetry_interval_s": 7.0})
    assert (county.gateways, county.changed) == (4, 4)  # the unplaced village's gateway is in no county
    assert await _versions(push) == {"gw-1": 2, "gw-2": 2, "gw-3": 2, "gw-4": 1, "gw-5": None}

    village = await push.put_layer(ADMIN, Scope.VILLAGE, "heard-of", {"heartbeat_interval_s": 5.0})
    assert (village.gateways, village.changed) == (1, 1)
    assert (await _versions(push))["gw-5"] == 1


async def test_the_most_specific_layer_wins(push: ConfigPush) -> None:
    await push.put_layer(ADMIN, Scope.COUNTY, "anxi", {"heartbeat_interval_s": 60.0, "snapshots": {"enabled": False}})
    await push.put_layer(ADMIN, Scope.TOWN, "hutou", {"heartbeat_interval_s": 30.0})
    await push.put_layer(ADMIN, Scope.VILLAGE, "shiqiao", {"heartbeat_interval_s": 20.0})
    await push.put_layer(ADMIN, Scope.GATEWAY, "gw-1", {"heartbeat_interval_s": 10.0, "devices": [PANIC]})

    views = {g: await push.gateway_config(g) for g in ("gw-1", "gw-2", "gw-3", "gw-4")}

    intervals = {g: view.resolved.heartbeat_interval_s for g, view in views.items() if view.resolved}
    assert intervals == {"gw-1": 10.0, "gw-2": 20.0, "gw-3": 30.0, "gw-4": 60.0}
    assert all(view.resolved and not view.resolved.snapshots.enabled for view in views.values())
    assert [(layer.scope, layer.scope_id) for layer in views["gw-1"].layers] == [
        (Scope.COUNTY, "anxi"), (Scope.TOWN, "hutou"), (Scope.VILLAGE, "shiqiao"), (Scope.GATEWAY, "gw-1"),
    ]  # fmt: skip
    assert views["gw-2"].resolved is not None
    assert views["gw-2"].resolved.devices == []


@pytest.mark.parametrize(
    "same",
    [
        {"heartbeat_interval_s": 20.0},  # the very same layer again
        {"heartbeat_interval_s": 20},  # the same value spelled as an integer
        {"heartbeat_interval_s": 20.0, "telemetry_interval_s": 5.0},  # plus a default
    ],
)
async def test_no_new_version_when_the_resolved_config_does_not_change(push: ConfigPush, same: dict[str, Any]) -> None:
    await push.put_layer(ADMIN, Scope.VILLAGE, "shiqiao", {"heartbeat_interval_s": 20.0})

    again = await push.put_layer(ADMIN, Scope.VILLAGE, "shiqiao", same)

    assert again.changed == 0
    assert (await _versions(push))["gw-1"] == 1


async def test_a_layer_change_hidden_by_a_more_specific_layer_changes_no_version(push: ConfigPush) -> None:
    await push.put_layer(ADMIN, Scope.GATEWAY, "gw-1", {"heartbeat_interval_s": 10.0})
    await push.put_layer(ADMIN, Scope.VILLAGE, "shiqiao", {"heartbeat_interval_s": 20.0})

    change = await push.put_layer(ADMIN, Scope.VILLAGE, "shiqiao", {"heartbeat_interval_s": 25.0})

    assert (change.gateways, change.changed) == (2, 1)  # gw-2 only: gw-1's own layer still says 10 s
    assert await _versions(push) == {"gw-1": 1, "gw-2": 2, "gw-3": None, "gw-4": None, "gw-5": None}


async def test_a_layer_for_something_that_does_not_exist_is_refused(push: ConfigPush) -> None:
    with pytest.raises(NotFoundError, match="town 'nowhere'"):
        await push.put_layer(ADMIN, Scope.TOWN, "nowhere", {"heartbeat_interval_s": 20.0})
    with pytest.raises(NotFoundError, match="gateway config layer 'gw-1'"):
        await push.delete_layer(ADMIN, Scope.GATEWAY, "gw-1")


async def test_a_layer_making_any_gateways_config_invalid_is_refused_and_changes_nothing(push: ConfigPush) -> None:
    await push.put_layer(ADMIN, Scope.VILLAGE, "shiqiao", {"heartbeat_interval_s": 20.0})
    # Each device is valid; together they are more than one message to the gateway can carry.
    big = [{"kind": "panic_button", "id": f"panic-{n}", "params": {"note": "x" * 300}} for n in range(200)]

    with pytest.raises(InvalidRequestError, match=r"gateway gw-1: the config is about .* over the gateway's 65536"):
        await push.put_layer(ADMIN, Scope.GATEWAY, "gw-1", {"devices": big})

    assert await push.layers(Scope.GATEWAY) == []
    assert (await _versions(push))["gw-1"] == 1


async def test_removing_the_last_layer_stops_the_push_and_a_new_one_continues_above_the_old_version(
    push: ConfigPush,
) -> None:
    await push.put_layer(ADMIN, Scope.GATEWAY, "gw-4", {"heartbeat_interval_s": 20.0})
    await push.put_layer(ADMIN, Scope.GATEWAY, "gw-4", {"heartbeat_interval_s": 25.0})

    removed = await push.delete_layer(ADMIN, Scope.GATEWAY, "gw-4")
    assert (removed.gateways, removed.changed) == (1, 1)
    assert (await _statuses(push))["gw-4"] is SyncStatus.NOT_CONFIGURED
    assert await push.initial_config("beicun", "gw-4") is None

    await push.put_layer(ADMIN, Scope.GATEWAY, "gw-4", {"heartbeat_interval_s": 20.0})
    assert (await _versions(push))["gw-4"] == 3


async def test_a_report_moves_the_status_only_for_the_desired_version(
    push: ConfigPush, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await push.put_layer(ADMIN, Scope.VILLAGE, "shiqiao", {"heartbeat_interval_s": 20.0})
    assert (await _statuses(push))["gw-1"] is SyncStatus.NOT_PUBLISHED
    await _publish_all(push, sessions)
    assert (await _statuses(push))["gw-1"] is SyncStatus.PENDING

    await push.record_reports([_report("gw-1", 1, ConfigStatus.APPLIED)])
    await push.record_reports([_report("gw-2", 1, ConfigStatus.REJECTED, "rolled back: panic-9 failed")])
    report = await push.statuses(village_id="shiqiao")
    assert [(s.gateway_id, s.status, s.error) for s in report.gateways] == [
        ("gw-1", SyncStatus.IN_SYNC, None),
        ("gw-2", SyncStatus.REJECTED, "rolled back: panic-9 failed"),
    ]
    assert (report.counts[SyncStatus.IN_SYNC], report.counts[SyncStatus.REJECTED]) == (1, 1)

    await push.put_layer(ADMIN, Scope.VILLAGE, "shiqiao", {"heartbeat_interval_s": 25.0})
    await _publish_all(push, sessions)
    await push.record_reports([_report("gw-1", 1, ConfigStatus.APPLIED)])  # the old version again
    assert (await _statuses(push))["gw-1"] is SyncStatus.PENDING
    await push.record_reports([_report("gw-1", 2, ConfigStatus.APPLIED)])
    await push.record_reports([_report("gw-1", 1, ConfigStatus.APPLIED)])  # late: overtaken, ignored
    view = await push.gateway_config("gw-1")
    assert (view.sync.status, view.sync.desired_version, view.sync.reported_version) == (SyncStatus.IN_SYNC, 2, 2)
    pending = await push.statuses(status=SyncStatus.PENDING)  # its rejection was of v1; v2 awaits its report
    assert [(s.gateway_id, s.desired_version, s.reported_version) for s in pending.gateways] == [("gw-2", 2, 1)]


async def test_one_batch_of_reports_is_noted_in_order_and_creates_rows_it_needs(
    push: ConfigPush, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await push.put_layer(ADMIN, Scope.VILLAGE, "shiqiao", {"heartbeat_interval_s": 20.0})
    await _publish_all(push, sessions)

    await push.record_reports(
        [
            _report("gw-1", 1, ConfigStatus.APPLIED),
            _report("gw-2", 1, ConfigStatus.REJECTED, "no such device"),
            _report("gw-1", 0, ConfigStatus.APPLIED),  # late within the batch: overtaken, ignored
            _report("gw-unplaced", 3, ConfigStatus.APPLIED),  # no desired config: recorded, nothing raised
        ]
    )

    statuses = await _statuses(push)
    assert (statuses["gw-1"], statuses["gw-2"]) == (SyncStatus.IN_SYNC, SyncStatus.REJECTED)
    async with sessions() as session:
        unplaced = await session.get(GatewayConfigRow, "gw-unplaced")
    assert unplaced is not None
    assert (unplaced.reported_version, unplaced.version) == (3, 0)


async def test_a_gateway_running_a_higher_version_gets_the_desired_config_above_it(
    push: ConfigPush, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await push.put_layer(ADMIN, Scope.GATEWAY, "gw-3", {"heartbeat_interval_s": 20.0})
    await _publish_all(push, sessions)

    # e.g. the fleet database was restored from a backup older than the gateway's last config
    await push.record_reports([_report("gw-3", 7, ConfigStatus.APPLIED)])

    view = await push.gateway_config("gw-3")
    assert (view.sync.desired_version, view.sync.status) == (8, SyncStatus.NOT_PUBLISHED)
    assert push.changed.is_set()


async def test_reconciling_follows_gateways_and_villages_that_moved(
    push: ConfigPush, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    await push.put_layer(ADMIN, Scope.TOWN, "hutou", {"heartbeat_interval_s": 20.0})
    await push.put_layer(ADMIN, Scope.TOWN, "xiping", {"heartbeat_interval_s": 40.0})
    await _publish_all(push, sessions)
    await GatewayInventory(sessions, clock).update_gateway(ADMIN, "gw-2", GatewayPatch(village_id="dongcun"))
    await SiteStore(sessions, clock).update_village(ADMIN, "beicun", VillagePatch(town_id="hutou"))
    await GatewayInventory(sessions, clock).delete_gateway(ADMIN, "gw-1")

    outcome = await push.reconcile()

    assert sorted(outcome.changed) == ["gw-2", "gw-4"]
    statuses = (await push.statuses()).gateways
    assert [(s.gateway_id, s.village_id, s.desired_version, s.status) for s in statuses] == [
        ("gw-2", "dongcun", 1, SyncStatus.NOT_PUBLISHED),  # same config, signed again for its new village
        ("gw-3", "dongcun", 1, SyncStatus.PENDING),
        ("gw-4", "beicun", 2, SyncStatus.NOT_PUBLISHED),  # now in hutou: 20 s
        ("gw-5", "heard-of", None, SyncStatus.NOT_CONFIGURED),
    ]
    async with sessions() as session:
        assert {p.gateway_id: p.village_id for p in await unpublished(session, "", 100)} == {
            "gw-2": "dongcun",
            "gw-4": "beicun",
        }
    assert (await push.reconcile()).changed == []


async def test_a_change_made_while_publishing_is_not_marked_published(
    push: ConfigPush, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await push.put_layer(ADMIN, Scope.GATEWAY, "gw-1", {"heartbeat_interval_s": 20.0})
    async with sessions() as session:
        [taken] = await unpublished(session, "", 100)
    await push.put_layer(ADMIN, Scope.GATEWAY, "gw-1", {"heartbeat_interval_s": 30.0})  # v2 while v1 is in flight

    async with sessions.begin() as session:
        await mark_published(session, [Published("gw-1", "shiqiao", taken.version, "s" * 86, "0" * 16)], 1)

    view = await push.gateway_config("gw-1")
    assert (view.sync.desired_version, view.sync.status) == (2, SyncStatus.NOT_PUBLISHED)


async def test_initial_config_is_what_the_layers_make_and_none_without_layers(push: ConfigPush) -> None:
    await push.put_layer(ADMIN, Scope.COUNTY, "anxi", {"heartbeat_interval_s": 20.0})
    await push.put_layer(ADMIN, Scope.GATEWAY, "gw-1", {"devices": [PANIC]})

    config = await push.initial_config("shiqiao", "gw-1")
    enrolling = await push.initial_config("shiqiao", "gw-new")  # not recorded yet: its village's layers apply

    assert config is not None
    assert (config.heartbeat_interval_s, [d.id for d in config.devices]) == (20.0, ["panic-1"])
    assert enrolling is not None
    assert (enrolling.heartbeat_interval_s, enrolling.devices) == (20.0, [])
    assert await push.initial_config("heard-of", "gw-5") is None  # no layer reaches it
    assert await push.initial_config("nowhere", "gw-unknown") is None
    assert push.signing_public_key().startswith("-----BEGIN PUBLIC KEY-----")


async def test_removing_a_site_or_gateway_removes_its_layer_so_a_namesake_does_not_inherit_it(
    push: ConfigPush, sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    sites, inventory = SiteStore(sessions, clock), GatewayInventory(sessions, clock, configs=push)
    await push.put_layer(ADMIN, Scope.GATEWAY, "gw-4", {"heartbeat_interval_s": 20.0})
    await push.put_layer(ADMIN, Scope.VILLAGE, "beicun", {"heartbeat_interval_s": 25.0})
    await push.put_layer(ADMIN, Scope.TOWN, "xiping", {"heartbeat_interval_s": 30.0})

    await inventory.delete_gateway(ADMIN, "gw-4")
    await sites.delete_village(ADMIN, "beicun")
    await sites.delete_town(ADMIN, "xiping")

    assert {(layer.scope, layer.scope_id) for layer in await push.layers()} == set()
    entries = await AuditLog(sessions).entries(target_type="config_layer")
    assert sorted(entry.target_id for entry in entries if entry.action == "config_layer.delete") == [
        "gateway/gw-4",
        "town/xiping",
        "village/beicun",
    ]


async def test_every_desired_config_names_the_keys_the_fleet_revoked(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    await build_county(sessions, clock)
    retired = "0123456789abcdef"
    push = ConfigPush(sessions, clock, ConfigSigner(SigningKeys.generate().private, revoked_key_ids=[retired]))

    await push.put_layer(ADMIN, Scope.TOWN, "hutou", {"heartbeat_interval_s": 20.0, "revoked_signing_keys": ["f" * 16]})

    async with sessions.begin() as session:
        pending = await unpublished(session, "", 10_000)
    assert pending
    assert {tuple(p.config["revoked_signing_keys"]) for p in pending} == {(retired, "f" * 16)}


@pytest.mark.parametrize("source", ["file:///etc/shadow", "/var/lib/outpost/clip.avi", "concat:rtsp://a/b|rtsp://c/d"])
async def test_a_layer_pointing_a_camera_at_anything_but_a_camera_url_is_refused(push: ConfigPush, source: str) -> None:
    camera = {"kind": "checkpoint_camera", "id": "cam-1", "driver": "camera", "params": {"source": source}}

    with pytest.raises(InvalidRequestError, match=r"devices\.cam-1\.params\.source: a camera source is"):
        await push.put_layer(ADMIN, Scope.TOWN, "hutou", {"devices": [camera]})
