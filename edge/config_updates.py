"""Applies the configuration the fleet pushes (the retained ``config/desired``), and reports the outcome.

Each desired config is validated against the strict model (by the decoder), applied live (devices
by difference, intervals at once, rules re-pointed), and reported on ``config/reported``: the
version now running, or the version refused and why. A config that fails to apply is rolled back
to the last good one. The applied config is kept on disk, so a restarted gateway runs what the fleet
last gave it rather than its initial settings. Only the newest version matters: an older one (a
stale retained message) is ignored, the same one again is re-reported, and updates arriving while
one is being applied are coalesced to the latest.

When the gateway holds the fleet's config-signing key (:mod:`edge.config_signature`), a config runs
only with a signature that verifies: an unsigned or wrongly signed one is reported rejected and never
applied. The signature is kept on disk with the config and checked again at the next start, so a
config altered on disk is not run (the settings' config runs instead, as when it cannot be built).

A signed config older than the highest version the gateway ever accepted is refused as a rollback, even when
the applied config was lost: that version is kept apart (:mod:`edge.config_floor`).
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.config_floor import ConfigVersionFloor
from edge.config_signature import ConfigSignatures
from edge.durable_file import replace_durably
from edge.errors import ConfigApplyError, EdgeConfigError
from protocol.codec import Rejection
from protocol.errors import TopicError
from protocol.gateway_config import GatewayConfig
from protocol.messages import ConfigDesired, ConfigStatus
from protocol.topics import Channel, GatewayTopic

logger = logging.getLogger(__name__)

_ERROR_CHARS: Final = 256


class AppliedConfig(BaseModel):
    """What the gateway runs, as kept on its disk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=0)
    config: GatewayConfig
    signature: str | None = Field(default=None, max_length=128, description="The fleet's, checked again at start.")
    key_id: str | None = Field(default=None, max_length=64)


Apply = Callable[[GatewayConfig], Awaitable[None]]
"""Runs a config: raises ConfigApplyError (after rolling back) when it cannot."""
Report = Callable[[int, ConfigStatus, str | None], None]


class ConfigUpdates:
    def __init__(
        self,
        path: Path,
        initial: GatewayConfig,
        apply: Apply,
        report: Report,
        signatures: ConfigSignatures,
        floor: ConfigVersionFloor,
    ) -> None:
        self._path = path
        self._apply = apply
        self._report = report
        self._signatures = signatures
        self._floor = floor
        self.applied = self._load() or AppliedConfig(version=0, config=initial)
        if self.applied.version > floor.version:  # kept before the floor existed
            floor.raise_to(self.applied.version)
        self._latest: ConfigDesired | None = None
        self._wake = asyncio.Event()

    def offer(self, desired: ConfigDesired) -> None:
        """Queue ``desired`` (replacing any not yet applied); :meth:`run` applies it."""
        self._latest = desired
        self._wake.set()

    def fall_back(self, initial: GatewayConfig) -> None:
        """Run ``initial`` as version 0, so the fleet's desired config is applied afresh when it arrives."""
        self.applied = AppliedConfig(version=0, config=initial)

    def refuse_if_config(self, topic: str, rejection: Rejection, payload: bytes) -> None:
        """A downlink message the decoder refused: if it came on the config channel, report the refusal."""
        try:
            refused_config = GatewayTopic.parse(topic).channel is Channel.CONFIG_DESIRED
        except TopicError:
            refused_config = False
        if refused_config:
            self.refuse(rejection, payload)

    def refuse(self, rejection: Rejection, payload: bytes) -> None:
        """Report a desired config the decoder refused, under its version if it names one."""
        version = _version_of(payload)
        if version is None:
            logger.error("a pushed config without a readable version was refused: %s", rejection.detail)
            return
        if version < max(self.applied.version, self._floor.version):
            logger.info("a refused config names version %d, older than the running %d; ignored", version,
                        self.applied.version)  # fmt: skip
            return
        self._report(version, ConfigStatus.REJECTED, f"invalid: {rejection.detail}"[:_ERROR_CHARS])

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            desired, self._latest = self._latest, None
            if desired is not None:
                await self._update(desired)

    async def _update(self, desired: ConfigDesired) -> None:
        current = self.applied
        if desired.version < current.version:
            logger.info("config version %d is older than the running %d; ignored", desired.version, current.version)
            return
        refusal = self._signatures.refusal(desired.version, desired.config, desired.signature, desired.key_id)
        if refusal is None and desired.version < self._floor.version:
            refusal = f"rollback refused: this gateway already ran version {self._floor.version}"
        if refusal is not None:
            logger.error("config version %d refused: %s", desired.version, refusal)
            self._report(desired.version, ConfigStatus.REJECTED, refusal[:_ERROR_CHARS])
            return
        try:  # before it runs: no way back after, and the keys it revokes are never trusted again
            await asyncio.to_thread(self._floor.raise_to, desired.version)
            await asyncio.to_thread(self._signatures.revoked.add, desired.config.revoked_signing_keys)
        except OSError as exc:
            logger.error("config version %d refused: cannot keep what it settles: %s", desired.version, exc)
            self._report(desired.version, ConfigStatus.REJECTED, f"cannot keep what it settles: {exc}"[:_ERROR_CHARS])
            return
        applied = AppliedConfig(
            version=desired.version, config=desired.config, signature=desired.signature, key_id=desired.key_id
        )
        if desired.version == current.version and desired.config == current.config:
            if applied != current:  # signed again (a key rotation): keep the signature that verifies now
                self.applied = applied
                await self._keep(applied)
            self._report(desired.version, ConfigStatus.APPLIED, None)
            return
        try:
            await self._apply(desired.config)
        except (ConfigApplyError, EdgeConfigError) as exc:
            logger.error("config version %d refused: %s", desired.version, exc)
            self._report(desired.version, ConfigStatus.REJECTED, str(exc)[:_ERROR_CHARS])
            return
        self.applied = applied
        await self._keep(applied)
        logger.info("config version %d applied", desired.version)
        self._report(desired.version, ConfigStatus.APPLIED, None)

    async def _keep(self, applied: AppliedConfig) -> None:
        try:
            await asyncio.to_thread(self._save, applied)
        except OSError as exc:  # it runs all the same; a restart would run the previous one
            logger.error("config version %d runs but could not be kept in %s: %s", applied.version, self._path, exc)

    def _load(self) -> AppliedConfig | None:
        try:
            content = self._path.read_bytes()  # decoded by the validator: bad UTF-8 is unreadable, not a crash
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise EdgeConfigError(f"cannot read the applied config {self._path}: {exc}") from exc
        try:
            applied = AppliedConfig.model_validate_json(content)
        except ValidationError as exc:
            logger.error("the applied config in %s is unreadable (%s); starting from the settings", self._path, exc)
            return None
        refusal = self._signatures.refusal(applied.version, applied.config, applied.signature, applied.key_id)
        if refusal is not None:
            logger.error(
                "the applied config version %d in %s is not run: %s; starting from the settings",
                applied.version,
                self._path,
                refusal,
            )
            return None
        logger.info("running config version %d, as the fleet last pushed it", applied.version)
        return applied

    def _save(self, applied: AppliedConfig) -> None:
        replace_durably(self._path, applied.model_dump_json())


def _version_of(payload: bytes) -> int | None:
    try:
        value = json.loads(payload).get("version")
    except (ValueError, AttributeError, RecursionError):  # RecursionError: deeply nested arrays or objects
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
