"""A real Mosquitto broker on a loopback port, with its config, log and persistence in a directory it owns.

The tests and the demo start one per run; fault tests kill it (:meth:`MosquittoBroker.kill`) and start
it again on the same port. The executable is found by :func:`mosquitto_binary`: ``mosquitto`` on
``PATH``, else the Debian package's ``/usr/sbin/mosquitto``.
"""

import asyncio
import logging
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from simulators.infra.errors import BinaryNotFoundError, ServerStartError, ServerStateError
from simulators.infra.ports import LOOPBACK, free_port, port_accepts
from simulators.infra.process import file_size, kill, read_from, spawn, tail, terminate

logger = logging.getLogger(__name__)

MOSQUITTO_FALLBACK_PATH: Final = Path("/usr/sbin/mosquitto")
_READY_RE: Final = re.compile(r"mosquitto version \S+ running")
_ADDRESS_IN_USE: Final = "address already in use"
_START_ATTEMPTS: Final = 3
_POLL_INTERVAL_S: Final = 0.05


def mosquitto_binary() -> Path | None:
    """The Mosquitto executable: ``mosquitto`` on ``PATH``, else ``/usr/sbin/mosquitto``, else None."""
    found = shutil.which("mosquitto")
    if found is not None:
        return Path(found)
    if os.access(MOSQUITTO_FALLBACK_PATH, os.X_OK):
        return MOSQUITTO_FALLBACK_PATH
    return None


class _PortTakenError(ServerStartError):
    """The broker could not bind its port because something else had taken it."""


class MosquittoBroker:
    """A ``mosquitto`` process listening on 127.0.0.1 only, on a free port unless ``port`` is given.

    Everything it writes lives in :attr:`directory`: ``mosquitto.conf``, ``mosquitto.log`` (its
    ``log_dest``), ``mosquitto.out`` (anything it prints before its log is open) and, with
    ``persistence=True``, ``persistence/mosquitto.db``, so retained messages and persistent sessions
    survive :meth:`restart` and :meth:`kill` followed by :meth:`start`. Mosquitto saves that database
    when it stops and every ``autosave_interval_s`` seconds, so a hard kill loses at most that much.

    :meth:`stop` and :meth:`kill` keep the directory, and the port, for a later :meth:`start`;
    :meth:`close` (and leaving ``async with``) also deletes the directory.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        allow_anonymous: bool = True,
        persistence: bool = False,
        autosave_interval_s: int = 1,
        extra_config: Sequence[str] = (),
        binary: Path | None = None,
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self._port_given = port is not None
        self._port = port if port is not None else free_port()
        self._allow_anonymous = allow_anonymous
        self._persistence = persistence
        self._autosave_interval_s = autosave_interval_s
        self._extra_config = tuple(extra_config)
        self._binary = binary
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._directory = Path(tempfile.mkdtemp(prefix="outpost-mosquitto-"))
        self._remove_directory = weakref.finalize(self, shutil.rmtree, self._directory, ignore_errors=True)
        self._process: asyncio.subprocess.Process | None = None
        self._has_started = False
        self._closed = False

    @staticmethod
    def available() -> bool:
        """Whether a Mosquitto executable is installed."""
        return mosquitto_binary() is not None

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self._port}"

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def config_path(self) -> Path:
        return self._directory / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self._directory / "mosquitto.log"

    @property
    def persistence_path(self) -> Path | None:
        """Mosquitto's database file when persistence is on (it appears after the first save)."""
        return self._directory / "persistence" / "mosquitto.db" if self._persistence else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    @property
    def _output_path(self) -> Path:
        return self._directory / "mosquitto.out"

    async def start(self) -> None:
        """Start the broker and return once it accepts connections on :attr:`port`.

        Raises :class:`ServerStartError`, with the tail of Mosquitto's log, if it exits or is not
        ready within ``start_timeout_s``; :class:`BinaryNotFoundError` if Mosquitto is not installed.
        """
        if self._closed:
            raise ServerStateError("this MosquittoBroker is closed; make a new one")
        if self.running:
            raise ServerStateError(f"mosquitto is already running on {self.url}")
        if self._process is not None:  # it died on its own: reap it before starting another
            await kill(self._process)
            self._process = None
        binary = self._binary or mosquitto_binary()
        if binary is None:
            raise BinaryNotFoundError(
                f"mosquitto is not installed (not on PATH, not at {MOSQUITTO_FALLBACK_PATH}); "
                "run scripts/test, which installs it"
            )
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                await self._start_once(binary)
            except _PortTakenError:
                # A port we picked ourselves was taken before Mosquitto bound it: pick another, but
                # only before the first start (afterwards clients already know the port).
                if self._port_given or self._has_started or attempt == _START_ATTEMPTS:
                    raise
                logger.info("port %d was taken before mosquitto bound it; trying another", self._port)
                self._port = free_port()
            else:
                break
        self._has_started = True

    async def stop(self) -> None:
        """SIGTERM the broker (Mosquitto saves its database), SIGKILL it after ``stop_timeout_s``."""
        process, self._process = self._process, None
        if process is None:
            return
        await terminate(process, name=f"mosquitto on {self.url}", timeout_s=self._stop_timeout_s)
        logger.info("mosquitto on %s stopped (exit code %s)", self.url, process.returncode)

    async def kill(self) -> None:
        """SIGKILL the broker, as a crash or power cut would; clients see their sockets drop."""
        process, self._process = self._process, None
        if process is None:
            return
        await kill(process)
        logger.info("mosquitto on %s killed", self.url)

    async def restart(self) -> None:
        """Stop the broker and start it again on the same port."""
        await self.stop()
        await self.start()

    async def close(self) -> None:
        """Stop the broker and delete its directory; it cannot be started again."""
        try:
            await self.stop()
        finally:
            self._closed = True
            self._remove_directory()

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _config_lines(self) -> list[str]:
        lines = ["# Written by simulators.infra.mosquitto for one test or demo broker."]
        if os.geteuid() == 0:
            # Started as root, Mosquitto 2 switches to the 'mosquitto' user, which cannot write here.
            lines.append("user root")
        lines += [
            "per_listener_settings false",
            f"listener {self._port} {LOOPBACK}",
            f"allow_anonymous {str(self._allow_anonymous).lower()}",
            f"persistence {str(self._persistence).lower()}",
        ]
        if self._persistence:
            lines += [
                f"persistence_location {self._directory / 'persistence'}/",
                "persistence_file mosquitto.db",
                f"autosave_interval {self._autosave_interval_s}",
            ]
        lines += [
            f"log_dest file {self.log_path}",
            *(f"log_type {kind}" for kind in ("error", "warning", "notice", "information")),
            "log_timestamp true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
            *self._extra_config,
        ]
        return lines

    async def _start_once(self, binary: Path) -> None:
        if self._persistence:
            (self._directory / "persistence").mkdir(exist_ok=True)
        self.config_path.write_text("\n".join(self._config_lines()) + "\n", encoding="utf-8")
        log_offset = file_size(self.log_path)
        output_offset = file_size(self._output_path)
        process = await spawn([str(binary), "-c", str(self.config_path)], self._output_path)
        self._process = process
        try:
            await self._wait_ready(process, log_offset, output_offset)
        except BaseException:
            self._process = None
            await kill(process)
            raise
        logger.info("mosquitto (pid %d) listening on %s, files in %s", process.pid, self.url, self._directory)

    async def _wait_ready(self, process: asyncio.subprocess.Process, log_offset: int, output_offset: int) -> None:
        """Wait until Mosquitto logs that it runs and its port accepts connections."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout_s
        while True:
            if process.returncode is not None:
                raise self._start_failure(
                    f"mosquitto exited with code {process.returncode} while starting", log_offset, output_offset
                )
            # The log line rules out something else answering on a port we picked.
            logged_running = _READY_RE.search(read_from(self.log_path, log_offset)) is not None
            if logged_running and await port_accepts(LOOPBACK, self._port):
                return
            if loop.time() >= deadline:
                raise self._start_failure(
                    f"mosquitto was not ready on {self.url} within {self._start_timeout_s:g} s",
                    log_offset,
                    output_offset,
                )
            await asyncio.sleep(_POLL_INTERVAL_S)

    def _start_failure(self, reason: str, log_offset: int, output_offset: int) -> ServerStartError:
        log_tail = tail(self.log_path, log_offset)
        output_tail = tail(self._output_path, output_offset)
        message = (
            f"{reason}.\n--- {self.log_path} (tail) ---\n{log_tail}\n--- {self._output_path} (tail) ---\n{output_tail}"
        )
        taken = _ADDRESS_IN_USE in log_tail.lower() or _ADDRESS_IN_USE in output_tail.lower()
        return _PortTakenError(message) if taken else ServerStartError(message)
