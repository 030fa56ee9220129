"""Publishes desired configs the broker has not taken yet: signed, retained, QoS 1, many at once.

Runs as a task of the fleet service. At start it reconciles every gateway with the layers (anything
changed while the fleet was down) and publishes whatever is unpublished, so nothing accepted before a
crash or a broker outage is lost. Then it waits for a change (:attr:`ConfigPush.changed`), and
reconciles again every ``reconcile_interval_s``.

A pass reads unpublished rows in batches (one query each), signs them, publishes a batch with up to
``publish_concurrency`` publishes awaiting their PUBACK at once, and marks the acknowledged ones in one
statement. A publish that fails ends the pass (the broker is likely gone); the pass is retried with
backoff until everything is out. A config is marked published only after its PUBACK: a crash in
between publishes it again, which the gateway takes as the same version (re-reported, not re-applied).

A gateway moved to another village or removed while its config was in flight: the inventory erased the
retained config on its old topic, but the publish may have landed after that. So once a batch is
acknowledged, every config whose gateway's desired config is no longer for the village it was published
in is erased again from that topic.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.configs.desired import Published, Unpublished, mark_published, unpublished
from fleet.configs.push import ConfigPush
from fleet.db.engine import database_errors
from fleet.db.in_lists import in_chunks
from fleet.db.schema import GatewayConfigRow
from fleet.errors import DownlinkUnavailableError, TransientError
from fleet.mqtt.downlink import Downlink
from fleet.settings import ConfigPushSettings
from protocol.gateway_config import GatewayConfig
from protocol.messages import ConfigDesired
from protocol.reconnect import Backoff

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class PassOutcome:
    published: int = 0
    failed: int = 0


class ConfigPublisher:
    def __init__(
        self,
        push: ConfigPush,
        sessions: async_sessionmaker[AsyncSession],
        downlink: Downlink,
        settings: ConfigPushSettings,
        clock: Callable[[], int],
    ) -> None:
        self._push = push
        self._sessions = sessions
        self._downlink = downlink
        self._settings = settings
        self._clock = clock
        self.published = 0
        self.failed = 0
        self.passes = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = Backoff(base_s=0.5, cap_s=5.0)
        await self._push.reconcile()
        next_reconcile = loop.time() + self._settings.reconcile_interval_s
        while True:
            self._push.changed.clear()
            try:
                outcome = await self.publish_pending()
                complete = outcome.failed == 0
            except TransientError as exc:  # the database did not answer: try again shortly
                logger.warning("publishing desired configs stalled: %s", exc)
                complete = False
            if complete:
                backoff.reset()
                wait = next_reconcile - loop.time()
            else:
                wait = min(backoff.next_delay(), max(0.0, next_reconcile - loop.time()))
            try:
                async with asyncio.timeout(max(0.0, wait)):
                    await self._push.changed.wait()
            except TimeoutError:
                pass
            if loop.time() >= next_reconcile:
                await self._push.reconcile()
                next_reconcile = loop.time() + self._settings.reconcile_interval_s

    async def publish_pending(self) -> PassOutcome:
        """Publish every desired config the broker has not taken; stop at the first batch with a failure."""
        self.passes += 1
        outcome = PassOutcome()
        after = ""
        while True:
            with database_errors("read the unpublished desired configs"):
                async with self._sessions() as session:
                    batch = await unpublished(session, after, self._settings.batch_size)
            if not batch:
                return outcome
            if not self._downlink.connected:  # each publish would only wait out its timeout
                outcome.failed += len(batch)
                return outcome
            sent = await self._publish(batch)
            with database_errors("mark desired configs published"):
                async with self._sessions.begin() as session:
                    await mark_published(session, sent, self._clock())
            await self._erase_where_moved(sent)
            outcome.published += len(sent)
            outcome.failed += len(batch) - len(sent)
            if len(sent) < len(batch):
                logger.warning(
                    "%d desired configs not taken by the broker; retrying (%d published this pass)",
                    len(batch) - len(sent),
                    outcome.published,
                )
                return outcome
            after = batch[-1].gateway_id

    async def _publish(self, batch: Sequence[Unpublished]) -> list[Published]:
        slots = asyncio.Semaphore(self._settings.publish_concurrency)

        async def one(item: Unpublished) -> Published | None:
            async with slots:
                return await self._publish_one(item)

        results = await asyncio.gather(*(one(item) for item in batch))
        return [result for result in results if result is not None]

    async def _publish_one(self, item: Unpublished) -> Published | None:
        config = GatewayConfig.model_validate(item.config)
        signature = self._push.signer.sign(item.village_id, item.gateway_id, item.version, config)
        message = ConfigDesired(
            gateway_id=item.gateway_id,
            seq=item.version,
            event_id=uuid.uuid4(),
            ts=self._clock(),
            version=item.version,
            config=config,
            signature=signature,
            key_id=self._push.signer.key_id,
        )
        try:
            await self._downlink.publish(item.village_id, message, timeout_s=self._settings.publish_timeout_s)
        except DownlinkUnavailableError as exc:
            self.failed += 1
            logger.debug("config version %d for %s not published: %s", item.version, item.gateway_id, exc)
            return None
        self.published += 1
        return Published(item.gateway_id, item.village_id, item.version, signature, self._push.signer.key_id)

    async def _erase_where_moved(self, sent: Sequence[Published]) -> None:
        """Erase what was just published for a village its gateway has left meanwhile (see the module)."""
        villages: dict[str, str | None] = {}
        for chunk in in_chunks([item.gateway_id for item in sent]):
            query = select(GatewayConfigRow.gateway_id, GatewayConfigRow.village_id).where(
                GatewayConfigRow.gateway_id.in_(chunk)
            )
            with database_errors("read where the published configs' gateways are"):
                async with self._sessions() as session:
                    villages.update((gateway, village) for gateway, village in (await session.execute(query)).all())
        for item in sent:
            if villages.get(item.gateway_id) == item.village_id:
                continue
            try:
                await self._push.erase_retained(item.village_id, item.gateway_id)
            except DownlinkUnavailableError as exc:
                logger.warning(
                    "gateway %s left %s while its config was published there, and it could not be erased: %s",
                    item.gateway_id,
                    item.village_id,
                    exc,
                )
