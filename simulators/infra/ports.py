"""Free loopback ports for servers to listen on, waiting until a server accepts connections, and a server's address."""

import asyncio
import itertools
import logging
import os
import random
import re
import socket
from collections.abc import Iterator
from contextlib import suppress
from typing import ClassVar, Final

from simulators.infra.errors import ServerStartError

logger = logging.getLogger(__name__)

LOOPBACK: Final = "127.0.0.1"
_POLL_INTERVAL_S: Final = 0.05
_CONNECT_TIMEOUT_S: Final = 1.0


_WORKER_PORTS_BASE: Final = 20_000
_WORKER_PORTS: Final = 3_000
"""Each pytest-xdist worker takes ports from its own range below Linux's ephemeral ports (32768 and up): a server
one worker stopped for a planned outage keeps its port free, and another worker's new server must never take it
(a gateway would reconnect to a stranger's broker)."""
_WORKERS: Final = 4


def _worker_ports() -> Iterator[int] | None:
    """This xdist worker's ports, in turn from a random start (none outside xdist: the kernel picks)."""
    found = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    if found is None:
        return None
    start = _WORKER_PORTS_BASE + (int(found.group(1)) % _WORKERS) * _WORKER_PORTS
    first = random.randrange(_WORKER_PORTS)
    return itertools.cycle([start + (first + offset) % _WORKER_PORTS for offset in range(_WORKER_PORTS)])


_PORTS: Final = _worker_ports()


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now: the kernel picks it, or under pytest-xdist the
    next free one of this worker's own range (a port is not handed out again before the whole range was)."""
    if _PORTS is not None:
        for port in itertools.islice(_PORTS, _WORKER_PORTS):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        picked: int = sock.getsockname()[1]
    return picked


async def port_accepts(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds now; the connection is closed at once."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), _CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with suppress(OSError):
        await writer.wait_closed()
    return True


async def wait_for_port(host: str, port: int, timeout_s: float, *, server: str = "server") -> None:
    """Return once ``host:port`` accepts TCP connections.

    Raises :class:`ServerStartError` naming ``server`` if it does not within ``timeout_s`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await port_accepts(host, port):
        if loop.time() >= deadline:
            raise ServerStartError(f"{server} did not accept connections on {host}:{port} within {timeout_s:g} s")
        await asyncio.sleep(_POLL_INTERVAL_S)
    logger.debug("%s accepts connections on %s:%d", server, host, port)


class LoopbackServer:
    """A server on 127.0.0.1, on a free port unless ``port`` is given: its :attr:`host`, :attr:`port` and :attr:`url`.

    Subclasses set :attr:`url_scheme`. A subclass may move to another free port while nobody knows
    the port yet (``_port_given`` is false and it has not started).
    """

    url_scheme: ClassVar[str]
    """The scheme of :attr:`url`: ``mqtt``, ``http``, ..."""

    def __init__(self, port: int | None) -> None:
        self._port_given = port is not None
        self._port = port if port is not None else free_port()

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """``scheme://127.0.0.1:port``, the scheme being :attr:`url_scheme`."""
        return f"{self.url_scheme}://{LOOPBACK}:{self._port}"
