"""The gateway agent: wires adapters, local rules, telemetry, heartbeats and the uplink together."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from edge import AGENT_VERSION
from edge.adapters.actuators import Actuator
from edge.adapters.base import DeviceAdapter
from edge.buffer import StoreAndForwardBuffer
from edge.envelope import EnvelopeStamper
from edge.health import HealthProbe
from edge.outgoing import outgoing
from edge.rules import LocalRules
from edge.sequence import SequenceCounter
from edge.settings import EdgeSettings
from edge.telemetry import TelemetryBatcher
from edge.uplink import Uplink
from edge.watchdog import SystemdNotifier
from protocol.clock import utc_now_ms
from protocol.messages import AdapterState, GatewayHealth, Heartbeat, Message
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)

_STABLE_RUN_S = 60.0


class GatewayAgent:
    def __init__(
        self,
        settings: EdgeSettings,
        adapters: Sequence[DeviceAdapter],
        *,
        clock: Callable[[], int] = utc_now_ms,
        health: HealthProbe | None = None,
        sirens: Sequence[Actuator] = (),
        notifier: SystemdNotifier | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.config
        self._adapters = list(adapters)
        self._health = health or HealthProbe(settings.state_dir)
        self.stamper = EnvelopeStamper(settings.gateway_id, SequenceCounter(settings.state_dir / "sequence"), clock)
        self.buffer = StoreAndForwardBuffer(settings.state_dir / "buffer.db", settings.buffer_max_bytes)
        self.telemetry = TelemetryBatcher(self.stamper)
        self.rules = LocalRules(
            {adapter.spec.id: adapter.spec for adapter in self._adapters},
            self.stamper,
            self._store,
            self.telemetry.add,
            sirens,
        )
        self._sirens = list(sirens)
        self._notifier = notifier or SystemdNotifier()
        self.uplink = Uplink(settings.broker, settings.village_id, self.stamper, self.buffer, AGENT_VERSION)
        self.store_failures = 0
        self._restarting: set[str | None] = set()
        self._rtt_ms: float | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set (then shut down cleanly) or the uplink is refused for good."""
        await self.buffer.open()
        tasks = [
            asyncio.create_task(self.uplink.run(), name="uplink"),
            asyncio.create_task(self._supervise("heartbeat", self._heartbeats), name="heartbeat"),
            asyncio.create_task(self._supervise("telemetry", self._telemetry_flushes), name="telemetry"),
            *(
                asyncio.create_task(
                    self._supervise(f"adapter {adapter.spec.id}", self._adapter_runner(adapter), adapter.spec.id),
                    name=f"adapter-{adapter.spec.id}",
                )
                for adapter in self._adapters
            ),
        ]
        if self._notifier.watchdog_interval_s is not None:
            tasks.append(asyncio.create_task(self._notifier.keep_alive(), name="watchdog"))
        stopper = asyncio.create_task(stop.wait(), name="stop")
        self._notifier.notify("READY=1")
        logger.info(
            "gateway %s of village %s starting with %d devices",
            self.settings.gateway_id,
            self.settings.village_id,
            len(self._adapters),
        )
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                self._notifier.notify("STOPPING=1")
                self._flush_telemetry()
                await self.uplink.shutdown()
        finally:
            for task in [*tasks, stopper]:
                task.cancel()
            results = await asyncio.gather(*tasks, stopper, return_exceptions=True)
            for siren in self._sirens:
                await siren.close()
            await self.buffer.close()
        for result in results:
            if isinstance(result, Exception):
                raise result
        logger.info("gateway %s stopped", self.settings.gateway_id)

    def _adapter_runner(self, adapter: DeviceAdapter) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await adapter.run(self.rules.handle)

        return run

    async def _supervise(self, name: str, body: Callable[[], Awaitable[None]], device_id: str | None = None) -> None:
        """Run ``body`` forever; log and restart it with backoff when it fails."""
        backoff = Backoff(base_s=1.0, cap_s=60.0)
        while True:
            started = time.monotonic()
            self._restarting.discard(device_id)
            try:
                await body()
            except Exception:
                if time.monotonic() - started > _STABLE_RUN_S:  # a failure after a good run starts afresh
                    backoff.reset()
                delay = backoff.next_delay()
                self._restarting.add(device_id)
                logger.exception("%s failed; restarting in %.1f s", name, delay)
                await asyncio.sleep(delay)

    async def _heartbeats(self) -> None:
        while True:
            await self.uplink.connected.wait()
            interval = self.config.heartbeat_interval_s
            heartbeat = Heartbeat(**self.stamper.stamp(), interval_s=interval, health=self.health())
            sent = time.monotonic()
            if await self.uplink.send_now(outgoing(self.settings.village_id, self.settings.gateway_id, heartbeat)):
                self._rtt_ms = round((time.monotonic() - sent) * 1000, 1)
            await asyncio.sleep(interval)

    def health(self) -> GatewayHealth:
        """The gateway's vital signs plus the agent's own: buffer, drops, uplink RTT, each adapter's state."""
        dropped = {channel.value: count for channel, count in self.buffer.dropped.items()}
        if self.telemetry.skipped_non_finite:
            dropped["non_finite"] = self.telemetry.skipped_non_finite
        adapters = {
            device_id: (
                AdapterState.RESTARTING
                if device_id in self._restarting
                else AdapterState.OFFLINE
                if device_id in self.rules.offline_devices
                else AdapterState.RUNNING
            )
            for device_id in (adapter.spec.id for adapter in self._adapters)
        }
        return GatewayHealth(
            **self._health.read(),
            uplink_rtt_ms=self._rtt_ms,
            buffer_depth=self.buffer.depth,
            buffer_bytes=self.buffer.size_bytes,
            dropped=dropped,
            adapters=adapters,
        )

    async def _telemetry_flushes(self) -> None:
        while True:
            await asyncio.sleep(self.config.telemetry_interval_s)
            self._flush_telemetry()

    def _flush_telemetry(self) -> None:
        for batch in self.telemetry.drain():
            self._store(batch)

    def _store(self, message: Message) -> None:
        """Hand ``message`` to the buffer; it is published once it is on disk."""
        durable = self.buffer.submit(outgoing(self.settings.village_id, self.settings.gateway_id, message))
        durable.add_done_callback(self._check_stored)

    def _check_stored(self, durable: "asyncio.Future[None]") -> None:
        if not durable.cancelled() and durable.exception() is not None:
            self.store_failures += 1
            logger.error("a message could not be buffered: %s", durable.exception())
