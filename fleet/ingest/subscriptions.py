"""Which uplink channels an ingest process subscribes to, and how.

Bulk channels (telemetry, event) carry nearly all the volume and need nothing but storage: they are
subscribed through a shared subscription (``$share/{group}/…``) so that every ingest worker in the
group takes a share, each message going to one of them. Control channels (presence, heartbeat,
alert, config/reported, command/response) stay with one process, ``fleet run``: presence by silence
needs every heartbeat of a gateway in one tracker, presence is retained (a shared subscription gets no
retained messages) and alerts wake the case delivery running there.
"""

from typing import Final

from protocol.topics import Channel, Direction, fleet_filter, shared_filter

BULK_CHANNELS: Final = (Channel.TELEMETRY, Channel.EVENT)
CONTROL_CHANNELS: Final = tuple(
    channel for channel in Channel if channel.direction is Direction.UPLINK and channel not in BULK_CHANNELS
)


def ingest_filters(share_group: str | None, *, control: bool, bulk: bool) -> list[str]:
    """The filters to subscribe to: the control channels (plain) and/or the bulk ones (shared if a group is set)."""
    filters = [fleet_filter(channel) for channel in CONTROL_CHANNELS] if control else []
    if bulk:
        for channel in BULK_CHANNELS:
            plain = fleet_filter(channel)
            filters.append(plain if share_group is None else shared_filter(share_group, plain))
    return filters


def worker_client_id(base: str, index: int) -> str:
    """A standalone worker's client id: stable per index, so a restarted worker resumes its own session."""
    return f"{base}-ingest-{index}"
