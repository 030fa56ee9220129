"""Decides whether each gateway is online, from presence messages, the Last Will and heartbeat silence.

Pure logic with the clock passed in: it returns the transitions for the registry to store.
A gateway is offline when it says so (clean shutdown), when the broker publishes its Last Will
(connection lost), or when it has been silent for ``missed_heartbeats`` heartbeat intervals.

Traffic sent longer ago than that timeout proves nothing about now, so it brings no offline
gateway online. That is what the fleet's persistent session hands a restarted fleet first: what the
broker queued while the fleet was down, e.g. the heartbeats of a gateway that died meanwhile, ahead
of its Last Will. Only the transition to online is judged by the message's own time; an online
gateway's deadline runs from arrival, so a gateway whose clock is off by more than the timeout stays
online while it talks (its ``online`` presence, retained and undated by design, still brings it online).
"""

from dataclasses import dataclass
from enum import StrEnum


class OfflineReason(StrEnum):
    SHUTDOWN = "shutdown"
    LOST = "lost"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"


@dataclass(frozen=True, slots=True)
class Transition:
    gateway_id: str
    village_id: str
    online: bool
    reason: str
    at_ms: int


@dataclass(slots=True)
class _Gateway:
    village_id: str
    online: bool
    interval_s: float
    deadline_ms: int
    presence_seq: int = -1  # sequence number of the newest presence message applied
    heard_ms: int | None = None  # when traffic from it last arrived


class PresenceTracker:
    def __init__(self, missed_heartbeats: float, default_interval_s: float) -> None:
        self._missed = missed_heartbeats
        self._default_interval_s = default_interval_s
        self._gateways: dict[str, _Gateway] = {}

    def _deadline(self, now_ms: int, interval_s: float) -> int:
        return now_ms + round(self._missed * interval_s * 1000)

    def is_online(self, gateway_id: str) -> bool:
        state = self._gateways.get(gateway_id)
        return state is not None and state.online

    def heard(self, gateway_id: str) -> tuple[int, float] | None:
        """When the gateway was last heard from, and its heartbeat interval; None if never since start."""
        state = self._gateways.get(gateway_id)
        if state is None or state.heard_ms is None:
            return None
        return state.heard_ms, state.interval_s

    @property
    def online_count(self) -> int:
        return sum(1 for state in self._gateways.values() if state.online)

    def seen(
        self,
        gateway_id: str,
        village_id: str,
        now_ms: int,
        interval_s: float | None = None,
        *,
        sent_ms: int | None = None,
    ) -> Transition | None:
        """Any traffic from a gateway proves it alive; a heartbeat also tells its interval.

        ``sent_ms`` is when the gateway sent it (the message's ``ts``): traffic older than the
        heartbeat timeout when it arrives brings no offline gateway online (see the module's docstring).
        """
        state = self._gateways.get(gateway_id)
        if sent_ms is not None and (state is None or not state.online):
            known_interval = state.interval_s if state is not None else self._default_interval_s
            if now_ms >= self._deadline(sent_ms, interval_s or known_interval):
                return None
        if state is None:
            state = _Gateway(village_id, False, interval_s or self._default_interval_s, 0)
            self._gateways[gateway_id] = state
        if interval_s is not None:
            state.interval_s = interval_s
        state.deadline_ms = self._deadline(now_ms, state.interval_s)
        state.heard_ms = now_ms
        if state.online:
            return None
        state.online = True
        return Transition(gateway_id, village_id, True, "connected", now_ms)

    def announced_online(self, gateway_id: str, village_id: str, seq: int, now_ms: int) -> Transition | None:
        """The gateway's own (retained) ``online`` presence."""
        if self._stale(gateway_id, seq):
            return None
        transition = self.seen(gateway_id, village_id, now_ms)
        self._gateways[gateway_id].presence_seq = seq
        return transition

    def went_offline(
        self, gateway_id: str, village_id: str, reason: OfflineReason, seq: int, now_ms: int
    ) -> Transition | None:
        """The gateway said goodbye, or the broker published its Last Will.

        A gateway stamps a session's ``online`` message, then its Last Will, then connects; so a
        session's Will carries a higher sequence number than its own ``online`` and a lower one
        than the next session's. A Will of an older session arriving late is therefore ignored.
        """
        if self._stale(gateway_id, seq):
            return None
        state = self._gateways.get(gateway_id)
        if state is None:
            self._gateways[gateway_id] = _Gateway(village_id, False, self._default_interval_s, 0, seq)
            return Transition(gateway_id, village_id, False, reason, now_ms)
        state.presence_seq = seq
        if not state.online:
            return None
        state.online = False
        return Transition(gateway_id, village_id, False, reason, now_ms)

    def _stale(self, gateway_id: str, seq: int) -> bool:
        state = self._gateways.get(gateway_id)
        return state is not None and seq < state.presence_seq

    def expire(self, now_ms: int) -> list[Transition]:
        """Every online gateway whose heartbeat deadline has passed goes offline."""
        expired = []
        for gateway_id, state in self._gateways.items():
            if state.online and now_ms >= state.deadline_ms:
                state.online = False
                expired.append(Transition(gateway_id, state.village_id, False, OfflineReason.HEARTBEAT_TIMEOUT, now_ms))
        return expired
