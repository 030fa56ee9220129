"""A gateway flooding one of its topics with invalid messages through Mosquitto's own client (``mosquitto_pub``).

:class:`Flood` runs ``mosquitto_pub -d -l`` (QoS 1) in a process of its own and feeds it lines of JSON that
no contract accepts (``{"gateway_id": …, "seq": N, "nonsense": true}``), each one different. Unpaced, it is
as fast as Mosquitto's C client and the broker take it. Used by the flood fault test and by the alerts
bench (``alerts.press_to_case_p99_flood_ms``).

The broker's acknowledgements are counted from ``-d``'s ``received PUBACK`` lines, and the feed keeps at
most :data:`AHEAD` lines beyond them. Unbounded, ``mosquitto_pub`` reads stdin far faster than the broker
acknowledges (libmosquitto queues the rest in memory without limit: gigabytes in a minute) and, at the end
of stdin, exits once the PUBACK of a message id equal to the last one's arrives, which with 16-bit ids that
wrap can be an earlier message's: the queued rest is then never published, and counting lines written
would overstate the flood a hundredfold (seen: 15 million lines written, ~0.5 million published).
"""

import asyncio
import contextlib
import logging
import shutil
import time
from types import TracebackType
from typing import Final, Protocol, Self

from protocol.topics import Channel, gateway_topic

logger = logging.getLogger(__name__)

MOSQUITTO_PUB: Final = "mosquitto_pub"
AHEAD: Final = 2_000
"""Lines fed beyond the broker's acknowledgements: enough to keep ``mosquitto_pub`` busy, far under 65,535."""
_PUBACK: Final = b"received PUBACK"
_DENIED: Final = b"RC:135)"  # mosquitto_pub -d: "received PUBACK (Mid: 7, RC:135)", not authorised
_LINES_PER_WRITE: Final = 100
_READ_BYTES: Final = 1 << 16
_PIPE: Final = asyncio.subprocess.PIPE
_END_TIMEOUT_S: Final = 60.0
_EXIT_GRACE_S: Final = 10.0
"""After stdin ends, how long ``mosquitto_pub`` may take to publish what it has read (at most :data:`AHEAD`)."""


class FloodError(RuntimeError):
    """``mosquitto_pub`` is missing, or it failed."""


class Broker(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


class Flood:
    """``mosquitto_pub -l`` (QoS 1) in its own process, fed invalid JSON lines until the context ends, at
    ``rate_per_s`` (None: as fast as it takes them).

    :attr:`sent` counts the lines handed to it, :attr:`acknowledged` the broker's PUBACKs so far; once the
    context has ended (``mosquitto_pub`` publishes what it has read, then exits) both are every message it
    published. :attr:`published_per_s` is then that count over the time from its start until it exited.
    """

    def __init__(
        self,
        broker: Broker,
        gateway_id: str,
        channel: Channel,
        *,
        rate_per_s: float | None = None,
        village_id: str = "shiqiao",
        password: str | None = None,
        mqtt5: bool = False,
    ) -> None:
        """``password``: log in as ``gateway_id`` with it (a broker with per-client logins); ``mqtt5``: speak
        MQTT 5, so a denied publish is answered (reason code 135, counted in :attr:`denied`) before Mosquitto
        hangs up (``mosquitto_pub`` connects again and goes on)."""
        self._command = [
            MOSQUITTO_PUB, "-d", "-h", broker.host, "-p", str(broker.port), "-i", gateway_id, "-q", "1", "-l",
            "-t", gateway_topic(village_id, gateway_id, channel),
        ]  # fmt: skip
        if password is not None:
            self._command += ["-u", gateway_id, "-P", password]
        if mqtt5:
            self._command += ["-V", "mqttv5"]
        self._gateway_id = gateway_id
        self._pause_s = 0.0 if rate_per_s is None else _LINES_PER_WRITE / rate_per_s
        self._process: asyncio.subprocess.Process | None = None
        self._feeder: asyncio.Task[None] | None = None
        self._counter: asyncio.Task[None] | None = None
        self._acknowledgement = asyncio.Event()
        self._started = 0.0
        self._ended: float | None = None
        self.sent = 0
        self.acknowledged = 0
        self.denied = 0  # of them, refused by the broker (MQTT 5 only)

    @staticmethod
    def available() -> bool:
        return shutil.which(MOSQUITTO_PUB) is not None

    @property
    def published_per_s(self) -> float:
        """Messages published per second, start to exit; only once the context has ended."""
        if self._ended is None:
            raise FloodError("the flood is still running")
        return self.acknowledged / (self._ended - self._started)

    async def __aenter__(self) -> Self:
        if not self.available():
            raise FloodError("mosquitto_pub is not installed (Debian: mosquitto-clients; scripts/test installs it)")
        self._started = time.monotonic()
        self._process = await asyncio.create_subprocess_exec(*self._command, stdin=_PIPE, stdout=_PIPE, stderr=_PIPE)
        self._counter = asyncio.create_task(self._count())
        self._feeder = asyncio.create_task(self._feed())
        return self

    async def _count(self) -> None:
        """Count the PUBACKs in ``mosquitto_pub -d``'s output until it ends."""
        assert self._process is not None
        assert self._process.stdout is not None
        tail = b""
        while chunk := await self._process.stdout.read(_READ_BYTES):
            text = tail + chunk
            # what lies wholly in the tail was counted with the chunk before
            self.acknowledged += text.count(_PUBACK) - tail.count(_PUBACK)
            self.denied += text.count(_DENIED) - tail.count(_DENIED)
            tail = text[-len(_PUBACK) :]
            self._acknowledgement.set()

    async def _feed(self) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        gateway = self._gateway_id.encode()
        while True:
            while self.sent - self.acknowledged >= AHEAD:
                self._acknowledgement.clear()
                await self._acknowledgement.wait()
            lines = b"".join(
                b'{"gateway_id": "%s", "seq": %d, "nonsense": true}\n' % (gateway, self.sent + i)
                for i in range(_LINES_PER_WRITE)
            )
            self._process.stdin.write(lines)
            self.sent += _LINES_PER_WRITE  # counted once written: closing stdin still hands them over
            await self._process.stdin.drain()
            await asyncio.sleep(self._pause_s)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._process is not None
        assert self._feeder is not None
        assert self._process.stdin is not None
        self._feeder.cancel()
        await asyncio.gather(self._feeder, return_exceptions=True)
        self._process.stdin.close()  # mosquitto_pub publishes what it has read, then ends
        assert self._counter is not None
        assert self._process.stderr is not None
        stopped = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_EXIT_GRACE_S):
                await self._process.wait()
        if self._process.returncode is None:
            # Denied (quarantined): Mosquitto hangs up on each denied publish, so what is left goes out one
            # connection each, for minutes. It has made its point: it is stopped.
            self._process.terminate()
            stopped = True
        try:
            async with asyncio.timeout(_END_TIMEOUT_S):
                stderr = await self._process.stderr.read()
                await self._counter
                await self._process.wait()
        finally:
            if self._process.returncode is None:
                self._process.kill()
                await self._process.wait()
            self._counter.cancel()
        self._ended = time.monotonic()
        if self._process.returncode != 0 and not stopped:
            raise FloodError(f"mosquitto_pub failed ({self._process.returncode}): {stderr.decode()[-500:]}")
        logger.info("flood from %s: %d messages fed, %d acknowledged", self._gateway_id, self.sent, self.acknowledged)
