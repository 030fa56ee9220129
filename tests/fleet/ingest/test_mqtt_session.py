"""The ingest session's manual acknowledgement against a real Mosquitto: nothing unacknowledged is lost."""

import asyncio

import aiomqtt
import pytest

from fleet.errors import BrokerRefusedError
from fleet.ingest.subscriptions import LANE_CHANNELS, Lane, lane_filters, lane_subscriptions
from fleet.mqtt.ingest_session import IngestSession, Subscription
from fleet.settings import BrokerSettings
from protocol.reconnect import Backoff
from protocol.topics import Channel, fleet_filter, shared_filter
from simulators.infra.mosquitto import MosquittoBroker
from tests.fleet.ingest.conftest import Running, publish

pytestmark = pytest.mark.integration

TOPIC = "outpost/v1/lakeside/gw-01/telemetry"


def session(broker: MosquittoBroker, *, receive_maximum: int = 100, client_id: str = "ingest-test") -> IngestSession:
    return IngestSession(
        BrokerSettings(host=broker.host, port=broker.port),
        client_id,
        ["outpost/v1/+/+/telemetry"],
        receive_maximum=receive_maximum,
        session_expiry_s=600,
        backoff=Backoff(base_s=0.05, cap_s=0.2),
    )


async def connected(broker: MosquittoBroker, **kwargs: int | str) -> Running:
    running = Running(session(broker, **kwargs))  # type: ignore[arg-type]
    await asyncio.wait_for(running.session.connected.wait(), 10)
    return running


async def test_a_message_not_acknowledged_is_delivered_again_after_a_reconnect(mosquitto: MosquittoBroker) -> None:
    first = await connected(mosquitto)
    await publish(mosquitto, TOPIC, [b"one"])
    [message] = await first.take(1)
    assert message.payload == b"one"
    assert first.session.unacked == 1
    await first.stop()

    second = await connected(mosquitto)
    [again] = await second.take(1)

    assert again.payload == b"one"
    assert second.session.session_resumed
    await second.stop()


async def test_an_acknowledged_message_is_not_delivered_again(mosquitto: MosquittoBroker) -> None:
    first = await connected(mosquitto)
    await publish(mosquitto, TOPIC, [b"one", b"two"])
    messages = await first.take(2)
    for message in messages:
        first.session.ack(message)
    assert first.session.unacked == 0
    assert first.session.acked == 2
    await asyncio.sleep(0.2)  # let the PUBACKs out
    await first.stop()

    second = await connected(mosquitto)

    assert await second.nothing_more()
    await second.stop()


async def test_acks_go_out_in_receive_order_so_a_later_ack_waits_for_the_earlier_one(
    mosquitto: MosquittoBroker,
) -> None:
    first = await connected(mosquitto)
    await publish(mosquitto, TOPIC, [b"1", b"2", b"3"])
    _one, two, three = await first.take(3)

    first.session.ack(three)
    first.session.ack(two)

    assert first.session.acked == 0  # held behind message 1
    assert first.session.unacked == 3
    await asyncio.sleep(0.2)
    await first.stop()

    second = await connected(mosquitto)
    redelivered = await second.take(3)
    assert [m.payload for m in redelivered] == [b"1", b"2", b"3"]
    second.session.ack(redelivered[0])
    assert second.session.acked == 1
    second.session.ack(redelivered[2])
    assert second.session.acked == 1
    second.session.ack(redelivered[1])
    assert second.session.acked == 3
    assert second.session.unacked == 0
    await second.stop()


async def test_an_ack_for_a_message_of_an_earlier_connection_is_ignored(mosquitto: MosquittoBroker) -> None:
    first = await connected(mosquitto)
    await publish(mosquitto, TOPIC, [b"one"])
    [message] = await first.take(1)
    await first.stop()

    second = await connected(mosquitto)
    [again] = await second.take(1)
    second.session.ack(message)  # from the first connection: its packet id means nothing now

    assert second.session.stale_acks == 1
    assert second.session.unacked == 1
    second.session.ack(again)
    assert second.session.unacked == 0
    await second.stop()


async def test_the_broker_stops_sending_at_the_receive_maximum_until_messages_are_acknowledged(
    mosquitto: MosquittoBroker,
) -> None:
    running = await connected(mosquitto, receive_maximum=5)
    await publish(mosquitto, TOPIC, [str(i).encode() for i in range(20)])

    first = await running.take(5)
    assert await running.nothing_more()
    assert running.session.oldest_unacked_age_s() is not None

    received = list(first)
    while len(received) < 20:
        for message in received:
            running.session.ack(message)
        received += await running.take(min(5, 20 - len(received)))
    for message in received:
        running.session.ack(message)

    assert [m.payload for m in received] == [str(i).encode() for i in range(20)]
    assert running.session.unacked == 0
    await running.stop()


async def test_an_ack_from_another_thread_is_handed_to_the_loop(mosquitto: MosquittoBroker) -> None:
    running = await connected(mosquitto)
    await publish(mosquitto, TOPIC, [b"one"])
    [message] = await running.take(1)

    await asyncio.to_thread(running.session.ack, message)
    await asyncio.sleep(0.05)

    assert running.session.acked == 1
    await running.stop()


async def test_a_broker_refusing_the_login_is_a_permanent_error() -> None:
    if not MosquittoBroker.available():
        pytest.fail("mosquitto is not installed: run scripts/test, which installs it")
    async with MosquittoBroker(allow_anonymous=False) as broker:
        refused = session(broker)
        with pytest.raises(BrokerRefusedError):
            async for _ in refused.messages():
                pass


async def test_a_dropped_connection_ends_the_iteration_and_the_session_resumes_on_reconnect() -> None:
    """The session notices the broker's death through paho's disconnect callback, reconnects with backoff
    and gets again what it had not acknowledged (the broker kept the persistent session on disk)."""
    async with MosquittoBroker(persistence=True) as broker:
        running = await connected(broker)
        await publish(broker, TOPIC, [b"kept"])
        [message] = await running.take(1)

        await broker.stop()  # a clean stop: Mosquitto saves the session (a kill loses what it did not autosave)
        await asyncio.sleep(0.3)
        assert not running.session.connected.is_set()
        assert not running.task.done(), "a dropped connection is transient: the session reconnects"
        await broker.start()

        [again] = await running.take(1, timeout_s=20)
        assert again.payload == message.payload == b"kept"
        assert running.session.connects == 2
        assert running.session.session_resumed
        await running.stop()


STATE = "outpost/v1/lakeside/gw-01/presence"
EVENT = "outpost/v1/lakeside/gw-01/alert"


@pytest.mark.parametrize("mqtt_version", ["5", "3.1.1"])
async def test_an_event_channel_gets_no_retained_message_at_subscribe_and_keeps_the_publishers_flag(
    mosquitto: MosquittoBroker, mqtt_version: str
) -> None:
    """MQTT 5: a filter of channels not retained by contract asks for no retained message at subscribe, and for the
    retain flag as published; a state channel's filter takes its retained message. MQTT 3.1.1 can ask neither."""
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="test-gateway") as gateway:
        await gateway.publish(STATE, b"state", qos=1, retain=True)
        await gateway.publish(EVENT, b"old event", qos=1, retain=True)
    running = Running(
        IngestSession(
            BrokerSettings(host=mosquitto.host, port=mosquitto.port, mqtt_version=mqtt_version),
            f"ingest-retained-{mqtt_version}",
            [Subscription(fleet_filter(Channel.ALERT), retained=False), Subscription(fleet_filter(Channel.PRESENCE))],
            backoff=Backoff(base_s=0.05, cap_s=0.2),
        )
    )
    await asyncio.wait_for(running.session.connected.wait(), 10)
    async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="test-gateway") as gateway:
        await gateway.publish(EVENT, b"retained live", qos=1, retain=True)
        await gateway.publish(EVENT, b"live", qos=1)

    taken = [(m.topic, m.payload, m.retain) for m in await running.take(3 if mqtt_version == "5" else 4)]

    if mqtt_version == "5":
        assert taken == [(STATE, b"state", True), (EVENT, b"retained live", True), (EVENT, b"live", False)]
    else:  # every retained message at subscribe (flagged); live ones unflagged, as published or not
        assert sorted(taken) == sorted(
            [
                (EVENT, b"old event", True),
                (STATE, b"state", True),
                (EVENT, b"retained live", False),
                (EVENT, b"live", False),
            ]
        )
    await running.stop()


def test_only_the_channels_retained_by_contract_take_retained_messages_at_subscribe() -> None:
    for lane, channels in LANE_CHANNELS.items():
        subscriptions = lane_subscriptions(lane, "outpost-ingest")
        assert [s.topic_filter for s in subscriptions] == lane_filters(lane, "outpost-ingest")
        assert [s.retained for s in subscriptions] == [c.retained for c in channels]
    assert lane_subscriptions(Lane.CONTROL, None) == [
        Subscription(fleet_filter(Channel.PRESENCE), retained=True),
        Subscription(fleet_filter(Channel.HEARTBEAT), retained=False),
        Subscription(fleet_filter(Channel.CONFIG_REPORTED), retained=True),
        Subscription(fleet_filter(Channel.COMMAND_RESPONSE), retained=False),
    ]
    assert lane_subscriptions(Lane.BULK, "g") == [
        Subscription(shared_filter("g", fleet_filter(Channel.TELEMETRY)), retained=False),
        Subscription(shared_filter("g", fleet_filter(Channel.EVENT)), retained=False),
    ]
