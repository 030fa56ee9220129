"""A pooled connection the webhook's receiver closed while it was idle costs a notification no retry delay."""

from collections.abc import AsyncIterator

import pytest

from fleet.alerts.channels.webhook import WebhookChannel
from tests.fleet.alerts.channels.deliveries import delivery
from tests.fleet.alerts.channels.receiver import HOOK_PATH, WebhookReceiver, webhook_receiver
from tests.fleet.alerts.channels.test_webhook import settings_for
from tests.fleet.idle_closing_proxy import Close, IdleClosingProxy, idle_closing_proxy


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[WebhookReceiver, IdleClosingProxy]]:
    async with webhook_receiver() as receiver, idle_closing_proxy(receiver.url) as proxy:
        yield receiver, proxy


@pytest.mark.parametrize("close", list(Close))
async def test_a_notification_meeting_a_connection_closed_while_idle_is_taken_on_the_first_attempt(
    proxied: tuple[WebhookReceiver, IdleClosingProxy], close: Close
) -> None:
    receiver, proxy = proxied
    channel = WebhookChannel(settings_for(f"{proxy.url}{HOOK_PATH}"))
    try:
        await channel.deliver(delivery("raise", reason="panic button panic-1 pressed"))
        proxy.close_when_reused(close)
        sent = delivery("escalate", reason="nobody acknowledged it")

        receipt = await channel.deliver(sent)
    finally:
        await channel.close()

    assert receipt == "http 204"
    assert (proxy.closed_on_request, proxy.connections) == (1, 2)
    assert [taken.idempotency_key for taken in receiver.received][-1] == sent.key
    assert receiver.refused == []  # the repeat was signed afresh: not a replay
