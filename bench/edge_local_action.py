"""How fast the gateway acts locally on a panic press while the fleet is unreachable.

``edge.local_action_p50_ms`` and ``edge.local_action_max_ms``: a real :class:`GatewayAgent` with a
GPIO panic button and a GPIO siren (gpiozero's mock pins) and a real local Mosquitto; its uplink
points at a port nobody listens on. Each press is a pin driven active then released (a 100 ms
tap); the time runs from the release (when the button's debouncer can first report the tap; its
50 ms quiet time is included) until both the siren pin is on and the village centre's subscriber
has the alert. The siren is silenced between presses, so each press switches it on afresh.
Baseline: a bare MQTT QoS 1 publish-to-receive on the same broker in the same run (the floor of
the notification path). Goal: within 200 ms.
"""

import asyncio
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any, Final

import aiomqtt
from gpiozero.pins.mock import MockFactory, MockPin

from bench.harness import Figure, Profile
from edge.adapters.registry import build_devices
from edge.agent import GatewayAgent
from edge.local_bus import LocalBus
from edge.settings import BrokerSettings, EdgeSettings
from protocol.clock import utc_now_ms
from protocol.gateway_config import DeviceKind, DeviceSpec, DriverKind
from protocol.village_centre import village_centre_filter
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.ports import free_port

LOCAL_ACTION_GOAL_MS: Final = 200.0
VILLAGE, GATEWAY = "bench-village", "gw-bench"
_BUTTON_PIN, _SIREN_PIN = 17, 18
_TAP_S, _BETWEEN_S = 0.1, 0.2


class _TimedPin(MockPin):  # type: ignore[misc]  # gpiozero is untyped
    """A mock pin that notes when it is switched on (gpiozero's own log keeps only relative times)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.switched_on: asyncio.Queue[float] = asyncio.Queue()

    def _change_state(self, value: bool) -> bool:
        changed: bool = super()._change_state(value)
        if changed and value:
            self.switched_on.put_nowait(time.perf_counter())
        return changed


async def _press_to_action(broker: MosquittoBroker, state_dir: Path, presses: int) -> list[float]:
    factory = MockFactory(pin_class=_TimedPin)
    specs = [
        DeviceSpec(kind=DeviceKind.PANIC_BUTTON, id="panic-1", driver=DriverKind.GPIO, params={"pin": _BUTTON_PIN}),
        DeviceSpec(kind=DeviceKind.SIREN, id="siren-1", driver=DriverKind.GPIO, params={"pin": _SIREN_PIN}),
    ]
    local = BrokerSettings(host=broker.host, port=broker.port)
    settings = EdgeSettings(
        environment="development",
        village_id=VILLAGE,
        gateway_id=GATEWAY,
        broker=BrokerSettings(port=free_port()),  # the fleet is unreachable
        local_broker=local,
        state_dir=state_dir,
        devices=specs,
    )
    bus = LocalBus(local, VILLAGE, GATEWAY, utc_now_ms)
    build = partial(build_devices, clock=utc_now_ms, pin_factory=factory, node_bus=bus)
    agent = GatewayAgent(settings, build, local_bus=bus)
    stop = asyncio.Event()
    running = asyncio.create_task(agent.run(stop))
    heard: asyncio.Queue[float] = asyncio.Queue()
    ready = asyncio.Event()

    async def village_centre() -> None:
        async with aiomqtt.Client(broker.host, broker.port, identifier="bench-village-centre") as client:
            await client.subscribe(village_centre_filter(VILLAGE), qos=1)
            ready.set()
            async for _ in client.messages:
                heard.put_nowait(time.perf_counter())

    listening = asyncio.create_task(village_centre())
    button, siren = factory.pin(_BUTTON_PIN), factory.pin(_SIREN_PIN)
    assert isinstance(siren, _TimedPin)
    delays: list[float] = []
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.wait_for(bus.connected.wait(), 10)
        for _ in range(presses):
            button.drive_low()  # pressed: the button pulls the line to ground
            await asyncio.sleep(_TAP_S)
            released = time.perf_counter()
            button.drive_high()
            centre_at = await asyncio.wait_for(heard.get(), 5)
            siren_at = await asyncio.wait_for(siren.switched_on.get(), 5)
            delays.append((max(centre_at, siren_at) - released) * 1000)
            await agent.devices.sirens["siren-1"].silence()
            await asyncio.sleep(_BETWEEN_S)
    finally:
        stop.set()
        listening.cancel()
        await asyncio.gather(running, listening, return_exceptions=True)
    return delays


async def _bare_round_trips(broker: MosquittoBroker, count: int) -> list[float]:
    topic = "bench/round-trip"
    async with (
        aiomqtt.Client(broker.host, broker.port, identifier="bench-receiver") as receiver,
        aiomqtt.Client(broker.host, broker.port, identifier="bench-sender") as sender,
    ):
        await receiver.subscribe(topic, qos=1)
        delays = []
        messages = receiver.messages
        await sender.publish(topic, b"warm-up", qos=1)
        await anext(messages)
        for _ in range(count):
            sent = time.perf_counter()
            await sender.publish(topic, b"x" * 300, qos=1)
            await anext(messages)
            delays.append((time.perf_counter() - sent) * 1000)
        return delays


async def _measure(presses: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="outpost-bench-local-") as directory:
        async with MosquittoBroker() as broker:
            actions = await _press_to_action(broker, Path(directory) / "gateway", presses)
            floor = await _bare_round_trips(broker, presses)
    return actions, floor


def local_action_figures(profile: Profile) -> list[Figure]:
    presses = 10 if profile.target_s < 0.1 else 40
    actions, floor = asyncio.run(_measure(presses))
    floor_ms = statistics.median(floor)
    return [
        Figure.measured(
            "edge.local_action_p50_ms", round(statistics.median(actions), 2), "ms",
            better="lower", runs=len(actions), goal=LOCAL_ACTION_GOAL_MS, baseline=round(floor_ms, 3),
        ),
        Figure.measured(
            "edge.local_action_max_ms", round(max(actions), 2), "ms",
            better="lower", runs=len(actions), goal=LOCAL_ACTION_GOAL_MS, baseline=round(max(floor), 3),
        ),
    ]  # fmt: skip
