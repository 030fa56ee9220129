"""Ingest's lanes: one consumer on its own MQTT session per lane (:mod:`fleet.ingest.subscriptions`).

``fleet run`` takes the alerts and control lanes, and the bulk lane too unless standalone workers take it
all (``ingest.in_process``); a standalone worker takes the bulk lane alone. The lanes share the decoder
(its rejection counts), the router, the time-series writer and the dead letters; nothing else, so an
alert never waits for another lane's acknowledgements, back-pressure or storage.
"""

import asyncio
from collections.abc import Iterator, Sequence

from fleet.ingest.consumer import IngestConsumer
from fleet.ingest.dead_letters import DeadLetters
from fleet.ingest.router import IngestRouter
from fleet.ingest.subscriptions import Lane, lane_subscriptions
from fleet.mqtt.ingest_session import IngestSession
from fleet.settings import FleetSettings
from fleet.timeseries.writer import BatchingWriter
from protocol.codec import Decoder


class IngestLanes:
    def __init__(self, consumers: Sequence[IngestConsumer]) -> None:
        if not consumers:
            raise ValueError("ingest needs at least one lane")
        self._consumers = {consumer.lane: consumer for consumer in consumers}
        self.decoder = consumers[0].decoder

    @classmethod
    def from_settings(
        cls,
        settings: FleetSettings,
        client_ids: dict[Lane, str],
        router: IngestRouter,
        writer: BatchingWriter,
        dead_letters: DeadLetters,
    ) -> "IngestLanes":
        """A consumer per lane in ``client_ids``, each on its own persistent session with that client id."""
        ingest = settings.ingest
        decoder = Decoder(settings.max_payload_bytes)
        consumers = [
            IngestConsumer(
                IngestSession(
                    settings.broker,
                    client_id,
                    lane_subscriptions(lane, ingest.share_group),
                    receive_maximum=ingest.receive_maximum,
                    session_expiry_s=ingest.session_expiry_s,
                ),
                decoder,
                router,
                writer,
                dead_letters,
                lane=lane,
                hold_bound_s=ingest.hold_bound_s,
                lag_log_interval_s=ingest.lag_log_interval_s,
            )
            for lane, client_id in client_ids.items()
        ]
        return cls(consumers)

    def __iter__(self) -> Iterator[IngestConsumer]:
        return iter(self._consumers.values())

    def __getitem__(self, lane: Lane) -> IngestConsumer:
        return self._consumers[lane]

    @property
    def connected(self) -> bool:
        """Whether every lane's session is up."""
        return all(consumer.connected.is_set() for consumer in self)

    async def drain(self, timeout_s: float) -> None:
        """Take no more messages on any lane and wait (at most ``timeout_s``: the lanes drain together) for those
        taken."""
        await asyncio.gather(*(consumer.drain(timeout_s) for consumer in self))
