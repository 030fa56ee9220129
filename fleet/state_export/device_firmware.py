"""Sensor nodes by firmware version (:data:`~protocol.series.DEVICE_FIRMWARE`), from each gateway's last health.

A gateway's heartbeat reports the firmware version each of its nodes last sent (``device_firmware``); the
registry keeps the latest health per gateway. Only that part of it is read, extracted from the JSON in
SQL, so a round does not load every gateway's whole health. One point per (gateway, device), ``count`` 1,
placed like the gateway's :data:`~protocol.series.GATEWAY_STATE`: a gateway that went silent keeps its
nodes' last versions, as it keeps its last agent version.

A node that moves to another version (or leaves its gateway's devices) leaves its previous tag set behind,
which the server would go on answering for minutes: the round writes it once more as 0
(:class:`~fleet.state_export.vanished.VanishedGroups`), so a sum by version counts each node once.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from fleet.db.schema import GatewayRow
from fleet.state_export.cooperative import in_slices
from fleet.state_export.places import Place, unplaced
from fleet.state_export.series_point import series_point
from fleet.timeseries.points import Point
from protocol.identifiers import is_firmware_version
from protocol.series import DEVICE_FIRMWARE


@dataclass(frozen=True, slots=True)
class NodeFirmware:
    gateway: str
    village: str
    device: str
    firmware: str


async def read_device_firmware(connection: AsyncConnection) -> list[NodeFirmware]:
    """Every node's firmware version as its gateway's last health reports it, in gateway and device order.
    Gateways without a health, or from before ``device_firmware``, have none; an empty version is none."""
    reported = GatewayRow.last_health["device_firmware"]
    query = select(GatewayRow.id, GatewayRow.village_id, reported).order_by(GatewayRow.id)
    nodes = []
    for gateway, village, versions in await connection.execute(query):
        if not isinstance(versions, dict):
            continue
        nodes += [
            NodeFirmware(gateway, village, device, firmware)
            for device, firmware in sorted(versions.items())
            if isinstance(firmware, str) and is_firmware_version(firmware)  # as the decoder let it in
        ]
    return nodes


async def device_firmware_points(
    nodes: Sequence[NodeFirmware], places: Mapping[str, Place], now_ms: int
) -> list[Point]:
    def point(node: NodeFirmware) -> Point:
        tags = places.get(node.village, unplaced(node.village)).tags() | {
            "gateway": node.gateway,
            "device": node.device,
            "firmware": node.firmware,
        }
        return series_point(DEVICE_FIRMWARE, tags, {"count": 1}, now_ms)

    return await in_slices(nodes, point)
