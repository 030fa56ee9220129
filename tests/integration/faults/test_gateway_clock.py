"""The village stays safe when the gateway's clock is a day off: the siren and the village centre within
200 ms, the alert stamped with the gateway's own (wrong) time, and forwarded to the county all the same."""

from pathlib import Path

import pytest

from edge.settings import BrokerSettings
from protocol.clock import utc_now_ms
from protocol.topics import Channel
from simulators.infra.mosquitto import MosquittoBroker
from tests.integration.conftest import eventually
from tests.integration.faults.gateway_rig import gateway_settings, panic_alerts, running_village
from tests.integration.recorder import Recorder

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
PRESSES = 3


@pytest.mark.parametrize("offset_ms", [DAY_MS, -DAY_MS], ids=["a-day-ahead", "a-day-behind"])
async def test_a_gateway_clock_a_day_off_still_sounds_and_notifies_locally_at_once(
    tmp_path: Path, mosquitto: MosquittoBroker, local_broker: MosquittoBroker, offset_ms: int, record_property: object
) -> None:
    def skewed() -> int:
        return utc_now_ms() + offset_ms

    settings = gateway_settings(tmp_path / "state", BrokerSettings(port=mosquitto.port, keepalive_s=5), local_broker)
    async with (
        Recorder(mosquitto.host, mosquitto.port, [Channel.ALERT]) as recorder,
        running_village(settings, local_broker, skewed) as rig,
    ):
        alerts = [await rig.press() for _ in range(PRESSES)]

        async def forwarded() -> bool:
            return {alert.event_id for alert in alerts} <= set(recorder.unique())

        await eventually(forwarded, what="the alerts at the county")

    rig.report(record_property, f"clock {offset_ms // DAY_MS:+d} day")  # type: ignore[arg-type]
    assert len(panic_alerts(alerts)) == PRESSES
    for alert in alerts:  # stamped with the gateway's time, as it believes it
        assert abs(alert.ts - (utc_now_ms() + offset_ms)) < 60_000
