"""The gateway agent: wires devices, local rules, telemetry, heartbeats, config updates and the uplink together."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial

from edge import AGENT_VERSION
from edge.buffer import StoreAndForwardBuffer
from edge.certificate_install import CertificateInstaller
from edge.command_memory import COMMAND_MEMORY_NAME, CommandMemory
from edge.commands import AUDIT_LOG_NAME, AuditLog, CommandHandler
from edge.config_floor import CONFIG_FLOOR_NAME, ConfigVersionFloor
from edge.config_signature import ConfigSignatures
from edge.config_updates import ConfigUpdates
from edge.devices import DeviceBuilder, DeviceRunner
from edge.envelope import EnvelopeStamper
from edge.errors import EdgeConfigError, RestartRequestedError
from edge.faults import GatewayFaults
from edge.health import HealthProbe
from edge.local_bus import LocalBus
from edge.outgoing import Outgoing, outgoing
from edge.rules import LocalRules
from edge.sequence import SequenceCounter
from edge.settings import EdgeSettings
from edge.snapshots import SnapshotStore
from edge.supervisor import supervise
from edge.telemetry import TelemetryBatcher
from edge.updates.health_gate import GateSignals
from edge.updates.updater import AgentUpdater
from edge.uplink import Uplink
from edge.watchdog import SystemdNotifier
from protocol.clock import utc_now_ms
from protocol.codec import Decoder, Rejection
from protocol.gateway_config import GatewayConfig
from protocol.messages import Command, ConfigDesired, ConfigReported, ConfigStatus, GatewayHealth, Heartbeat, Message
from protocol.topics import Channel

logger = logging.getLogger(__name__)

SNAPSHOT_PURGE_INTERVAL_S = 60.0
DEFAULT_PROBATION_S = 3.0
"""How long newly configured devices must run without failing before a config counts as applied."""


class GatewayAgent:
    def __init__(
        self,
        settings: EdgeSettings,
        build_devices: DeviceBuilder,
        *,
        clock: Callable[[], int] = utc_now_ms,
        health: HealthProbe | None = None,
        notifier: SystemdNotifier | None = None,
        local_bus: LocalBus | None = None,
        snapshots: SnapshotStore | None = None,
        probation_s: float = DEFAULT_PROBATION_S,
        buffer_max_pages: int | None = None,
    ) -> None:
        """``build_devices`` makes the adapters for a device list (at start and for each pushed config);
        cameras given ``snapshots`` keep evidence frames in it for audited fetches. ``buffer_max_pages``
        caps the buffer's file (SQLite pages; see :class:`StoreAndForwardBuffer`)."""
        self.settings = settings
        self.faults = GatewayFaults()
        """Store, sequence and uplink failures since start (counted in the heartbeat's ``health.dropped``) and
        the reason of each part failing now (:attr:`GatewayFaults.reasons`)."""
        self._health = health or HealthProbe(settings.state_dir)
        sequence = SequenceCounter(settings.state_dir / "sequence", faults=self.faults)
        self.stamper = EnvelopeStamper(settings.gateway_id, sequence, clock)
        self.buffer = StoreAndForwardBuffer(
            settings.state_dir / "buffer.db",
            settings.buffer_max_bytes,
            faults=self.faults,
            free_room=self._free_room,
            max_pages=buffer_max_pages,
        )
        self.telemetry = TelemetryBatcher(self.stamper)
        self.local_bus = local_bus
        self._restart_requested = asyncio.Event()
        self._heartbeat_now = asyncio.Event()
        self.heartbeat_delivered = asyncio.Event()
        self._answering: set[asyncio.Task[None]] = set()
        self.rules = LocalRules(
            self.stamper,
            self._store,
            self.telemetry.add,
            notify_local=local_bus.notify_village_centre if local_bus is not None else None,
            faults=self.faults,
        )
        self.updater = (
            AgentUpdater(
                settings.updates,
                settings.gateway_id,
                settings.state_dir,
                AGENT_VERSION,
                alarm=lambda: self.rules.alarm(clock()),
                on_report=lambda _report: self._heartbeat_now.set(),
                request_restart=self._restart_requested.set,
                clock=clock,
            )
            if settings.updates is not None
            else None
        )
        """Agent updates (edge.updates); None when the settings have no [updates]."""
        self.devices = DeviceRunner(build_devices, self.rules.handle)
        signatures = ConfigSignatures.from_settings(settings)  # EdgeConfigError naming config_signing_key if unusable
        self.config_updates = ConfigUpdates(
            settings.state_dir / "applied-config.json",
            settings.config,
            self._apply_config,
            self._report_config,
            signatures,
            ConfigVersionFloor(settings.state_dir / CONFIG_FLOOR_NAME),  # EdgeConfigError if damaged
        )
        self.snapshots = snapshots or SnapshotStore(settings.state_dir / "snapshots", self.config.snapshots, clock)
        self.commands = CommandHandler(
            self.stamper,
            self.snapshots,
            AuditLog(settings.state_dir / AUDIT_LOG_NAME),
            self.health,
            self._restart_requested.set,
            signatures=signatures,
            memory=CommandMemory(settings.state_dir / COMMAND_MEMORY_NAME),
            certificates=CertificateInstaller(settings.broker.tls, settings.gateway_id, self.stamper.clock),
            start_update=self.updater.start if self.updater is not None else None,
        )
        self._probation_s = probation_s
        self._notifier = notifier or SystemdNotifier()
        self._decoder = Decoder()
        self.uplink = Uplink(
            settings.broker,
            settings.village_id,
            self.stamper,
            self.buffer,
            AGENT_VERSION,
            on_downlink=self._on_downlink,
            faults=self.faults,
        )
        self._rtt_ms: float | None = None

    @property
    def config(self) -> GatewayConfig:
        return self.config_updates.applied.config

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set (then shut down cleanly) or the fleet asks for a restart.

        The devices start first, before the buffer is opened (and checked): nothing on the disk stands
        between a press and the sirens. Neither the buffer's state nor an uplink refusal stops the agent."""
        self._start_devices()  # EdgeConfigError: the settings' own devices cannot be built, nothing can run
        try:
            await self.buffer.open()
        except BaseException:
            await self.devices.close()
            raise
        tasks = [
            # Supervised: a buffer the disk refuses to read must not end the agent through its uplink.
            asyncio.create_task(supervise("uplink", self.uplink.run), name="uplink"),
            asyncio.create_task(supervise("heartbeat", self._heartbeats), name="heartbeat"),
            asyncio.create_task(supervise("telemetry", self._telemetry_flushes), name="telemetry"),
            asyncio.create_task(supervise("config updates", self.config_updates.run), name="config-updates"),
            asyncio.create_task(supervise("snapshot purge", self._purge_snapshots), name="snapshot-purge"),
        ]
        if self.local_bus is not None:
            tasks.append(asyncio.create_task(self.local_bus.run(), name="local-bus"))
        if self._notifier.watchdog_interval_s is not None:
            tasks.append(asyncio.create_task(self._notifier.keep_alive(), name="watchdog"))
        stopper = asyncio.create_task(_first_set(stop, self._restart_requested), name="stop")
        on_trial = self._prove_update()
        self._notifier.notify("READY=1")
        logger.info(
            "gateway %s of village %s starting with %d devices (config version %d)",
            self.settings.gateway_id,
            self.settings.village_id,
            len(self.config.devices),
            self.config_updates.applied.version,
        )
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                self._notifier.notify("STOPPING=1")
                self._flush_telemetry()
                await self.uplink.shutdown()
        finally:
            for task in [*tasks, stopper, *([on_trial] if on_trial is not None else [])]:
                task.cancel()
            if self.updater is not None:
                await self.updater.close()
            results = await asyncio.gather(*tasks, stopper, return_exceptions=True)
            if on_trial is not None:
                await asyncio.gather(on_trial, return_exceptions=True)
            await self.devices.close()
            await self.buffer.close()
        for result in results:
            if isinstance(result, Exception):
                raise result
        if self._restart_requested.is_set():
            raise RestartRequestedError(f"gateway {self.settings.gateway_id} stopped to restart, as the fleet asked")
        logger.info("gateway %s stopped", self.settings.gateway_id)

    def _prove_update(self) -> "asyncio.Task[None] | None":
        """The health gate of this agent, when it runs on trial after an update (else None)."""
        trial = self.updater.trial_here() if self.updater is not None else None
        if self.updater is None or trial is None:
            return None
        signals = GateSignals(
            connected=self.uplink.connected,
            heartbeat_delivered=self.heartbeat_delivered,
            adapters=lambda: self.devices.states(self.rules.offline_devices),
            buffer_depth=lambda: self.buffer.depth,
        )
        task = asyncio.create_task(self.updater.prove(trial, signals), name="update-trial")
        task.add_done_callback(_log_failure)
        return task

    def _start_devices(self) -> None:
        try:
            self.devices.start(self.config.devices)
        except EdgeConfigError as exc:
            if self.config_updates.applied.version == 0:
                raise
            logger.error(
                "the devices of config version %d cannot be built (%s); starting with the settings' devices",
                self.config_updates.applied.version,
                exc,
            )
            self.config_updates.fall_back(self.settings.config)
            self.devices.start(self.config.devices)
        self.rules.use_devices(self.devices.specs, list(self.devices.sirens.values()))
        self.snapshots.set_policy(self.config.snapshots)

    def _on_downlink(self, topic: str, payload: bytes) -> None:
        decoded = self._decoder.decode(topic, payload)
        if isinstance(decoded, Rejection):
            self.config_updates.refuse_if_config(topic, decoded, payload)
            return
        match decoded.message:
            case ConfigDesired():
                self.config_updates.offer(decoded.message)
            case Command():
                task = asyncio.get_running_loop().create_task(self._answer(decoded.message))
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
            case other:
                logger.warning("downlink %s on %s is not handled", type(other).__name__, decoded.topic)

    async def _answer(self, command: Command) -> None:
        for message in await self.commands.handle(command):
            self._store(message)

    async def _apply_config(self, config: GatewayConfig) -> None:
        await self.devices.apply(config.devices, self._probation_s)
        self.rules.use_devices(self.devices.specs, list(self.devices.sirens.values()))
        await asyncio.to_thread(self.snapshots.set_policy, config.snapshots)

    async def _purge_snapshots(self) -> None:
        while True:
            removed = await asyncio.to_thread(self.snapshots.purge)
            if removed:
                logger.info("%d expired snapshots removed", removed)
            await asyncio.sleep(SNAPSHOT_PURGE_INTERVAL_S)

    def _report_config(self, version: int, status: ConfigStatus, error: str | None) -> None:
        self._store(ConfigReported(**self.stamper.stamp(), version=version, status=status, error=error))

    async def _heartbeats(self) -> None:
        while True:
            await self.uplink.connected.wait()
            interval = self.config.heartbeat_interval_s
            heartbeat = Heartbeat(**self.stamper.stamp(), interval_s=interval, health=self.health())
            sent = time.monotonic()
            self._heartbeat_now.clear()
            if await self.uplink.send_now(outgoing(self.settings.village_id, self.settings.gateway_id, heartbeat)):
                self._rtt_ms = round((time.monotonic() - sent) * 1000, 1)
                self.heartbeat_delivered.set()
            with contextlib.suppress(TimeoutError):  # an update's new state goes out at once
                async with asyncio.timeout(interval):
                    await self._heartbeat_now.wait()

    def health(self) -> GatewayHealth:
        """The gateway's vital signs plus the agent's own: buffer, drops, uplink RTT, each adapter's state, and
        the firmware version each sensor node last reported. ``dropped`` also carries the store and uplink
        failures and recoveries since start (:mod:`edge.faults` names them)."""
        dropped = {channel.value: count for channel, count in self.buffer.dropped.items()}
        if self.telemetry.skipped_non_finite:
            dropped["non_finite"] = self.telemetry.skipped_non_finite
        dropped.update(self.faults.counts)
        adapters = self.devices.states(self.rules.offline_devices)
        return GatewayHealth(
            **self._health.read(),
            uplink_rtt_ms=self._rtt_ms,
            buffer_depth=self.buffer.depth,
            buffer_bytes=self.buffer.size_bytes,
            dropped=dropped,
            adapters=adapters,
            device_firmware=self.devices.firmware(),
            cameras=self.devices.camera_health(),
            update=self.updater.report if self.updater is not None else None,
        )

    async def _telemetry_flushes(self) -> None:
        while True:
            await asyncio.sleep(self.config.telemetry_interval_s)
            self._flush_telemetry()

    def _flush_telemetry(self) -> None:
        for batch in self.telemetry.drain():
            self._store(batch)

    def _store(self, message: Message) -> None:
        """Hand ``message`` to the buffer; it is published once it is on disk. An alert the buffer cannot
        store goes to the uplink's memory instead (the buffer counts and reports the failure)."""
        item = outgoing(self.settings.village_id, self.settings.gateway_id, message)
        durable = self.buffer.submit(item)
        durable.add_done_callback(partial(self._check_stored, item))

    def _check_stored(self, item: Outgoing, durable: "asyncio.Future[None]") -> None:
        if durable.cancelled() or durable.exception() is None:
            return
        if item.channel is Channel.ALERT:
            self.uplink.unbuffered.add(item)
            logger.error("an alert could not be buffered (%s): it waits in memory for the uplink", durable.exception())
        else:
            logger.debug("a %s message could not be buffered: %s", item.channel, durable.exception())

    def _free_room(self) -> int:
        """Room for the buffer on a full disk: the oldest snapshots go (runs on the buffer's thread)."""
        return self.snapshots.evict_oldest(4)


def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the update's health gate failed to run", exc_info=task.exception())


async def _first_set(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
