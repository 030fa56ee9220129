"""Benchmark group ``security``: what failing closed costs on the hot paths, each against the same path without it.

``security.ingest_tls`` (messages/s): the fleet's ingest session (:class:`~fleet.mqtt.ingest_session.IngestSession`,
MQTT 5, manual acks) draining :data:`BACKLOG` telemetry messages the broker queued for it while it was away,
over TLS with a client certificate (the production link); baseline: the same session and backlog over plain
MQTT to the same Mosquitto. The broker's sending, the session's decryption and acknowledgement are timed; the
publisher is not (it fills the queue before the clock starts). Runs of both are interleaved.

``security.command_signing`` (commands/s): a command built, signed (Ed25519, :mod:`protocol.command_signing`)
and encoded by the fleet, then decoded, verified and remembered as a gateway does (minus the fsync of its
memory, which is the disk's, not the signature's); baseline: the same command unsigned, encoded and decoded.
No goals: these figures say what the protection costs; the ingest and command goals are measured elsewhere.
"""

import asyncio
import logging
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Final

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.contract import telemetry_batch
from bench.harness import Figure, Profile, median_rates, register_group
from fleet.mqtt.ingest_session import IngestSession
from fleet.settings import BrokerSettings
from protocol.codec import Decoder, Inbound, encode
from protocol.command_signing import sign_command, verify_command
from protocol.config_signing import key_id
from protocol.messages import Command, CommandName
from protocol.mqtt_tls import MqttTlsSettings
from protocol.topics import Channel, fleet_filter, gateway_topic
from simulators.infra.certificates import write_certificates
from simulators.infra.mosquitto import MosquittoBroker, TlsListener

logger = logging.getLogger(__name__)

BACKLOG: Final = 20_000
QUICK_BACKLOG: Final = 4_000
_VILLAGE: Final = "riverside"
_GATEWAY: Final = "gw-bench-01"
_DRAIN_TIMEOUT_S: Final = 300.0


@register_group("security", "the cost of TLS on ingest and of signed commands, against the same paths without")
def run(profile: Profile) -> list[Figure]:
    figures = [_command_signing(profile)]
    figures.append(asyncio.run(_ingest_tls(profile)))
    return figures


# --- signed commands --------------------------------------------------------------------------------


def _command_signing(profile: Profile) -> Figure:
    key = Ed25519PrivateKey.generate()
    public, signer_id = key.public_key(), key_id(key.public_key())
    decoder = Decoder()
    topic = gateway_topic(_VILLAGE, _GATEWAY, Channel.COMMAND)

    def command() -> Command:
        request = uuid.uuid4()
        return Command(gateway_id=_GATEWAY, seq=1, event_id=request, ts=1_700_000_000_000, request_id=request,
                       name=CommandName.DIAGNOSTICS, requested_by="li-wei", timeout_s=30.0)  # fmt: skip

    def signed() -> object:
        unsigned = command()
        message = unsigned.model_copy(update={"signature": sign_command(key, unsigned), "key_id": signer_id})
        received = decoder.decode(topic, encode(message))
        assert isinstance(received, Inbound)
        assert isinstance(received.message, Command)
        assert received.message.signature is not None
        verify_command(public, received.message, received.message.signature)
        return received

    def unsigned() -> object:
        return decoder.decode(topic, encode(command()))

    value, baseline = median_rates([signed, unsigned], items_per_call=[1, 1], profile=profile)
    return Figure.measured(
        "security.command_signing", value, "commands/s", better="higher", runs=profile.runs, baseline=baseline
    )


# --- TLS on ingest ----------------------------------------------------------------------------------


async def _ingest_tls(profile: Profile) -> Figure:
    backlog = QUICK_BACKLOG if profile.runs < 5 else BACKLOG
    payload = encode(telemetry_batch(10, gateway_id=_GATEWAY))
    with tempfile.TemporaryDirectory(prefix="outpost-bench-tls-") as directory:
        pki = write_certificates(Path(directory) / "pki")
        listener = TlsListener(pki.ca_cert, pki.server_cert, pki.server_key, require_certificate=True)
        async with MosquittoBroker(tls=listener) as broker:
            assert broker.tls_port is not None
            tls = MqttTlsSettings(ca_file=pki.ca_cert, cert_file=pki.client_cert, key_file=pki.client_key)
            plain_settings = BrokerSettings(host=broker.host, port=broker.port, client_id="bench-plain")
            tls_settings = BrokerSettings(host=broker.host, port=broker.tls_port, client_id="bench-tls", tls=tls)
            rates: dict[str, list[float]] = {"tls": [], "plain": []}
            for run_index in range(profile.runs):
                for name, settings in (("tls", tls_settings), ("plain", plain_settings)):
                    session_id = f"{settings.client_id}-{run_index}"
                    await _drain(settings, session_id, expected=0)  # subscribe once: the session exists
                    await _publish(broker, payload, backlog)
                    elapsed = await _drain(settings, session_id, expected=backlog)
                    rates[name].append(backlog / elapsed)
                    logger.info("ingest over %s: %d messages in %.2f s", name, backlog, elapsed)
    value, baseline = statistics.median(rates["tls"]), statistics.median(rates["plain"])
    return Figure.measured(
        "security.ingest_tls", value, "messages/s", better="higher", runs=profile.runs, baseline=baseline
    )


async def _publish(broker: MosquittoBroker, payload: bytes, count: int) -> None:
    """Queue ``count`` telemetry messages for the ingest session (plain, untimed)."""
    topic = gateway_topic(_VILLAGE, _GATEWAY, Channel.TELEMETRY)
    async with aiomqtt.Client(
        broker.host, broker.port, identifier="bench-publisher", max_inflight_messages=1000
    ) as client:
        client.pending_calls_threshold = 2000
        for start in range(0, count, 1000):
            await asyncio.gather(*(client.publish(topic, payload, qos=1) for _ in range(min(1000, count - start))))


async def _drain(settings: BrokerSettings, client_id: str, *, expected: int) -> float:
    """Connect the persistent ingest session, ack ``expected`` messages, disconnect; the seconds from the start of
    the connection (``expected`` 0: just subscribe, so the broker queues for the session while it is away)."""
    session = IngestSession(settings, client_id, [fleet_filter(Channel.TELEMETRY, village_id=_VILLAGE)])
    done = asyncio.Event()
    taken = 0

    async def consume() -> None:
        nonlocal taken
        async for message in session.messages():
            session.ack(message)
            taken += 1
            if taken >= expected:
                done.set()

    started = time.perf_counter()
    consuming = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(_DRAIN_TIMEOUT_S):
            await (session.connected.wait() if expected == 0 else done.wait())
        return time.perf_counter() - started
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
