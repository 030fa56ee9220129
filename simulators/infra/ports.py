"""Free loopback ports for servers to listen on, and waiting until a server accepts connections."""

import asyncio
import logging
import socket
from contextlib import suppress
from typing import Final

from simulators.infra.errors import ServerStartError

logger = logging.getLogger(__name__)

LOOPBACK: Final = "127.0.0.1"
_POLL_INTERVAL_S: Final = 0.05
_CONNECT_TIMEOUT_S: Final = 1.0


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


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
