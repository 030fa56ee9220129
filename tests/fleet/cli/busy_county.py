"""A county with something of everything the fleet's CLI reads, served over real HTTP: sites, gateways (one with
a health history), a device, an alert whose case was never delivered (a dead delivery) and one delivered, an
inbound message ingest could not process; and helpers to run ``outpost fleet …`` against it with the environment
a user would set."""

import asyncio
import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner, Result

from fleet.alerts.outbox_queue import Outcome
from fleet.api.context import ApiContext
from fleet.cli.app import app
from fleet.db.schema import OutboxRow
from fleet.ingest.dead_letters import DeadLetter
from fleet.sites.schemas import DeviceSpec
from fleet.timeseries.embedded import EmbeddedSink
from fleet.timeseries.history_sql import SqlHealthHistory
from fleet.timeseries.points import PointList
from protocol.gateway_config import DeviceKind
from tests.fleet.alert_county import alert_county
from tests.fleet.api_client import ADMIN_TOKEN
from tests.fleet.configs.sites import ADMIN
from tests.fleet.health_history_data import GATEWAY as HEALTHY_GATEWAY
from tests.fleet.health_history_data import VILLAGE as HEALTHY_VILLAGE
from tests.fleet.health_history_data import heartbeat, seed_points
from tests.fleet.helpers import FakeClock, make_alert

__all__ = ["HEALTHY_GATEWAY", "HEALTHY_VILLAGE"]

DEAD_ERROR: Final = "governance platform refused the case: 422"


@dataclasses.dataclass(frozen=True)
class County:
    context: ApiContext
    dead: OutboxRow
    delivered: OutboxRow


async def busy_county(sessions: async_sessionmaker[AsyncSession], clock: FakeClock, tmp_path: Path) -> County:
    context = await alert_county(sessions, clock)
    store = tmp_path / "timeseries.db"
    sink = EmbeddedSink(store)
    await sink.write([PointList(seed_points())])
    await sink.close()
    context = dataclasses.replace(context, health_history=SqlHealthHistory(store))
    await context.registry.register(HEALTHY_VILLAGE, HEALTHY_GATEWAY)
    context.registry.note_heartbeat(HEALTHY_VILLAGE, heartbeat(HEALTHY_GATEWAY, 5, clock.now_ms), clock.now_ms)
    await context.registry.flush()
    spec = DeviceSpec(kind=DeviceKind.PANIC_BUTTON, name="school gate", grid_id=None)
    await context.inventory.put_device(ADMIN, "gw-01", "panic-1", spec)
    dead = await _opening(context, "panic-1")
    delivered = await _opening(context, "panic-2")
    await context.outbox.settle([Outcome.failed(dead.id, DEAD_ERROR, None)])
    await context.outbox.settle([Outcome.delivered(delivered.id, "CASE-000001", clock.now_ms)])
    poison = DeadLetter("outpost/v1/lakeside/gw-01/alert", b"{not json", "invalid_payload", "not a JSON document")
    await context.dead_letters.store_now(poison)
    return County(context, dead, delivered)


async def _opening(context: ApiContext, device_id: str) -> OutboxRow:
    """Raise an alert at lakeside and return the outbox message that opens its case."""
    alert = make_alert(device_id=device_id)
    assert await context.alerts.record("lakeside", alert)
    [message] = await context.outbox.find(alert_id=str(alert.event_id))
    return message


async def outpost_fleet(
    fleet: str, *args: str, token: str = ADMIN_TOKEN, env: Mapping[str, str | None] | None = None
) -> Result:
    """``outpost fleet ARGS`` with the fleet and token from the environment, plus ``env``."""
    environment = {"OUTPOST_FLEET_URL": fleet, "OUTPOST_TOKEN": token, "OUTPOST_TZ": None, **(env or {})}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=environment, catch_exceptions=False)


def iso(ms: int) -> str:
    """An instant as ISO 8601 with its offset, as a user may give --since."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def words_of(result: Result) -> str:
    """What the command said, as one line of words (usage errors come in a wrapped box)."""
    return " ".join(result.output.replace("│", " ").split())
