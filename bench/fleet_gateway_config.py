"""A simulated gateway's config path, with the agent's own code: decode, check the signature, apply, report.

What :class:`~edge.agent.GatewayAgent` does with a message on its ``config/desired`` topic, minus the
devices: the same :class:`~protocol.codec.Decoder` validates it against the strict models (a refused
one is reported ``rejected`` under its version), the same :class:`~edge.config_updates.ConfigUpdates`
checks the fleet's Ed25519 signature with :class:`~edge.config_signature.ConfigSignatures` (the
gateway's village, id and the version bound in), ignores stale versions, coalesces updates, keeps the
applied config on disk (written and fsynced) and reports the outcome, which is published here as a
retained :class:`~protocol.messages.ConfigReported` at QoS 1, as the agent's uplink sends it.

Applying is the one thing simulated: a simulated gateway has no devices to start, so applying a
config is keeping it. The agent's report goes through its store-and-forward buffer first; this one is
published at once. Each outcome is noted with the wall-clock times (UTC epoch ms) the desired config
arrived and the report was acknowledged by the broker, for the bench to read back.
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.config_floor import ConfigVersionFloor
from edge.config_signature import ConfigSignatures
from edge.config_updates import ConfigUpdates
from protocol.clock import utc_now_ms
from protocol.codec import Decoder, Rejection
from protocol.gateway_config import GatewayConfig
from protocol.messages import ConfigDesired, ConfigReported, ConfigStatus

logger = logging.getLogger(__name__)

Publish = Callable[[ConfigReported], Awaitable[None]]
"""Publishes a report retained at QoS 1 and returns once the broker acknowledged it; a failure is the
caller's to handle (the simulator ends at once)."""


@dataclass(frozen=True, slots=True)
class ConfigOutcome:
    """One report a gateway sent: the version, applied or rejected, when that version arrived (None if
    it never did, e.g. a refused payload without a readable version) and when the broker took the report."""

    version: int
    status: ConfigStatus
    received_ms: int | None
    reported_ms: int

    def as_json(self) -> list[object]:
        return [self.version, self.status.value, self.received_ms, self.reported_ms]


class GatewayConfigFollower:
    """Runs the configs the fleet pushes to one simulated gateway (see the module docstring)."""

    def __init__(
        self,
        village_id: str,
        gateway_id: str,
        *,
        initial: GatewayConfig,
        signing_keys: list[Ed25519PublicKey],
        state_file: Path,
        decoder: Decoder,
        next_seq: Callable[[], int],
        publish: Publish,
    ) -> None:
        self._gateway_id = gateway_id
        self._decoder = decoder
        self._next_seq = next_seq
        self._publish = publish
        self.config = initial
        signatures = ConfigSignatures(village_id, gateway_id, signing_keys)
        floor = ConfigVersionFloor(state_file.with_name(f"{state_file.stem}-floor.json"))
        self.updates = ConfigUpdates(state_file, initial, self._apply, self._report, signatures, floor)
        self._received_ms: dict[int, int] = {}
        self._reporting: set[asyncio.Task[None]] = set()
        self.outcomes: list[ConfigOutcome] = []

    def on_downlink(self, topic: str, payload: bytes) -> None:
        """The agent's ``_on_downlink`` for the config channel (commands are not simulated: ignored)."""
        decoded = self._decoder.decode(topic, payload)
        if isinstance(decoded, Rejection):
            self.updates.refuse_if_config(topic, decoded, payload)
            return
        if isinstance(decoded.message, ConfigDesired):
            self._received_ms[decoded.message.version] = utc_now_ms()
            self.updates.offer(decoded.message)

    async def _apply(self, config: GatewayConfig) -> None:
        self.config = config  # no devices to start: running a config is keeping it

    def _report(self, version: int, status: ConfigStatus, error: str | None) -> None:
        report = ConfigReported(
            gateway_id=self._gateway_id, seq=self._next_seq(), event_id=uuid.uuid4(), ts=utc_now_ms(),
            version=version, status=status, error=error,
        )  # fmt: skip
        task = asyncio.get_running_loop().create_task(self._send(report, self._received_ms.get(version)))
        self._reporting.add(task)
        task.add_done_callback(self._reporting.discard)

    async def _send(self, report: ConfigReported, received_ms: int | None) -> None:
        await self._publish(report)
        self.outcomes.append(ConfigOutcome(report.version, report.status, received_ms, utc_now_ms()))
        if report.status is ConfigStatus.REJECTED:
            logger.error("gateway %s rejected config version %d: %s", report.gateway_id, report.version, report.error)

    def take_outcomes(self) -> list[ConfigOutcome]:
        """The outcomes since the last call."""
        taken, self.outcomes = self.outcomes, []
        return taken
