"""The gateway's running devices: an input adapter task per device, and the sirens, rebuilt when the config changes.

A new device list is applied by difference: devices whose declaration is unchanged keep running
without a gap; changed and removed ones are stopped (their pins released) before the new ones are
built. If building fails, or a new adapter fails within its probation, the previous devices are
rebuilt and :class:`~edge.errors.ConfigApplyError` says why: the gateway never stays half-configured.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence

from edge.adapters.actuators import Actuator
from edge.adapters.base import DeviceAdapter, Emit, ReportsCameraHealth, ReportsFirmware
from edge.errors import ConfigApplyError, EdgeConfigError
from edge.supervisor import supervise
from protocol.gateway_config import DeviceKind, DeviceSpec
from protocol.identifiers import is_firmware_version
from protocol.messages import AdapterState, CameraHealth

logger = logging.getLogger(__name__)

DeviceBuilder = Callable[[Sequence[DeviceSpec]], tuple[list[DeviceAdapter], list[Actuator]]]
"""Builds the adapters (inputs) and actuators (sirens) for device declarations; EdgeConfigError if it cannot."""


def prebuilt(adapters: Sequence[DeviceAdapter], sirens: Sequence[Actuator] = ()) -> DeviceBuilder:
    """A builder serving devices built elsewhere (simulators, tests); it cannot build any other device."""
    available = [adapter.spec for adapter in adapters] + [siren.spec for siren in sirens]

    def build(specs: Sequence[DeviceSpec]) -> tuple[list[DeviceAdapter], list[Actuator]]:
        missing = [spec.id for spec in specs if spec not in available]
        if missing:
            raise EdgeConfigError(f"this gateway's devices are fixed; it cannot build {', '.join(missing)}")
        return (
            [adapter for adapter in adapters if adapter.spec in specs],
            [siren for siren in sirens if siren.spec in specs],
        )

    return build


class DeviceRunner:
    def __init__(self, build: DeviceBuilder, emit: Emit) -> None:
        self._build = build
        self._emit = emit
        self.specs: list[DeviceSpec] = []
        self.adapters: dict[str, DeviceAdapter] = {}
        self.sirens: dict[str, Actuator] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._restarting: set[str] = set()
        self._failures: dict[str, BaseException] = {}

    def start(self, specs: Sequence[DeviceSpec]) -> None:
        """Build and start ``specs``; raises EdgeConfigError if they cannot be built."""
        self._add(list(specs))
        self.specs = list(specs)

    async def apply(self, specs: Sequence[DeviceSpec], probation_s: float) -> None:
        """Run ``specs`` instead of the current devices, or roll back and raise ConfigApplyError."""
        previous = self.specs
        keep = [spec for spec in specs if spec in previous]
        stop = [spec for spec in previous if spec not in keep]
        start = [spec for spec in specs if spec not in keep]
        if not stop and not start:
            self.specs = list(specs)
            return
        await self._remove(stop)
        try:
            self._add(start)
            await self._probation(start, probation_s)
        except EdgeConfigError as exc:
            await self._remove([spec for spec in start if spec.id in self.adapters or spec.id in self.sirens])
            try:
                self._add(stop)  # they ran before this change
            except EdgeConfigError as rebuild:
                self.specs = keep
                raise ConfigApplyError(
                    f"not applied ({exc}); the previous devices could not be rebuilt either ({rebuild}): "
                    "only the unchanged devices run"
                ) from exc
            raise ConfigApplyError(f"rolled back: {exc}") from exc
        self.specs = list(specs)
        logger.info("devices applied: %d kept, %d stopped, %d started", len(keep), len(stop), len(start))

    def states(self, offline: set[str]) -> dict[str, AdapterState]:
        return {
            device_id: AdapterState.RESTARTING
            if device_id in self._restarting
            else AdapterState.OFFLINE
            if device_id in offline
            else AdapterState.RUNNING
            for device_id in self.adapters
        }

    def firmware(self) -> dict[str, str]:
        """The firmware version of every device whose adapter knows one (:class:`ReportsFirmware`), by device id."""
        return {
            device_id: version
            for device_id, adapter in self.adapters.items()
            if isinstance(adapter, ReportsFirmware)
            and (version := adapter.firmware) is not None
            and is_firmware_version(version)  # one odd adapter must never make the heartbeat invalid
        }

    def camera_health(self) -> dict[str, CameraHealth]:
        """Each camera's frames, errors and last frame (:class:`ReportsCameraHealth`), by device id."""
        return {
            device_id: adapter.health()
            for device_id, adapter in self.adapters.items()
            if isinstance(adapter, ReportsCameraHealth)
        }

    async def close(self) -> None:
        await self._remove(self.specs)

    def _add(self, specs: list[DeviceSpec]) -> None:
        adapters, sirens = self._build(specs)
        for siren in sirens:
            self.sirens[siren.spec.id] = siren
        for adapter in adapters:
            device_id = adapter.spec.id
            self.adapters[device_id] = adapter
            self._failures.pop(device_id, None)
            self._tasks[device_id] = asyncio.create_task(self._supervised(adapter), name=f"adapter-{device_id}")

    async def _remove(self, specs: list[DeviceSpec]) -> None:
        tasks = [task for spec in specs if (task := self._tasks.pop(spec.id, None)) is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for spec in specs:
            self.adapters.pop(spec.id, None)
            self._restarting.discard(spec.id)
            siren = self.sirens.pop(spec.id, None)
            if siren is not None:
                await siren.close()

    async def _probation(self, started: list[DeviceSpec], probation_s: float) -> None:
        inputs = [spec.id for spec in started if spec.kind is not DeviceKind.SIREN]
        if not inputs:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + probation_s
        while True:
            failed = {device: self._failures[device] for device in inputs if device in self._failures}
            if failed:
                device, exc = next(iter(failed.items()))
                raise EdgeConfigError(f"device {device} failed on start: {exc}")
            if loop.time() >= deadline:
                return
            await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))

    async def _supervised(self, adapter: DeviceAdapter) -> None:
        device_id = adapter.spec.id

        async def body() -> None:
            await adapter.run(self._emit)

        def failed(exc: BaseException) -> None:
            self._restarting.add(device_id)
            self._failures[device_id] = exc

        await supervise(
            f"adapter {device_id}", body, on_failure=failed, on_start=lambda: self._restarting.discard(device_id)
        )
