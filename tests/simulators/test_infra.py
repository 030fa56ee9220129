"""The servers in simulators.infra start on loopback ports, serve real clients, restart and stop cleanly."""

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator

import aiomqtt
import pytest
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision

from simulators.infra.broker import Broker, make_broker
from simulators.infra.embedded_broker import EmbeddedBroker
from simulators.infra.errors import InfraError, ServerStartError
from simulators.infra.mosquitto import DynsecAdmin, MosquittoBroker
from simulators.infra.ports import LOOPBACK, free_port, port_accepts, wait_for_port
from simulators.infra.victoria import VictoriaMetricsServer

RECEIVE_TIMEOUT_S = 5.0
LIVE_TOPIC = "infra-test/live"
RETAINED_TOPIC = "infra-test/retained"
WILL_TOPIC = "infra-test/will"

# Connects with a retained Last Will, says so, then waits to be killed with SIGKILL: the kernel
# closes its socket and the broker never sees a DISCONNECT.
WILL_CLIENT = """
import asyncio, sys
import aiomqtt

async def main() -> None:
    host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    will = aiomqtt.Will(topic, b"offline", qos=1, retain=True)
    async with aiomqtt.Client(host, port, identifier="infra-test-victim", will=will):
        print("connected", flush=True)
        await asyncio.sleep(600)

asyncio.run(main())
"""


def require_mosquitto() -> None:
    if not MosquittoBroker.available():
        pytest.fail("mosquitto is not installed: run scripts/test, which installs it", pytrace=False)


def require_victoria_metrics() -> None:
    if not VictoriaMetricsServer.available():
        pytest.fail("victoria-metrics is not installed: run scripts/test, which installs it", pytrace=False)


@pytest.fixture
async def mosquitto() -> AsyncIterator[MosquittoBroker]:
    require_mosquitto()
    async with MosquittoBroker(persistence=True) as broker:
        yield broker


@pytest.fixture
async def embedded() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture
async def victoria() -> AsyncIterator[VictoriaMetricsServer]:
    require_victoria_metrics()
    async with VictoriaMetricsServer() as server:
        yield server


def client(broker: Broker) -> aiomqtt.Client:
    return aiomqtt.Client(broker.host, broker.port)


async def next_message(subscriber: aiomqtt.Client, topic: str) -> aiomqtt.Message:
    """The next message on ``topic``; others are skipped (amqtt sends retained messages unasked)."""
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        async for message in subscriber.messages:
            if message.topic.matches(topic):
                return message
    raise AssertionError(f"the message iterator ended without a message on {topic}")


async def assert_no_message(subscriber: aiomqtt.Client, topic: str, within_s: float) -> None:
    try:
        async with asyncio.timeout(within_s):
            message = await next_message(subscriber, topic)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected {message.payload!r} on {topic}")


async def assert_qos1_and_retained(broker: Broker) -> None:
    async with client(broker) as subscriber, client(broker) as publisher:
        await subscriber.subscribe(LIVE_TOPIC, qos=1)
        await publisher.publish(LIVE_TOPIC, b"hello", qos=1)
        live = await next_message(subscriber, LIVE_TOPIC)
        assert (live.payload, live.qos, live.retain) == (b"hello", 1, False)
        await publisher.publish(RETAINED_TOPIC, b"kept", qos=1, retain=True)
    async with client(broker) as late:
        await late.subscribe(RETAINED_TOPIC, qos=1)
        retained = await next_message(late, RETAINED_TOPIC)
        assert (retained.payload, retained.retain) == (b"kept", True)


async def assert_last_will_on_dead_socket(broker: Broker) -> None:
    async with client(broker) as watcher:
        await watcher.subscribe(WILL_TOPIC, qos=1)
        victim = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            WILL_CLIENT,
            broker.host,
            str(broker.port),
            WILL_TOPIC,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert victim.stdout is not None
            assert await asyncio.wait_for(victim.stdout.readline(), 10) == b"connected\n"
            victim.kill()
            await victim.wait()
        finally:
            if victim.returncode is None:
                victim.kill()
                await victim.wait()
        will = await next_message(watcher, WILL_TOPIC)
        assert will.payload == b"offline"
    async with client(broker) as late:
        await late.subscribe(WILL_TOPIC, qos=1)
        retained_will = await next_message(late, WILL_TOPIC)
        assert (retained_will.payload, retained_will.retain) == (b"offline", True)


async def publish_retained(broker: Broker, payload: bytes) -> None:
    async with client(broker) as publisher:
        await publisher.publish(RETAINED_TOPIC, payload, qos=1, retain=True)


async def retained_payload(broker: Broker) -> bytes | None:
    """The retained message on RETAINED_TOPIC, or None if the broker has none within a second."""
    async with client(broker) as late:
        await late.subscribe(RETAINED_TOPIC, qos=1)
        try:
            async with asyncio.timeout(1.0):
                message = await next_message(late, RETAINED_TOPIC)
        except TimeoutError:
            return None
    assert isinstance(message.payload, bytes)
    return message.payload


def assert_reaped(pid: int) -> None:
    """No process (not even a zombie) has ``pid`` any more."""
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def wait_for_autosave(broker: MosquittoBroker, since_ns: int) -> None:
    path = broker.persistence_path
    assert path is not None
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        while True:
            if path.exists() and path.stat().st_mtime_ns > since_ns:
                return
            await asyncio.sleep(0.05)


def test_free_port_can_be_bound() -> None:
    port = free_port()
    assert 0 < port < 65536


async def test_wait_for_port_names_the_server_when_it_times_out() -> None:
    with pytest.raises(ServerStartError, match=r"demo-server did not accept connections on 127\.0\.0\.1:"):
        await wait_for_port(LOOPBACK, free_port(), 0.2, server="demo-server")


@pytest.mark.integration
async def test_mosquitto_qos1_retained_and_last_will(mosquitto: MosquittoBroker) -> None:
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"
    await assert_qos1_and_retained(mosquitto)
    await assert_last_will_on_dead_socket(mosquitto)


@pytest.mark.integration
async def test_mosquitto_restart_keeps_port_and_persisted_retained_message(mosquitto: MosquittoBroker) -> None:
    port, old_pid = mosquitto.port, mosquitto.pid
    assert old_pid is not None
    await publish_retained(mosquitto, b"before restart")

    await mosquitto.restart()

    assert mosquitto.port == port
    assert mosquitto.pid not in (None, old_pid)
    assert_reaped(old_pid)
    assert await retained_payload(mosquitto) == b"before restart"


@pytest.mark.integration
async def test_mosquitto_kill_then_start_on_the_same_port(mosquitto: MosquittoBroker) -> None:
    await publish_retained(mosquitto, b"autosaved")
    await wait_for_autosave(mosquitto, since_ns=time.time_ns())
    pid = mosquitto.pid
    assert pid is not None

    await mosquitto.kill()

    assert not mosquitto.running
    assert_reaped(pid)
    assert not await port_accepts(mosquitto.host, mosquitto.port)
    await mosquitto.start()
    assert await retained_payload(mosquitto) == b"autosaved"


@pytest.mark.integration
async def test_mosquitto_start_failure_reports_its_output() -> None:
    require_mosquitto()
    broker = MosquittoBroker(extra_config=["no_such_option true"])
    try:
        with pytest.raises(ServerStartError, match=r"(?s)exited with code \d+.*no_such_option"):
            await broker.start()
        assert not broker.running
    finally:
        await broker.close()
    assert not broker.directory.exists()


@pytest.mark.integration
async def test_mosquitto_start_fails_on_a_taken_port(mosquitto: MosquittoBroker) -> None:
    with pytest.raises(ServerStartError, match="Address already in use"):
        async with MosquittoBroker(port=mosquitto.port):
            pass


@pytest.mark.integration
async def test_mosquitto_with_dynamic_security_admits_only_its_clients_and_keeps_them_across_a_restart() -> None:
    require_mosquitto()
    admin = DynsecAdmin("infra-admin", "infra-admin-password")
    create = {
        "commands": [{"command": "createClient", "username": "infra-user", "password": "pw", "correlationData": "1"}]
    }
    async with MosquittoBroker(dynamic_security=admin) as broker:
        assert broker.dynsec_config_path is not None
        assert broker.dynsec_config_path.stat().st_mode & 0o777 == 0o600
        with pytest.raises(aiomqtt.MqttError):  # anonymous clients are refused
            async with client(broker):
                pass
        async with aiomqtt.Client(broker.host, broker.port, username=admin.username, password=admin.password) as ctl:
            await ctl.subscribe("$CONTROL/dynamic-security/v1/response", qos=1)
            await ctl.publish("$CONTROL/dynamic-security/v1", json.dumps(create), qos=1)
            answer = await next_message(ctl, "$CONTROL/dynamic-security/v1/response")
            assert json.loads(bytes(answer.payload)) == {
                "responses": [{"command": "createClient", "correlationData": "1"}]
            }

        await broker.restart()

        async with aiomqtt.Client(broker.host, broker.port, username="infra-user", password="pw"):
            pass
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(broker.host, broker.port, username="infra-user", password="wrong"):
                pass


def test_mosquitto_with_dynamic_security_refuses_to_allow_anonymous_clients() -> None:
    with pytest.raises(ValueError, match="refuses anonymous clients"):
        MosquittoBroker(dynamic_security=DynsecAdmin("admin", "pw"), allow_anonymous=True)


@pytest.mark.integration
async def test_embedded_broker_qos1_retained_and_last_will(embedded: EmbeddedBroker) -> None:
    assert embedded.url == f"mqtt://127.0.0.1:{embedded.port}"
    await assert_qos1_and_retained(embedded)
    await assert_last_will_on_dead_socket(embedded)


@pytest.mark.integration
async def test_embedded_broker_restarts_on_the_same_port_without_retained_messages(
    embedded: EmbeddedBroker,
) -> None:
    port = embedded.port
    await publish_retained(embedded, b"lost on restart")

    await embedded.restart()

    assert embedded.port == port
    assert await retained_payload(embedded) is None


@pytest.mark.integration
@pytest.mark.xfail(
    reason="amqtt 0.12.1 sends a connecting client the retained messages matching other sessions' "
    "subscriptions, whether or not it subscribes; see EmbeddedBroker's docstring",
    strict=True,
)
async def test_embedded_broker_sends_only_subscribed_retained_messages(embedded: EmbeddedBroker) -> None:
    await publish_retained(embedded, b"kept")
    async with client(embedded) as other_subscriber:
        await other_subscriber.subscribe(RETAINED_TOPIC, qos=1)
        await next_message(other_subscriber, RETAINED_TOPIC)
        async with client(embedded) as not_subscribed:
            await assert_no_message(not_subscribed, RETAINED_TOPIC, within_s=0.5)


@pytest.mark.integration
async def test_make_broker_prefers_mosquitto_and_refuses_impossible_combinations() -> None:
    require_mosquitto()
    async with make_broker("auto", persistence=True) as auto:
        assert isinstance(auto, MosquittoBroker)
        await assert_qos1_and_retained(auto)
    assert isinstance(make_broker("embedded", port=1883), EmbeddedBroker)
    with pytest.raises(InfraError, match="embedded broker"):
        make_broker("embedded", persistence=True)


LINES = [
    "telemetry,village=v1,gateway=g1,device=cam-1 line_in=3,temp_c=21.5 1700000000000",
    "telemetry,village=v1,gateway=g1,device=cam-1 line_in=4i 1700000060000",
    "telemetry,village=v1,gateway=g1,device=cam-2 line_in=7 1700000000000",
]


async def write_lines(server: VictoriaMetricsServer, lines: list[str]) -> None:
    async with InfluxDBClientAsync(url=server.url, token="", org="outpost") as influx:
        accepted = await influx.write_api().write(
            bucket="telemetry",
            org="outpost",
            record=lines,
            write_precision=WritePrecision.MS,  # type: ignore[arg-type]  # a str constant in its stubs
        )
    assert accepted is True


@pytest.mark.integration
async def test_victoria_metrics_takes_influx_writes_and_exports_them(victoria: VictoriaMetricsServer) -> None:
    await write_lines(victoria, LINES)
    await victoria.flush()

    series = await victoria.export('telemetry_line_in{device="cam-1"}')

    assert series == [
        {
            "metric": {"__name__": "telemetry_line_in", "village": "v1", "gateway": "g1", "device": "cam-1"},
            "values": [3, 4],
            "timestamps": [1700000000000, 1700000060000],
        }
    ]
    names = {item["metric"]["__name__"] for item in await victoria.export('{__name__=~"telemetry_.*"}')}
    assert names == {"telemetry_line_in", "telemetry_temp_c"}
    answer = await victoria.query('sum(telemetry_line_in{gateway="g1"})', time_ms=1700000030000)
    assert answer["status"] == "success"
    assert answer["data"]["result"][0]["value"] == [1700000030, "10"]


@pytest.mark.integration
async def test_victoria_metrics_skips_unparsable_lines_but_accepts_the_request(
    victoria: VictoriaMetricsServer,
) -> None:
    await write_lines(victoria, ["telemetry,device=cam-9 line_in= 1700000000000", *LINES[:1]])
    await victoria.flush()

    assert await victoria.export('{device="cam-9"}') == []
    assert len(await victoria.export('{device="cam-1"}')) == 2


@pytest.mark.integration
async def test_victoria_metrics_keeps_data_across_a_restart(victoria: VictoriaMetricsServer) -> None:
    port, old_pid = victoria.port, victoria.pid
    assert old_pid is not None
    await write_lines(victoria, LINES)

    await victoria.restart()

    assert victoria.port == port
    assert_reaped(old_pid)
    await victoria.flush()
    assert len(await victoria.export('{__name__="telemetry_line_in"}')) == 2
