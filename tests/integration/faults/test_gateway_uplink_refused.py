"""The village stays safe while the county broker refuses the gateway (revoked credentials): the agent runs
on, acts locally on every press within 200 ms, says why it is refused, and forwards everything once accepted."""

import asyncio
import re
from pathlib import Path

import pytest

from edge.faults import UPLINK, UPLINK_REFUSED
from edge.settings import BrokerSettings
from protocol.clock import utc_now_ms
from protocol.topics import Channel
from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import eventually
from tests.integration.faults.gateway_rig import gateway_settings, panic_alerts, running_village
from tests.integration.recorder import Recorder

pytestmark = pytest.mark.integration

PRESSES = 3


async def test_a_refused_gateway_keeps_its_village_safe_and_forwards_once_accepted_again(
    tmp_path: Path, local_broker: MosquittoBroker, record_property: object
) -> None:
    refusing = MosquittoBroker(allow_anonymous=False)  # the gateway's (anonymous) login is refused: not authorised
    await refusing.start()
    port = refusing.port
    county = BrokerSettings(port=port, keepalive_s=5, refused_retry_base_s=0.5, refused_retry_cap_s=1.0)
    settings = gateway_settings(tmp_path / "state", county, local_broker)
    try:
        async with running_village(settings, local_broker, utc_now_ms) as rig:
            agent = rig.agent

            async def refused() -> bool:
                return agent.faults.counts[UPLINK_REFUSED] >= 2  # refused, and retried

            await eventually(refused, what="the uplink refused twice")
            alerts = [await rig.press() for _ in range(PRESSES)]
            reason = agent.faults.reason(UPLINK)
            heartbeat_dropped = agent.health().dropped

            await refusing.close()  # the credentials are restored: a broker that accepts the gateway
            async with (
                MosquittoBroker(port=port) as accepting,
                Recorder(accepting.host, accepting.port, [Channel.ALERT]) as recorder,
            ):

                async def forwarded() -> bool:
                    return {alert.event_id for alert in alerts} <= set(recorder.unique())

                await eventually(forwarded, what="the refused gateway's alerts after it was accepted")
                await eventually(lambda: _true(agent.faults.reason(UPLINK) is None), what="the reason cleared")
    finally:
        await refusing.close()

    rig.report(record_property, "refused uplink")  # type: ignore[arg-type]
    assert len(panic_alerts(alerts)) == PRESSES
    assert reason is not None
    assert re.search(rf"broker 127\.0\.0\.1:{port} refused gateway gw-xiashan \(code (5|135)\)", reason)
    assert "check its credentials" in reason
    assert heartbeat_dropped[UPLINK_REFUSED] >= 2


async def _true(value: bool) -> bool:
    await asyncio.sleep(0)
    return value
