"""The fleet's own footing on its broker, laid at every start: deny by default, and its own client and role.

Every step is idempotent, so it runs at each start and a restart changes nothing: the default access is
set to deny again, the fleet's role gets exactly :func:`~fleet.broker_access.policy.fleet_acls` (with the
configured ingest share group), and the fleet's client is created if it is missing. An existing client
keeps its password: changing it would close the sessions of the ingest workers that share it, so a new
``broker.password`` is the broker administrator's to set (or delete the client and restart the fleet).

It runs before the fleet's own MQTT sessions connect, which need that client; while the broker does not
answer it retries with backoff, and a refusal (wrong administrator, a username held by another client)
stops the fleet with the broker's reason.
"""

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from fleet.broker_access.provisioning import BrokerAccess
from fleet.errors import TransientError
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

OpenAccess = Callable[[], AbstractAsyncContextManager[BrokerAccess]]
"""Opens a :class:`BrokerAccess` session for one operation (``DynsecProvisioner.access``)."""


@dataclass(frozen=True, slots=True)
class FleetLogin:
    """How the fleet service and its ingest workers log in, and the share group its ingest subscribes in."""

    username: str
    password: str = field(repr=False)
    share_group: str | None
    downlink_username: str | None = None
    downlink_password: str | None = field(default=None, repr=False)


async def prepare_broker(access: BrokerAccess, login: FleetLogin | None) -> None:
    """Deny what no role grants, and make sure the fleet's client and role exist (``login`` None: the
    fleet has no credentials of its own configured, so only the default is set)."""
    await access.deny_by_default()
    if login is None:
        logger.warning("broker.username/broker.password unset: the fleet's own broker client is not managed")
        return
    separate = login.downlink_username is not None and login.downlink_password is not None
    created = await access.ensure_fleet_client(
        login.username, login.password, share_group=login.share_group, receive_only=separate
    )
    logger.info(
        "broker prepared: deny by default, fleet client %r %s (share group %s%s)",
        login.username,
        "created" if created else "already there, its role's ACLs rewritten",
        login.share_group or "none",
        ", receive only" if separate else ", publishing the downlink too",
    )
    if login.downlink_username is not None and login.downlink_password is not None:
        created = await access.ensure_downlink_client(login.downlink_username, login.downlink_password)
        logger.info("downlink client %r %s", login.downlink_username, "created" if created else "already there")


async def prepare_broker_at_start(open_access: OpenAccess, login: FleetLogin | None, backoff: Backoff) -> None:
    """:func:`prepare_broker`, retried with ``backoff`` while the broker does not answer."""
    while True:
        try:
            async with open_access() as access:
                await prepare_broker(access, login)
        except TransientError as exc:
            delay = backoff.next_delay()
            logger.warning("cannot prepare the broker's access control yet (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
        else:
            return
