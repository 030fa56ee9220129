"""``jobs.local_safety_downtime_s``: the longest a panic press waits for the village's own response while the
agent restarts, as it does to switch to an updated release.

The real agent (``python -m outpost_cli gateway run``) with a sensor-node panic button on a real local Mosquitto
(the village broker; the uplink points at a port nobody listens on: the fleet plays no part in the local path), run
as systemd runs it: started again ``RestartSec`` after it ends, read from the shipped unit. A prober presses the
node's button every :data:`PRESS_EVERY_S` as the firmware does (a :class:`~protocol.node.NodeEvent` at QoS 1, each
press told apart by its ``held_ms``) and listens as the village centre does. Once presses are answered, the agent
is stopped the way an update stops it (SIGTERM: the clean stop its restart takes) and pressing goes on until
presses are answered again. The figure is the longest wait from a press to the centre's notification (the siren is
sounded in the same step, just before); presses made while no agent runs wait in the broker (the agent's local
session is persistent) and are answered when the new one starts. Baseline: the longest wait in the same run before
the restart. Goal: under 5 s.
"""

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path
from typing import Final

import aiomqtt

from bench.harness import Figure, median
from protocol.node import NodeChannel, NodeEvent, NodeEventKind, node_topic
from protocol.village_centre import village_centre_filter
from simulators.infra.mosquitto import MosquittoBroker
from simulators.infra.ports import free_port

GOAL_S: Final = 5.0
PRESS_EVERY_S: Final = 0.1
VILLAGE: Final = "bench-village"
GATEWAY: Final = "gw-bench"
NODE: Final = "node-panic"
_STEADY_S: Final = 3.0
_AFTER_S: Final = 2.0
_GIVE_UP_S: Final = 120.0


def unit_restart_s() -> float:
    """``RestartSec=`` of the shipped unit: what systemd waits before starting the agent again."""
    unit = files("edge").joinpath("systemd/outpost-gateway.service").read_text(encoding="utf-8")
    found = re.search(r"^RestartSec=(\d+(?:\.\d+)?)s?$", unit, re.MULTILINE)
    return float(found.group(1)) if found else 0.1  # systemd's default


def _settings(state_dir: Path, broker: MosquittoBroker) -> str:
    return f"""
environment = "development"
village_id = "{VILLAGE}"
gateway_id = "{GATEWAY}"
state_dir = "{state_dir}"

[broker]
host = "127.0.0.1"
port = {free_port()}

[local_broker]
host = "{broker.host}"
port = {broker.port}

[[devices]]
kind = "panic_button"
id = "{NODE}"
driver = "node"
"""


class _Service:
    """The agent as ``Restart=always`` with ``RestartSec`` keeps it: started again after it ends."""

    def __init__(self, settings: Path, restart_s: float, log: Path) -> None:
        self._settings = settings
        self._restart_s = restart_s
        self._log = log
        self.process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "_Service":
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def _run(self) -> None:
        while True:
            with self._log.open("ab") as log:
                self.process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "outpost_cli", "--log-level", "warning", "gateway", "run",
                    "--config", str(self._settings), stdout=log, stderr=log,
                    env={**os.environ, "MALLOC_ARENA_MAX": "1"},
                )  # fmt: skip
                await self.process.wait()
            await asyncio.sleep(self._restart_s)

    def stop_agent(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)


class _Prober:
    """Presses the node's button and notes when each press was made and when the centre heard of it."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self._broker = broker
        self.pressed: dict[int, float] = {}
        self.heard: dict[int, float] = {}
        self.presses = 0

    async def press(self, client: aiomqtt.Client) -> None:
        self.presses += 1
        n = self.presses
        event = NodeEvent(node_id=NODE, boot=1, uptime_ms=n * 100, seq=n, kind=NodeEventKind.PRESS, age_ms=0, held_ms=n)
        self.pressed[self.presses] = time.perf_counter()
        await client.publish(node_topic(NODE, NodeChannel.EVENT), event.model_dump_json().encode(), qos=1)

    async def listen(self, client: aiomqtt.Client) -> None:
        await client.subscribe(village_centre_filter(VILLAGE), qos=1)
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            held = json.loads(payload).get("evidence", {}).get("held_ms")  # the Alert, as the fleet gets it
            if isinstance(held, int) and held not in self.heard:
                self.heard[held] = time.perf_counter()

    def longest_wait_s(self, first: int, last: int) -> float:
        """The longest press-to-centre wait among presses ``first`` to ``last``; infinite if one went unheard."""
        waits = [self.heard[n] - self.pressed[n] if n in self.heard else float("inf") for n in range(first, last + 1)]
        return max(waits)

    def answered_since(self, first: int) -> bool:
        return any(n >= first for n in self.heard)


async def _one_restart(restart_s: float) -> tuple[float, float]:
    """(the longest wait across a restart, the longest before it), in seconds."""
    with tempfile.TemporaryDirectory(prefix="outpost-bench-safety-") as scratch:
        root = Path(scratch)
        async with MosquittoBroker() as broker:
            settings = root / "gateway.toml"
            settings.write_text(_settings(root / "state", broker))
            prober = _Prober(broker)
            async with (
                aiomqtt.Client(broker.host, broker.port, identifier="bench-node") as node,
                aiomqtt.Client(broker.host, broker.port, identifier="bench-centre") as centre,
                _Service(settings, restart_s, root / "agent.log") as service,
            ):
                listening = asyncio.create_task(prober.listen(centre))
                try:
                    give_up = time.monotonic() + _GIVE_UP_S
                    while not prober.heard:  # the agent is up and answering
                        await prober.press(node)
                        await asyncio.sleep(PRESS_EVERY_S)
                        if time.monotonic() > give_up:
                            raise TimeoutError(f"the agent never answered a press: {(root / 'agent.log').read_text()}")
                    first_steady = prober.presses + 1
                    for _ in range(int(_STEADY_S / PRESS_EVERY_S)):
                        await prober.press(node)
                        await asyncio.sleep(PRESS_EVERY_S)
                    last_steady = prober.presses
                    service.stop_agent()
                    first_after = last_steady + 1
                    while not prober.answered_since(first_after + 1):
                        await prober.press(node)
                        await asyncio.sleep(PRESS_EVERY_S)
                        if time.monotonic() > give_up + _GIVE_UP_S:
                            raise TimeoutError("presses went unanswered after the restart")
                    for _ in range(int(_AFTER_S / PRESS_EVERY_S)):
                        await prober.press(node)
                        await asyncio.sleep(PRESS_EVERY_S)
                    await asyncio.sleep(1.0)  # the last answers
                    return prober.longest_wait_s(first_after, prober.presses), prober.longest_wait_s(
                        first_steady, last_steady
                    )
                finally:
                    listening.cancel()
                    with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                        await listening


def local_safety_downtime(runs: int) -> Figure:
    restart_s = unit_restart_s()
    measured = [asyncio.run(_one_restart(restart_s)) for _ in range(runs)]
    return Figure.measured(
        "jobs.local_safety_downtime_s",
        median([across for across, _ in measured]),
        "s",
        better="lower",
        goal=GOAL_S,
        baseline=median([steady for _, steady in measured]),
        runs=runs,
    )
