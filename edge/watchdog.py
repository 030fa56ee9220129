"""Talks to systemd: READY when the agent runs, WATCHDOG pings while its event loop is healthy,
STOPPING on the way out. Does nothing when not started by systemd (no ``NOTIFY_SOCKET``).

The ping comes from a task on the agent's own event loop, so a wedged loop stops the pings and
systemd restarts the agent (``WatchdogSec=`` in the unit).
"""

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

logger = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is written with a leading "@" and means a leading NUL byte.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        self.watchdog_interval_s = int(watchdog_usec) / 2_000_000 if watchdog_usec.isdigit() and self._address else None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, state: str) -> None:
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block the event loop: if systemd's queue is full, this ping is skipped.
                sock.setblocking(False)
                sock.sendto(state.encode(), self._address)
        except OSError as exc:
            logger.warning("cannot notify systemd (%s): %s", state, exc)

    async def keep_alive(self) -> None:
        """Ping the watchdog at half its timeout until cancelled (only when systemd asked for it)."""
        if self.watchdog_interval_s is None:
            raise RuntimeError("no watchdog was requested (WATCHDOG_USEC unset)")
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval_s)
