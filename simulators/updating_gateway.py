"""A light simulated gateway that takes agent updates: the real protocol over a real MQTT connection, the install
simulated.

It does what the agent does on the paths a job uses: connects with its own client id and a retained Last Will,
announces itself online with its agent version (retained presence), subscribes to its downlink, heartbeats every
``interval_s`` with its update report in ``health.update`` (and at once when that changes), answers commands
(``update_agent``, ``restart_agent``, ``diagnostics``) with a :class:`~protocol.messages.CommandResponse`, and for
an update walks the agent's states (downloading, verifying, installing, a restart announced as a clean stop and a
new ``online`` with the new version, health_check) to ``succeeded``, or to ``rolled_back`` back on its old version
when ``fails`` says the new one fails its health gate. Hundreds fit in one process; tests and the jobs bench use it
where a thousand real agents would not fit.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypedDict

import aiomqtt

from protocol.clock import utc_now_ms
from protocol.codec import Decoder, Rejection, encode
from protocol.messages import (
    AdapterState,
    Command,
    CommandName,
    CommandResponse,
    GatewayHealth,
    Heartbeat,
    Message,
    Presence,
    PresenceReason,
    PresenceState,
)
from protocol.mqtt_socket import NO_DELAY
from protocol.topics import Channel, gateway_filters, gateway_topic
from protocol.updates import ReleaseKind, UpdateReport, UpdateState

logger = logging.getLogger(__name__)

STEP_S: Final = 0.2
"""How long each simulated step of an update takes."""


class _Stamp(TypedDict):
    gateway_id: str
    seq: int
    event_id: uuid.UUID
    ts: int


class UpdatingGateway:
    def __init__(
        self,
        host: str,
        port: int,
        village_id: str,
        gateway_id: str,
        *,
        agent_version: str,
        interval_s: float = 1.0,
        fails: Callable[[str], str | None] = lambda _version: None,
        step_s: float = STEP_S,
    ) -> None:
        """``fails(version)``: why that version's agent fails its health gate on this gateway (None: it passes)."""
        self.village_id = village_id
        self.id = gateway_id
        self.agent_version = agent_version
        self.report: UpdateReport | None = None
        self.updates_asked: list[str] = []
        self._interval_s = interval_s
        self._fails = fails
        self._step_s = step_s
        self._seq = 0
        self._decoder = Decoder()
        self._beat_now = asyncio.Event()
        self._started_ms = utc_now_ms()
        self._tasks: set[asyncio.Task[None]] = set()
        self._presence_topic = gateway_topic(village_id, gateway_id, Channel.PRESENCE)
        lost = self._presence(PresenceState.OFFLINE, PresenceReason.LOST)
        self.client = aiomqtt.Client(
            host,
            port,
            identifier=f"outpost-gw-{gateway_id}",
            will=aiomqtt.Will(self._presence_topic, lost, qos=1, retain=True),
            timeout=30,
            socket_options=NO_DELAY,
        )

    async def __aenter__(self) -> "UpdatingGateway":
        await self.client.__aenter__()
        await self._announce(PresenceState.ONLINE, PresenceReason.CONNECTED)
        for topic_filter in gateway_filters(self.village_id, self.id):
            await self.client.subscribe(topic_filter, qos=1)
        self._spawn(self._listen())
        self._spawn(self._heartbeats())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.__aexit__(None, None, None)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _stamp(self) -> _Stamp:
        self._seq += 1
        return _Stamp(gateway_id=self.id, seq=self._seq, event_id=uuid.uuid4(), ts=utc_now_ms())

    def _presence(self, state: PresenceState, reason: PresenceReason) -> bytes:
        return encode(Presence(**self._stamp(), state=state, reason=reason, agent_version=self.agent_version))

    async def _announce(self, state: PresenceState, reason: PresenceReason) -> None:
        await self.client.publish(self._presence_topic, self._presence(state, reason), qos=1, retain=True)

    async def _publish(self, channel: Channel, message: Message) -> None:
        await self.client.publish(gateway_topic(self.village_id, self.id, channel), encode(message), qos=1)

    async def _heartbeats(self) -> None:
        while True:
            health = GatewayHealth(
                cpu_percent=10.0, memory_percent=40.0, disk_percent=20.0,
                uptime_s=(utc_now_ms() - self._started_ms) / 1000, adapters={"panic-1": AdapterState.RUNNING},
                update=self.report,
            )  # fmt: skip
            self._beat_now.clear()
            await self._publish(
                Channel.HEARTBEAT, Heartbeat(**self._stamp(), interval_s=self._interval_s, health=health)
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._beat_now.wait()

    async def _listen(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            decoded = self._decoder.decode(str(message.topic), payload)
            if isinstance(decoded, Rejection) or not isinstance(decoded.message, Command):
                continue
            self._spawn(self._answer(decoded.message))

    async def _answer(self, command: Command) -> None:
        ok, error = True, None
        if command.name is CommandName.UPDATE_AGENT:
            version, job_id = command.args.get("version"), command.args.get("job_id")
            if not isinstance(version, str):
                ok, error = False, "update_agent takes version"
            else:
                self.updates_asked.append(version)
                self._spawn(self._update(version, job_id if isinstance(job_id, str) else None))
        elif command.name not in (CommandName.RESTART_AGENT, CommandName.DIAGNOSTICS):
            ok, error = False, f"command {command.name} is not simulated"
        response = CommandResponse(**self._stamp(), request_id=command.request_id, ok=ok, error=error)
        await self._publish(Channel.COMMAND_RESPONSE, response)

    def _set(self, state: UpdateState, version: str, job_id: str | None, reason: str | None = None) -> None:
        self.report = UpdateReport(
            job_id=job_id, kind=ReleaseKind.AGENT, version=version, state=state, reason=reason, changed_ms=utc_now_ms()
        )
        self._beat_now.set()

    async def _update(self, version: str, job_id: str | None) -> None:
        if version == self.agent_version:
            self._set(UpdateState.SUCCEEDED, version, job_id, f"agent {version} runs already")
            return
        for state in (UpdateState.DOWNLOADING, UpdateState.VERIFYING, UpdateState.INSTALLING):
            self._set(state, version, job_id)
            await asyncio.sleep(self._step_s)
        old = self.agent_version
        await self._restart_into(version)
        self._set(UpdateState.HEALTH_CHECK, version, job_id)
        await asyncio.sleep(self._step_s)
        why = self._fails(version)
        if why is None:
            self._set(UpdateState.SUCCEEDED, version, job_id)
            return
        await self._restart_into(old)
        self._set(UpdateState.ROLLED_BACK, version, job_id, f"the new agent {version} failed its health gate: {why}")

    async def _restart_into(self, version: str) -> None:
        """A restart as the fleet sees it: a clean stop, then online again running ``version``."""
        await self._announce(PresenceState.OFFLINE, PresenceReason.SHUTDOWN)
        self.agent_version = version
        await asyncio.sleep(self._step_s)
        await self._announce(PresenceState.ONLINE, PresenceReason.CONNECTED)
