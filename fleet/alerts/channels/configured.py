"""The channels a fleet's settings ask for, in the order their messages are written."""

import logging

import httpx

from fleet.alerts.channels.base import Channel
from fleet.alerts.channels.governance import GovernanceChannel
from fleet.alerts.channels.village_notify import Publisher, VillageNotifyChannel
from fleet.alerts.channels.webhook import WebhookChannel
from fleet.governance.client import GovernanceClient
from fleet.settings import FleetSettings

logger = logging.getLogger(__name__)


def configured_channels(
    settings: FleetSettings,
    *,
    governance_transport: httpx.AsyncBaseTransport | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
    publisher: Publisher | None = None,
) -> list[Channel]:
    """The governance platform, a webhook and village centres, as far as ``settings`` ask for them;
    ``publisher`` is the fleet's broker connection, needed when village notifications are enabled."""
    channels: list[Channel] = []
    if settings.governance.url is not None:
        channels.append(GovernanceChannel(GovernanceClient(settings.governance, governance_transport)))
    else:
        logger.warning("no governance.url configured: alerts are stored but no cases are opened")
    # --- channels (webhook, village notify) ---
    if settings.webhook.url is not None:
        channels.append(WebhookChannel(settings.webhook, webhook_transport))
    if settings.village_notify.enabled:
        if publisher is None:
            raise ValueError("village_notify.enabled needs the fleet's broker connection (publisher=)")
        channels.append(VillageNotifyChannel(publisher, settings.village_notify))
    return channels
