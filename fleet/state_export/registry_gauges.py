"""Villages and gateways as gauges: :data:`~protocol.series.VILLAGE_STATE` and :data:`~protocol.series.GATEWAY_STATE`.

A village's gateways are counted in SQL; a gateway's point needs its own row (one per gateway), read as
plain columns with its config's sync state, never the config itself.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.configs.state import SyncStatus, status_of
from fleet.db.schema import GatewayConfigRow, GatewayRow
from fleet.state_export.alert_gauges import VillageAlerts
from fleet.state_export.cooperative import in_slices
from fleet.state_export.places import Place, unplaced
from fleet.state_export.series_point import series_point
from fleet.timeseries.points import Point
from protocol.series import GATEWAY_STATE, VILLAGE_STATE

UNKNOWN_VERSION: Final = "unknown"
NO_REPORT: Final = "none"
IN_SYNC: Final = frozenset({SyncStatus.IN_SYNC, SyncStatus.NOT_CONFIGURED})
"""A gateway no config layer reaches has nothing to be out of sync with (its ``config_status`` is ``none``)."""

ALL_WELL, ATTENTION, ACT_NOW = 0, 1, 2


@dataclass(frozen=True, slots=True)
class VillageGateways:
    total: int = 0
    online: int = 0


async def read_village_gateways(connection: AsyncConnection) -> dict[str, VillageGateways]:
    """Each village's gateways, total and online (one GROUP BY)."""
    query = select(GatewayRow.village_id, func.count(), func.sum(case((GatewayRow.online, 1), else_=0))).group_by(
        GatewayRow.village_id
    )
    return {
        village: VillageGateways(total, int(online or 0)) for village, total, online in await connection.execute(query)
    }


def village_status(gateways: VillageGateways, alerts: VillageAlerts) -> int:
    """0 all well; 1 attention (a gateway offline, an alert open); 2 act now (a critical alert open, or
    every gateway of the village offline)."""
    if alerts.critical or (gateways.total and not gateways.online):
        return ACT_NOW
    if alerts.open or gateways.online < gateways.total:
        return ATTENTION
    return ALL_WELL


async def village_points(
    places: Mapping[str, Place],
    gateways: Mapping[str, VillageGateways],
    alerts: Mapping[str, VillageAlerts],
    now_ms: int,
) -> list[Point]:
    """One point per village the registry knows."""

    def point(place: Place) -> Point:
        its_gateways = gateways.get(place.village, VillageGateways())
        its_alerts = alerts.get(place.village, VillageAlerts())
        fields: dict[str, float] = {
            "gateways_online": its_gateways.online,
            "gateways_offline": its_gateways.total - its_gateways.online,
            "gateways_total": its_gateways.total,
            "alerts_open": its_alerts.open,
            "alerts_critical_open": its_alerts.critical,
            "status": village_status(its_gateways, its_alerts),
        }
        return series_point(VILLAGE_STATE, place.map_tags(), fields, now_ms)

    return await in_slices(list(places.values()), point)


@dataclass(frozen=True, slots=True)
class GatewayState:
    """What a gateway's point is made of: its registry columns and its config's columns (not the config)."""

    gateway: str
    village: str
    online: bool
    last_seen_ms: int | None
    agent_version: str | None
    has_config_row: str | None
    unconfigured: bool | None
    invalid: str | None
    version: int | None
    published_ms: int | None
    reported_version: int | None
    reported_status: str | None

    def in_sync(self) -> bool:
        if self.has_config_row is None:
            return status_of(None) in IN_SYNC
        config = GatewayConfigRow(  # transient, never added to a session: the same judgement as /config/status
            config=None if self.unconfigured else {},
            invalid=self.invalid,
            version=self.version,
            published_ms=self.published_ms,
            reported_version=self.reported_version,
            reported_status=self.reported_status,
        )
        return status_of(config) in IN_SYNC


async def read_gateway_states(connection: AsyncConnection) -> list[GatewayState]:
    config = GatewayConfigRow
    query = select(
        GatewayRow.id,
        GatewayRow.village_id,
        GatewayRow.online,
        GatewayRow.last_seen_ms,
        GatewayRow.agent_version,
        config.gateway_id,
        config.config.is_(None),
        config.invalid,
        config.version,
        config.published_ms,
        config.reported_version,
        config.reported_status,
    ).outerjoin(config, config.gateway_id == GatewayRow.id)
    states = []
    for row in await connection.execute(query):
        gateway, village, online, last_seen_ms, agent_version, has_config_row = row[:6]
        unconfigured, invalid, version, published_ms, reported_version, reported_status = row[6:]
        states.append(
            GatewayState(
                gateway,
                village,
                online,
                last_seen_ms,
                agent_version,
                has_config_row,
                unconfigured,
                invalid,
                version,
                published_ms,
                reported_version,
                reported_status,
            )
        )
    return states


async def gateway_points(states: Sequence[GatewayState], places: Mapping[str, Place], now_ms: int) -> list[Point]:
    """One point per gateway: online, whether its config is in sync, how long since it was last heard."""

    def point(state: GatewayState) -> Point:
        tags = places.get(state.village, unplaced(state.village)).tags() | {
            "gateway": state.gateway,
            "agent_version": state.agent_version or UNKNOWN_VERSION,
            "config_status": state.reported_status or NO_REPORT,
        }
        fields: dict[str, float] = {"online": 1 if state.online else 0, "config_in_sync": 1 if state.in_sync() else 0}
        if state.last_seen_ms is not None:
            fields["seen_age_s"] = max(0.0, (now_ms - state.last_seen_ms) / 1000)
        return series_point(GATEWAY_STATE, tags, fields, now_ms)

    return await in_slices(states, point)
