"""The health gate a new agent must pass before its update counts as done.

It passes once, all at the same moment: the uplink is connected, a heartbeat has reached the broker (PUBACK), no
device's adapter is failing (every configured device built and running or merely waiting for its device), and the
store-and-forward buffer is empty (what was queued before the restart has gone out). It fails with the first of
these still missing when ``gate_s`` runs out.
"""

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from protocol.messages import AdapterState

POLL_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class GateSignals:
    connected: asyncio.Event
    heartbeat_delivered: asyncio.Event
    adapters: Callable[[], Mapping[str, AdapterState]]
    buffer_depth: Callable[[], int]


def missing(signals: GateSignals) -> str | None:
    """What keeps the gate shut now, in words; None when it passes."""
    if not signals.connected.is_set():
        return "it never connected to the broker"
    if not signals.heartbeat_delivered.is_set():
        return "no heartbeat reached the broker"
    failing = sorted(device for device, state in signals.adapters().items() if state is AdapterState.RESTARTING)
    if failing:
        return f"devices failing: {', '.join(failing[:5])}"
    depth = signals.buffer_depth()
    if depth:
        return f"its buffer did not drain ({depth} messages left)"
    return None


async def health_gate(signals: GateSignals, gate_s: float, poll_s: float = POLL_S) -> str | None:
    """Wait until the gate passes (None) or ``gate_s`` is over (why it did not)."""
    deadline = time.monotonic() + gate_s
    while True:
        why = missing(signals)
        if why is None or time.monotonic() >= deadline:
            return why
        await asyncio.sleep(poll_s)
