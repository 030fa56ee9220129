"""The uplink over TLS against a real Mosquitto: the CA and a client certificate get a press through; a
broker certificate the gateway cannot trust is reported loudly and retried on a long backoff while the agent
runs on (its village stays safe), one that has merely expired is retried on the ordinary backoff."""

import asyncio
import logging
import re
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.adapters.simulated import SimulatedPanicButton
from edge.agent import GatewayAgent
from edge.broker_connection import tls_context
from edge.devices import prebuilt
from edge.errors import EdgeConfigError
from edge.faults import UPLINK, UPLINK_REFUSED
from edge.settings import BrokerSettings, EdgeSettings
from protocol.clock import utc_now_ms
from protocol.gateway_config import DeviceKind, DeviceSpec, GatewayConfig
from protocol.messages import Alert, AlertKind, Severity
from protocol.mqtt_tls import MqttTlsSettings
from protocol.topics import Channel
from simulators.infra.certificates import CertificateFiles, write_certificates
from simulators.infra.mosquitto import MosquittoBroker, TlsListener
from tests.integration.conftest import eventually
from tests.integration.recorder import Recorder

pytestmark = pytest.mark.integration


async def _refusal(agent: GatewayAgent) -> str:
    """Run ``agent`` until its uplink was refused twice (so it retried); the reason it reports. The agent
    must still be running."""
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    try:

        async def refused_twice() -> bool:
            return agent.faults.counts[UPLINK_REFUSED] >= 2

        await eventually(refused_twice, what="the uplink refused and retried")
        assert not running.done()
    finally:
        stop.set()
        await running
    return agent.faults.reason(UPLINK) or ""


@pytest.fixture
def certificates(tmp_path: Path) -> CertificateFiles:
    return write_certificates(tmp_path / "pki")


def _listener(files: CertificateFiles, *, require_certificate: bool = True) -> TlsListener:
    return TlsListener(files.ca_cert, files.server_cert, files.server_key, require_certificate=require_certificate)


@pytest.fixture
async def tls_broker(certificates: CertificateFiles) -> AsyncIterator[MosquittoBroker]:
    """A broker that speaks only TLS and accepts only clients with a certificate from its CA."""
    if not MosquittoBroker.available():
        pytest.fail("mosquitto is not installed: run scripts/test, which installs it")
    async with MosquittoBroker(tls=_listener(certificates), plain=False) as broker:
        yield broker


def _client_tls(files: CertificateFiles, *, ca_file: Path | None = None) -> MqttTlsSettings:
    return MqttTlsSettings(ca_file=ca_file or files.ca_cert, cert_file=files.client_cert, key_file=files.client_key)


def _gateway(tmp_path: Path, port: int | None, tls: MqttTlsSettings) -> tuple[GatewayAgent, SimulatedPanicButton]:
    assert port is not None, "the broker has no TLS listener"
    settings = EdgeSettings(
        environment="development",
        village_id="shiqiao",
        gateway_id="gw-shiqiao",
        broker=BrokerSettings(port=port, keepalive_s=5, tls=tls, refused_retry_base_s=0.2, refused_retry_cap_s=0.5),
        state_dir=tmp_path / "gateway",
        config=GatewayConfig(heartbeat_interval_s=1.0, telemetry_interval_s=0.5),
        devices=[DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-clinic", grid_id="shiqiao-grid-1")],
    )
    button = SimulatedPanicButton(settings.devices[0], utc_now_ms)
    return GatewayAgent(settings, prebuilt([button])), button


async def test_a_press_reaches_a_tls_subscriber_through_a_broker_that_requires_client_certificates(
    tmp_path: Path, certificates: CertificateFiles, tls_broker: MosquittoBroker
) -> None:
    tls = _client_tls(certificates)
    agent, button = _gateway(tmp_path, tls_broker.tls_port, tls)
    subscriber_tls = tls_context(BrokerSettings(tls=tls), "broker")
    assert tls_broker.tls_port is not None
    async with Recorder(tls_broker.host, tls_broker.tls_port, [Channel.ALERT], tls_context=subscriber_tls) as recorder:
        stop = asyncio.Event()
        running = asyncio.create_task(agent.run(stop))
        try:
            await eventually(lambda: _is_set(agent.uplink.connected), what="the gateway connecting over TLS")
            button.press(held_ms=800)

            async def alert_arrived() -> bool:
                return len(recorder.unique()) >= 1

            await eventually(alert_arrived, what="the alert reaching the TLS subscriber")
        finally:
            stop.set()
            await running

    [arrival] = recorder.unique().values()
    alert = arrival.message
    assert isinstance(alert, Alert)
    assert (alert.gateway_id, alert.device_id, alert.grid_id) == ("gw-shiqiao", "panic-clinic", "shiqiao-grid-1")
    assert (alert.kind, alert.severity, alert.evidence) == (AlertKind.PANIC, Severity.CRITICAL, {"held_ms": 800})


async def test_the_tls_broker_refuses_a_client_without_a_certificate(
    certificates: CertificateFiles, tls_broker: MosquittoBroker
) -> None:
    """What makes the test above prove the client certificate: without one, the broker hangs up."""
    no_client_certificate = tls_context(BrokerSettings(tls=MqttTlsSettings(ca_file=certificates.ca_cert)), "broker")
    reader, writer = await asyncio.open_connection(tls_broker.host, tls_broker.tls_port, ssl=no_client_certificate)
    try:
        with pytest.raises(ssl.SSLError, match="certificate required"):
            await reader.read()
    finally:
        writer.close()
        with suppress(OSError):
            await writer.wait_closed()


async def test_a_gateway_given_the_wrong_ca_never_connects_runs_on_and_names_the_ca_file(
    tmp_path: Path, certificates: CertificateFiles
) -> None:
    wrong = write_certificates(tmp_path / "another-pki")
    # The broker also keeps its plain listener: TLS is an extra port.
    async with MosquittoBroker(tls=_listener(certificates)) as broker:
        assert broker.tls_port != broker.port
        agent, _ = _gateway(tmp_path, broker.tls_port, _client_tls(certificates, ca_file=wrong.ca_cert))
        message = await _refusal(agent)

    assert f"broker.tls.ca_file {wrong.ca_cert}" in message
    assert "configure the CA that signed the broker's certificate" in message
    assert agent.uplink.connects == 0


async def test_a_broker_certificate_for_another_host_is_reported_naming_broker_host(tmp_path: Path) -> None:
    elsewhere = write_certificates(tmp_path / "pki", server_hosts=["broker.example.org"])
    async with MosquittoBroker(tls=_listener(elsewhere), plain=False) as broker:
        agent, _ = _gateway(tmp_path, broker.tls_port, _client_tls(elsewhere))
        message = await _refusal(agent)
    assert re.search(r"not issued for 127\.0\.0\.1 .*: set broker\.host", message)
    assert agent.uplink.connects == 0


async def test_outpost_gateway_run_keeps_running_and_names_the_ca_file_when_the_ca_is_wrong(
    tmp_path: Path, certificates: CertificateFiles, tls_broker: MosquittoBroker
) -> None:
    wrong = write_certificates(tmp_path / "another-pki")
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""
environment = "development"
village_id = "shiqiao"
gateway_id = "gw-shiqiao"
state_dir = "{tmp_path / "gateway"}"

[broker]
host = "{tls_broker.host}"
port = {tls_broker.tls_port}
refused_retry_base_s = 0.5

[broker.tls]
ca_file = "{wrong.ca_cert}"
cert_file = "{certificates.client_cert}"
key_file = "{certificates.client_key}"
""",
        encoding="utf-8",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "outpost_cli", "--log-level", "warning", "gateway", "run", "--config", str(config),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(60):
            while f"broker.tls.ca_file {wrong.ca_cert}" not in "".join(seen):
                line = await process.stderr.readline()
                assert line, f"the agent stopped: {''.join(seen)[-2000:]}"
                seen.append(line.decode())
        assert process.returncode is None  # refused, and still running
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert process.returncode == 0  # a clean stop on SIGTERM, not an exit code of its own for a refusal
    assert "uplink failing" in "".join(seen)


async def test_an_expired_broker_certificate_is_retried_with_a_warning_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An expired (or not yet valid) certificate is a clock or renewal problem that heals on its own."""
    expired = write_certificates(
        tmp_path / "pki", valid_from=datetime.now(UTC) - timedelta(days=2), valid_for=timedelta(days=1)
    )
    async with MosquittoBroker(tls=_listener(expired), plain=False) as broker:
        agent, _ = _gateway(tmp_path, broker.tls_port, _client_tls(expired))
        stop = asyncio.Event()
        with caplog.at_level(logging.WARNING, logger="edge.uplink"):
            running = asyncio.create_task(agent.run(stop))
            try:

                async def retried() -> bool:
                    return sum("certificate has expired" in record.getMessage() for record in caplog.records) >= 2

                await eventually(retried, what="a second attempt after an expired broker certificate")
                assert not running.done()
            finally:
                stop.set()
                await running

    assert agent.uplink.connects == 0
    assert "check this gateway's clock" in caplog.text


def test_a_missing_ca_file_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(EdgeConfigError, match=re.escape(f"cannot load broker.tls.ca_file {missing}:")):
        _gateway(tmp_path, 8883, MqttTlsSettings(ca_file=missing))


async def _is_set(event: asyncio.Event) -> bool:
    return event.is_set()
