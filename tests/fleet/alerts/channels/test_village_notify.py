"""The village notify channel publishes notifications through the fleet's broker connection to a real
Mosquitto, where the village's centre (and only it) hears them; a broker that does not take them is
'try again later'."""

import asyncio
import uuid

import pytest

from fleet.alerts.channels.village_notify import VillageNotifyChannel
from fleet.errors import ChannelUnavailableError
from fleet.mqtt.downlink import Downlink
from fleet.settings import BrokerSettings, VillageNotifySettings
from protocol.notifications import AlertState, AlertStep
from protocol.topics import village_notify_topic
from simulators.infra.mosquitto import MosquittoBroker
from tests.fleet.alerts.channels.deliveries import alert_row, delivery
from tests.fleet.alerts.channels.publisher import publisher_for, village_centre

pytestmark = pytest.mark.integration


async def test_the_village_centre_hears_the_notification_at_qos_1_not_retained(
    mosquitto: MosquittoBroker, publisher: Downlink
) -> None:
    channel = VillageNotifyChannel(publisher, VillageNotifySettings(enabled=True))
    sent = delivery("cancel", reason="false alarm", alert=alert_row(state="cancelled"))

    async with village_centre(mosquitto, "lakeside") as inbox:
        assert await channel.deliver(sent) is None  # returned after the broker's PUBACK
        heard = await asyncio.wait_for(inbox.get(), 10)

    assert (heard.topic, heard.qos, heard.retain) == (village_notify_topic("lakeside"), 1, False)
    assert heard.notification.notification_id == uuid.UUID(sent.key)
    assert (heard.notification.step, heard.notification.state) == (AlertStep.CANCEL, AlertState.CANCELLED)
    assert heard.notification.reason == "false alarm"


async def test_another_villages_centre_hears_nothing_of_it(mosquitto: MosquittoBroker, publisher: Downlink) -> None:
    channel = VillageNotifyChannel(publisher, VillageNotifySettings(enabled=True))
    riverside = alert_row(id=str(uuid.uuid4()), village_id="riverside", gateway_id="gw-02")

    async with village_centre(mosquitto, "lakeside") as lakeside, village_centre(mosquitto) as county:
        await channel.deliver(delivery(alert=riverside))
        await channel.deliver(delivery(alert=alert_row()))
        county_heard = [await asyncio.wait_for(county.get(), 10) for _ in range(2)]
        lakeside_heard = await asyncio.wait_for(lakeside.get(), 10)

    assert [heard.notification.village_id for heard in county_heard] == ["riverside", "lakeside"]
    assert lakeside_heard.notification.village_id == "lakeside"
    assert lakeside.empty()


async def test_a_broker_that_does_not_take_it_is_unavailable(mosquitto: MosquittoBroker) -> None:
    never_connected = publisher_for(mosquitto, "test-fleet-never-connected")
    channel = VillageNotifyChannel(never_connected, VillageNotifySettings(enabled=True, publish_timeout_s=0.2))

    with pytest.raises(ChannelUnavailableError, match="village notify"):
        await channel.deliver(delivery())


def test_village_notify_hears_every_step_unless_told_otherwise() -> None:
    unconnected = Downlink(BrokerSettings(), "test-unconnected")
    everything = VillageNotifyChannel(unconnected, VillageNotifySettings(enabled=True))
    chosen = VillageNotifyChannel(unconnected, VillageNotifySettings(enabled=True, steps=["raise", "cancel"]))
    alert = alert_row()

    assert [step for step in AlertStep if everything.route.action_for(step, alert)] == list(AlertStep)
    assert [step for step in AlertStep if chosen.route.action_for(step, alert)] == ["raise", "cancel"]
    assert everything.route.channel == everything.name == "village_notify"
