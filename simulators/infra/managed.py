"""The lifecycle of a real server the tests and the demo run as a child process on a loopback port.

:class:`ManagedServer` starts, stops, kills, restarts and closes the process, reaps it, keeps its
files in a directory it owns and, before the first start, moves to another free port if the one it
picked was taken meanwhile. A server is a small subclass: its name, URL scheme, how to find its
executable, and how to start once::

    class InfluxDBServer(ManagedServer):
        display_name = "influxd"
        url_scheme = "http"

        @classmethod
        def find_binary(cls) -> Path | None:
            found = shutil.which("influxd")
            return Path(found) if found else None

        @classmethod
        def not_installed_message(cls) -> str:
            return "influxd is not installed (not on PATH); run scripts/test, which installs it"

        async def _start_once(self, binary: Path) -> None:
            async with httpx.AsyncClient(base_url=self.url) as client:
                await self._launch([str(binary), "-config", ...], self.directory / "influxd.log", partial(ping, client))
"""

import asyncio
import logging
import shutil
import tempfile
import weakref
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Final, Self

from simulators.infra.errors import BinaryNotFoundError, ServerStartError, ServerStateError
from simulators.infra.ports import LoopbackServer, free_port
from simulators.infra.process import file_size, kill, spawn, tail, terminate

_ADDRESS_IN_USE: Final = "address already in use"
_START_ATTEMPTS: Final = 3
_POLL_INTERVAL_S: Final = 0.05


class PortTakenError(ServerStartError):
    """The server could not bind its port because something else had taken it."""


class ManagedServer(LoopbackServer, ABC):
    """A server child process on 127.0.0.1 (a free port unless ``port`` is given) with a directory it owns.

    :meth:`stop` and :meth:`kill` keep the directory, and the port, for a later :meth:`start`;
    :meth:`close` (and leaving ``async with``) also deletes the directory.

    Subclasses set :attr:`display_name` and :attr:`url_scheme` and implement :meth:`find_binary`,
    :meth:`not_installed_message` and :meth:`_start_once` (usually with :meth:`_launch`). Lifecycle
    messages are logged to the subclass's module logger.
    """

    display_name: ClassVar[str]
    """The server's name in messages and in its directory's name, e.g. ``mosquitto``."""

    def __init__(self, *, port: int | None, binary: Path | None, start_timeout_s: float, stop_timeout_s: float) -> None:
        super().__init__(port)
        self._binary = binary
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._directory = Path(tempfile.mkdtemp(prefix=f"outpost-{self.display_name}-"))
        self._remove_directory = weakref.finalize(self, shutil.rmtree, self._directory, ignore_errors=True)
        self._process: asyncio.subprocess.Process | None = None
        self._has_started = False
        self._closed = False
        self._logger = logging.getLogger(type(self).__module__)

    @classmethod
    @abstractmethod
    def find_binary(cls) -> Path | None:
        """The installed executable, or None (``binary=`` given to the constructor takes precedence)."""

    @classmethod
    @abstractmethod
    def not_installed_message(cls) -> str:
        """The :class:`BinaryNotFoundError` message when :meth:`find_binary` finds nothing."""

    @classmethod
    def available(cls) -> bool:
        """Whether the server's executable is installed."""
        return cls.find_binary() is not None

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    async def start(self) -> None:
        """Start the server and return once it is ready (see the subclass).

        Raises :class:`ServerStartError`, with the tail of its output, if it exits or is not ready
        within ``start_timeout_s``; :class:`BinaryNotFoundError` if it is not installed;
        :class:`ServerStateError` if it is running or closed.
        """
        if self._closed:
            raise ServerStateError(f"this {type(self).__name__} is closed; make a new one")
        if self.running:
            raise ServerStateError(f"{self.display_name} is already running on {self.url}")
        if self._process is not None:  # it died on its own: reap it before starting another
            await kill(self._process)
            self._process = None
        binary = self._binary or self.find_binary()
        if binary is None:
            raise BinaryNotFoundError(self.not_installed_message())
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                await self._start_once(binary)
            except PortTakenError:
                # A port we picked ourselves was taken before the server bound it: pick another, but
                # only before the first start (afterwards clients already know the port).
                if self._port_given or self._has_started or attempt == _START_ATTEMPTS:
                    raise
                self._logger.info("port %d was taken before %s bound it; trying another", self._port, self.display_name)
                self._port = free_port()
            else:
                break
        self._has_started = True

    async def stop(self) -> None:
        """SIGTERM the server (so it saves its data), SIGKILL it after ``stop_timeout_s``."""
        process, self._process = self._process, None
        if process is None:
            return
        await terminate(process, name=f"{self.display_name} on {self.url}", timeout_s=self._stop_timeout_s)
        self._logger.info("%s on %s stopped (exit code %s)", self.display_name, self.url, process.returncode)

    async def kill(self) -> None:
        """SIGKILL the server, as a crash or power cut would; clients see their sockets drop."""
        process, self._process = self._process, None
        if process is None:
            return
        await kill(process)
        self._logger.info("%s on %s killed", self.display_name, self.url)

    async def restart(self) -> None:
        """Stop the server and start it again on the same port, with the same directory."""
        await self.stop()
        await self.start()

    async def close(self) -> None:
        """Stop the server and delete its directory; it cannot be started again."""
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

    @abstractmethod
    async def _start_once(self, binary: Path) -> None:
        """Start ``binary`` on :attr:`port` and return once it is ready, leaving it in ``_process``.

        On failure leave no process behind and raise :class:`ServerStartError`, or
        :class:`PortTakenError` if the port was taken (:meth:`start` may then try another port).
        :meth:`_launch` does all of this given the command line and a readiness check.
        """

    async def _launch(
        self,
        argv: Sequence[str],
        output: Path,
        is_ready: Callable[[], Awaitable[bool]],
        *,
        logs: Sequence[Path] = (),
        ready_state: str = "ready",
    ) -> asyncio.subprocess.Process:
        """Spawn ``argv`` (stdout and stderr appended to ``output``) and poll ``is_ready`` until it is true.

        If the process exits first, or ``is_ready`` is still false after ``start_timeout_s`` (the
        message then says it "was not ``ready_state``"), it is killed and a :class:`ServerStartError`
        is raised with the tails of ``logs`` and ``output`` written since the spawn:
        :class:`PortTakenError` if they say the address is in use.
        """
        watched = [(path, file_size(path)) for path in (*logs, output)]
        process = await spawn(argv, output)
        self._process = process
        try:
            await self._wait_ready(process, is_ready, watched, ready_state)
        except BaseException:
            self._process = None
            await kill(process)
            raise
        return process

    async def _wait_ready(
        self,
        process: asyncio.subprocess.Process,
        is_ready: Callable[[], Awaitable[bool]],
        watched: Sequence[tuple[Path, int]],
        ready_state: str,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout_s
        while True:
            if process.returncode is not None:
                raise _start_failure(
                    f"{self.display_name} exited with code {process.returncode} while starting", watched
                )
            if await is_ready():
                return
            if loop.time() >= deadline:
                raise _start_failure(
                    f"{self.display_name} was not {ready_state} on {self.url} within {self._start_timeout_s:g} s",
                    watched,
                )
            await asyncio.sleep(_POLL_INTERVAL_S)


def _start_failure(reason: str, watched: Sequence[tuple[Path, int]]) -> ServerStartError:
    """The error for a failed start: ``reason`` and the tail of each file after its offset."""
    tails = [(path, tail(path, offset)) for path, offset in watched]
    message = f"{reason}." + "".join(f"\n--- {path} (tail) ---\n{text}" for path, text in tails)
    taken = any(_ADDRESS_IN_USE in text.lower() for _, text in tails)
    return PortTakenError(message) if taken else ServerStartError(message)
