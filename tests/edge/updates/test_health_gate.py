"""The health gate of an agent on trial: connected, a heartbeat delivered, no adapter failing, the buffer drained,
all at once; otherwise the first of these still missing when its time is over."""

import asyncio
from collections.abc import Mapping

import pytest

from edge.updates.health_gate import GateSignals, health_gate, missing
from protocol.messages import AdapterState

LIVENESS_S = 60.0
"""How long a gate that should pass may wait: a bound on waiting, not a timing check."""
SHORT_GATE_S = 0.2
POLL_S = 0.01


class Gateway:
    """The agent's state the gate reads, changed by the test as the agent would."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.heartbeat_delivered = asyncio.Event()
        self.adapters: dict[str, AdapterState] = {}
        self.depth = 0

    def healthy(self) -> None:
        self.connected.set()
        self.heartbeat_delivered.set()
        self.adapters = {"cam-1": AdapterState.RUNNING, "node-1": AdapterState.OFFLINE}
        self.depth = 0

    def signals(self) -> GateSignals:
        return GateSignals(self.connected, self.heartbeat_delivered, self._adapters, self._depth)

    def _adapters(self) -> Mapping[str, AdapterState]:
        return self.adapters

    def _depth(self) -> int:
        return self.depth


async def test_missing_nothing_when_healthy() -> None:
    gateway = Gateway()
    gateway.healthy()

    assert missing(gateway.signals()) is None


async def test_missing_names_the_first_thing_still_missing() -> None:
    gateway = Gateway()
    gateway.adapters = {"cam-1": AdapterState.RESTARTING}
    gateway.depth = 4

    assert missing(gateway.signals()) == "it never connected to the broker"
    gateway.connected.set()
    assert missing(gateway.signals()) == "no heartbeat reached the broker"
    gateway.heartbeat_delivered.set()
    assert missing(gateway.signals()) == "devices failing: cam-1"
    gateway.adapters["cam-1"] = AdapterState.RUNNING
    assert missing(gateway.signals()) == "its buffer did not drain (4 messages left)"
    gateway.depth = 0
    assert missing(gateway.signals()) is None


async def test_failing_devices_are_named_in_order_and_at_most_five() -> None:
    gateway = Gateway()
    gateway.healthy()
    gateway.adapters = {f"cam-{n}": AdapterState.RESTARTING for n in (7, 3, 6, 1, 5, 2, 4)}
    gateway.adapters |= {"node-0": AdapterState.OFFLINE, "node-9": AdapterState.RUNNING}

    assert missing(gateway.signals()) == "devices failing: cam-1, cam-2, cam-3, cam-4, cam-5"


async def test_the_gate_passes_at_once_when_healthy() -> None:
    gateway = Gateway()
    gateway.healthy()

    assert await health_gate(gateway.signals(), gate_s=0.0, poll_s=POLL_S) is None


async def test_the_gate_passes_once_everything_becomes_good_while_it_waits() -> None:
    gateway = Gateway()
    gateway.adapters = {"cam-1": AdapterState.RESTARTING}
    draining = [2, 1, 0]  # the buffer drains a message each time the gate looks
    looks = 0

    def depth() -> int:
        nonlocal looks
        looks += 1
        return draining.pop(0) if draining else 0

    async def come_up() -> None:
        await asyncio.sleep(POLL_S)
        gateway.connected.set()
        await asyncio.sleep(POLL_S)
        gateway.heartbeat_delivered.set()
        await asyncio.sleep(POLL_S)
        gateway.adapters["cam-1"] = AdapterState.RUNNING

    signals = GateSignals(gateway.connected, gateway.heartbeat_delivered, lambda: gateway.adapters, depth)
    coming_up = asyncio.create_task(come_up())

    why = await health_gate(signals, gate_s=LIVENESS_S, poll_s=POLL_S)
    await coming_up

    assert why is None
    assert looks == 3  # it waited for the buffer too: 2 messages left, 1, then none


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (set(), "it never connected to the broker"),
        ({"connected"}, "no heartbeat reached the broker"),
        ({"connected", "heartbeat"}, "devices failing: cam-2"),
        ({"connected", "heartbeat", "adapters"}, "its buffer did not drain (12 messages left)"),
    ],
)
async def test_the_gate_fails_with_the_first_reason_when_its_time_is_over(state: set[str], expected: str) -> None:
    gateway = Gateway()
    if "connected" in state:
        gateway.connected.set()
    if "heartbeat" in state:
        gateway.heartbeat_delivered.set()
    gateway.adapters = {"cam-1": AdapterState.RUNNING, "cam-2": AdapterState.RESTARTING, "node": AdapterState.OFFLINE}
    if "adapters" in state:
        gateway.adapters["cam-2"] = AdapterState.RUNNING
    gateway.depth = 12

    assert await health_gate(gateway.signals(), gate_s=SHORT_GATE_S, poll_s=POLL_S) == expected


async def test_offline_devices_do_not_shut_the_gate() -> None:
    gateway = Gateway()
    gateway.healthy()
    gateway.adapters = {"cam-1": AdapterState.OFFLINE, "node-1": AdapterState.OFFLINE}

    assert await health_gate(gateway.signals(), gate_s=SHORT_GATE_S, poll_s=POLL_S) is None
