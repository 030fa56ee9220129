"""From an alert's steps to people, through the outbox: a raised and then cancelled alert reaches a real
webhook receiver and a village centre on a real Mosquitto, in order, on SQLite and PostgreSQL. The webhook
is down for the first attempt: the cancellation waits behind the raise, which is retried with the same key."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.alerts.channels.base import Channel
from fleet.alerts.channels.village_notify import VILLAGE_NOTIFY_CHANNEL, VillageNotifyChannel
from fleet.alerts.channels.webhook import WEBHOOK_CHANNEL, WebhookChannel
from fleet.alerts.delivery import DeliveryWorker, RetryPolicy
from fleet.alerts.handling import AlertHandling
from fleet.alerts.lifecycle import Step
from fleet.alerts.outbox import Outbox
from fleet.alerts.outbox_queue import OutboxQueue
from fleet.alerts.store import AlertStore
from fleet.db.schema import DeliveryState
from fleet.mqtt.downlink import Downlink
from fleet.settings import VillageNotifySettings
from protocol.notifications import AlertState, AlertStep
from protocol.reconnect import Backoff
from simulators.infra.mosquitto import MosquittoBroker
from tests.fleet.alert_county import alert_county
from tests.fleet.alerts.channels.publisher import village_centre
from tests.fleet.alerts.channels.receiver import WebhookReceiver
from tests.fleet.alerts.channels.test_webhook import settings_for
from tests.fleet.configs.sites import ADMIN
from tests.fleet.helpers import FakeClock, default_escalation, make_alert
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration

RETRY = RetryPolicy(max_attempts=5, base_s=1.0, cap_s=1.0)


@asynccontextmanager
async def delivering(workers: list[DeliveryWorker]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_raised_then_cancelled_alert_reaches_the_webhook_and_the_village_centre_in_order(
    any_sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    receiver: WebhookReceiver,
    mosquitto: MosquittoBroker,
    publisher: Downlink,
) -> None:
    await alert_county(any_sessions, clock)
    webhook = WebhookChannel(settings_for(receiver.url))
    village = VillageNotifyChannel(publisher, VillageNotifySettings(enabled=True))
    channels: list[Channel] = [webhook, village]
    outbox = Outbox(channel.route for channel in channels)
    store = AlertStore(any_sessions, clock, default_escalation(), outbox=outbox)
    handling = AlertHandling(any_sessions, clock, outbox=outbox)
    queue = OutboxQueue(any_sessions)
    webhook_worker, village_worker = (
        DeliveryWorker(queue, channel, clock, RETRY, pause=Backoff(base_s=0.01, cap_s=0.05)) for channel in channels
    )
    receiver.answers = [503]
    raised = make_alert()
    alert_id = str(raised.event_id)

    async with village_centre(mosquitto, "lakeside") as centre:
        assert await store.record("lakeside", raised)
        clock.now_ms += 30_000
        await handling.take(ADMIN, alert_id, Step.CANCEL, "a pupil pressed it")

        async with delivering([webhook_worker, village_worker]):
            heard = [await asyncio.wait_for(centre.get(), 10) for _ in range(2)]

            async def raise_failed_once() -> bool:
                [raise_message] = [m for m in await queue.find(channel=WEBHOOK_CHANNEL) if m.step == "raise"]
                return raise_message.attempts == 1

            await eventually(raise_failed_once, what="the webhook's first attempt failing")
            assert receiver.accepted == []  # the cancellation did not overtake the raise
            clock.now_ms += 1_000  # the raise's retry is due
            webhook_worker.wake()

            async def all_delivered() -> bool:
                messages = await queue.find(alert_id=alert_id)
                return all(m.state == DeliveryState.DELIVERED for m in messages)

            await eventually(all_delivered, what="every message marked delivered")

    failed, *accepted = receiver.received
    assert [n.step for n in receiver.accepted] == [AlertStep.RAISE, AlertStep.CANCEL]
    assert (failed.status, failed.idempotency_key) == (503, accepted[0].idempotency_key)
    assert [h.notification.step for h in heard] == [AlertStep.RAISE, AlertStep.CANCEL]
    assert {n.state for n in [*receiver.accepted, *(h.notification for h in heard)]} == {AlertState.CANCELLED}
    assert receiver.accepted[1].reason == heard[1].notification.reason == "a pupil pressed it"
    messages = await queue.find(alert_id=alert_id)
    assert sorted((m.channel, m.step, m.state) for m in messages) == [
        (VILLAGE_NOTIFY_CHANNEL, "cancel", DeliveryState.DELIVERED),
        (VILLAGE_NOTIFY_CHANNEL, "raise", DeliveryState.DELIVERED),
        (WEBHOOK_CHANNEL, "cancel", DeliveryState.DELIVERED),
        (WEBHOOK_CHANNEL, "raise", DeliveryState.DELIVERED),
    ]
    assert {str(n.notification_id) for n in receiver.accepted} == {
        m.key for m in messages if m.channel == WEBHOOK_CHANNEL
    }
    await webhook.close()
