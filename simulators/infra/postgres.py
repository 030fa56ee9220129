"""A real PostgreSQL server on a loopback port: a throwaway cluster in a directory it owns, for tests.

:class:`PostgresServer` runs ``initdb`` once into its directory (superuser ``outpost``, trust
authentication, UTF8, locale C) and then ``postgres`` on 127.0.0.1 only. The executables are found by
:func:`postgres_bin_dir`: ``postgres`` and ``initdb`` on ``PATH``, else the newest
``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package puts them there, not on ``PATH``).
Databases are made and dropped with asyncpg, so tests need no ``psql``::

    async with PostgresServer() as pg:
        url = await pg.create_database("registry")  # postgresql+asyncpg://outpost@127.0.0.1:PORT/registry
        engine = create_async_engine(url)

PostgreSQL refuses to run as root. When this process is root (as the test machines are) both
executables run as an unprivileged user instead, through ``setpriv`` (util-linux): the ``postgres``
user that Debian's package creates, else ``nobody``; the server's directory is handed to that user,
so it must be reachable by it (``/tmp``, the default, is).
"""

import asyncio
import logging
import os
import pwd
import re
import shutil
import signal
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Final

import asyncpg

from simulators.infra.errors import BinaryNotFoundError, ServerStartError, ServerStateError
from simulators.infra.managed import ManagedServer
from simulators.infra.ports import LOOPBACK, port_accepts
from simulators.infra.process import file_size, kill, read_from, spawn, tail

logger = logging.getLogger(__name__)

POSTGRES_VERSIONS_DIR: Final = Path("/usr/lib/postgresql")
SUPERUSER: Final = "outpost"
MAINTENANCE_DATABASE: Final = "postgres"
UNPRIVILEGED_USERS: Final = ("postgres", "nobody")
SERVER_USER_ENV: Final = "OUTPOST_POSTGRES_USER"
"""Overrides which user runs PostgreSQL when this process is root (default: the first of :data:`UNPRIVILEGED_USERS`)."""

# Durability is traded for speed: a crash of the machine may corrupt the cluster, which a throwaway
# test cluster does not mind. Never use these settings for data that matters.
TEST_SETTINGS: Final[Mapping[str, str]] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
_DATABASE_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_READY_LINE: Final = "database system is ready to accept connections"
_SOCKET_PATH_MAX: Final = 107  # sun_path is 108 bytes on Linux, with its terminating NUL
_CONNECT_TIMEOUT_S: Final = 10.0
_CHILD_EXIT_TIMEOUT_S: Final = 2.0
_POLL_INTERVAL_S: Final = 0.02


def postgres_bin_dir() -> Path | None:
    """The directory with ``postgres`` and ``initdb``: the one on ``PATH`` (both must be there), else the
    newest ``/usr/lib/postgresql/<version>/bin``, else None."""
    found = shutil.which("postgres")
    if found is not None:
        directory = Path(found).resolve().parent
        if _is_executable(directory / "initdb"):
            return directory
    versions = [path for path in _version_dirs() if _is_executable(path / "bin" / "postgres")]
    for version in sorted(versions, key=_version_key, reverse=True):
        if _is_executable(version / "bin" / "initdb"):
            return version / "bin"
    return None


def _version_dirs() -> list[Path]:
    try:
        return [path for path in POSTGRES_VERSIONS_DIR.iterdir() if path.is_dir()]
    except OSError:
        return []


def _version_key(path: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15`` sorts as (15,), ``9.6`` as (9, 6); a name that is no version sorts first."""
    try:
        return tuple(int(part) for part in path.name.split("."))
    except ValueError:
        return (-1,)


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def check_database_name(name: str) -> str:
    """``name`` if it is a plain identifier (letters, digits, ``_``; at most 63), else :class:`ValueError`.

    Only such names are accepted, so they need no quoting in SQL or in URLs.
    """
    if _DATABASE_NAME_RE.fullmatch(name) is None:
        raise ValueError(f"{name!r} is not a plain database name ([A-Za-z_][A-Za-z0-9_]*, at most 63 characters)")
    return name


class PostgresServer(ManagedServer):
    """A ``postgres`` process listening on 127.0.0.1 only, on a free port unless ``port`` is given.

    :meth:`start` runs ``initdb`` into ``data/`` under :attr:`directory` the first time, then starts
    the server and returns once it has logged that it is ready to accept connections on this port and
    the port accepts them. Its Unix socket is in ``sockets/`` there (none if that path would be too
    long for a socket), its output goes to ``postgres.log`` (``initdb.log`` for ``initdb``).

    Anyone on this machine may connect over TCP as the superuser :data:`SUPERUSER` without a password
    (``trust`` authentication, loopback only). It runs with :data:`TEST_SETTINGS` (``fsync``,
    ``synchronous_commit`` and ``full_page_writes`` off): fast, and safe against a killed server but
    not against a machine crash, so it is for tests only. ``settings`` adds or overrides server
    settings (``-c name=value``).

    :meth:`stop` asks for a fast shutdown (SIGINT: clients are disconnected, data is saved);
    :meth:`kill` SIGKILLs the server and its backends, as a power cut would, and the next
    :meth:`start` recovers from the write-ahead log. Both keep the data for a later :meth:`start` on
    the same port; :meth:`close` (and leaving ``async with``) also deletes the directory.

    :meth:`database_url`, :meth:`create_database` and :meth:`drop_database` use no state tied to the
    event loop, so they work from any loop (or thread) while the server runs.
    """

    display_name = "postgres"
    url_scheme = "postgresql"

    def __init__(
        self,
        *,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
        binary: Path | None = None,
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(port=port, binary=binary, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s)
        self._settings = {**TEST_SETTINGS, **(settings or {})}

    @classmethod
    def find_binary(cls) -> Path | None:
        """The ``postgres`` executable (``initdb`` is beside it), or None."""
        directory = postgres_bin_dir()
        return directory / "postgres" if directory is not None else None

    @classmethod
    def not_installed_message(cls) -> str:
        return (
            f"PostgreSQL is not installed (no postgres and initdb on PATH or in {POSTGRES_VERSIONS_DIR}/*/bin); "
            "run scripts/test, which installs it"
        )

    @property
    def user(self) -> str:
        """The superuser that clients connect as."""
        return SUPERUSER

    @property
    def data_path(self) -> Path:
        return self._directory / "data"

    @property
    def socket_directory(self) -> Path:
        return self._directory / "sockets"

    @property
    def log_path(self) -> Path:
        return self._directory / "postgres.log"

    @property
    def initdb_log_path(self) -> Path:
        return self._directory / "initdb.log"

    def database_url(self, name: str) -> str:
        """The SQLAlchemy URL of database ``name``: ``postgresql+asyncpg://outpost@127.0.0.1:PORT/name``."""
        return f"postgresql+asyncpg://{SUPERUSER}@{LOOPBACK}:{self._port}/{check_database_name(name)}"

    def dsn(self, name: str) -> str:
        """The libpq URL of database ``name`` (for asyncpg or psql): ``postgresql://outpost@127.0.0.1:PORT/name``."""
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self._port}/{check_database_name(name)}"

    async def create_database(self, name: str) -> str:
        """Create database ``name`` unless it exists, and return its :meth:`database_url`."""
        check_database_name(name)
        connection = await self._connect_maintenance()
        try:
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if exists is None:
                with suppress(asyncpg.DuplicateDatabaseError):  # created meanwhile by another client
                    await connection.execute(f'CREATE DATABASE "{name}"')
                    logger.debug("created database %s on %s", name, self.url)
        finally:
            await connection.close()
        return self.database_url(name)

    async def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, disconnecting its clients first (PostgreSQL 13 or newer)."""
        check_database_name(name)
        connection = await self._connect_maintenance()
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()
        logger.debug("dropped database %s on %s", name, self.url)

    async def stop(self) -> None:
        """Ask for a fast shutdown (SIGINT), SIGKILL the server after ``stop_timeout_s``.

        PostgreSQL's SIGTERM (which :meth:`ManagedServer.stop` sends next, harmlessly) would wait for
        every client, such as a connection pool a test forgot to dispose, to disconnect first.
        """
        process = self._process
        if process is not None and process.returncode is None:
            with suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
        await super().stop()

    async def kill(self) -> None:
        """SIGKILL the server and its backends, as a power cut would; the next :meth:`start` recovers.

        The backends are killed too (they run in sessions of their own): left alone they would outlive
        the server for a moment and keep the next :meth:`start` from attaching to shared memory.
        """
        process = self._process
        children = _child_pids(process.pid) if process is not None and process.returncode is None else []
        await super().kill()
        for pid in children:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await _wait_gone(children, _CHILD_EXIT_TIMEOUT_S)

    async def _connect_maintenance(self) -> asyncpg.Connection:
        if not self.running:
            raise ServerStateError(f"postgres on {self.url} is not running")
        return await asyncpg.connect(
            host=LOOPBACK,
            port=self._port,
            user=SUPERUSER,
            database=MAINTENANCE_DATABASE,
            timeout=_CONNECT_TIMEOUT_S,
        )

    def _argv(self, binary: Path) -> list[str]:
        socket_path = self.socket_directory / f".s.PGSQL.{self._port}"
        sockets = str(self.socket_directory) if len(str(socket_path)) <= _SOCKET_PATH_MAX else ""
        settings = {
            "listen_addresses": LOOPBACK,
            "port": str(self._port),
            "unix_socket_directories": sockets,
            "lc_messages": "C",  # readiness is read from English log lines
            **self._settings,
        }
        argv = [str(binary), "-D", str(self.data_path)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    async def _start_once(self, binary: Path) -> None:
        owner = _server_user()
        initdb = _initdb_beside(binary)
        wrap = _setpriv_prefix(owner) if owner is not None else []
        self.socket_directory.mkdir(exist_ok=True)
        if owner is not None:
            for path in (self._directory, self.socket_directory):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        if not (self.data_path / "PG_VERSION").exists():
            await self._initdb([*wrap, str(initdb)])
        log_offset = file_size(self.log_path)
        listening = f'listening on IPv4 address "{LOOPBACK}", port {self._port}'

        async def is_ready() -> bool:
            # The log lines rule out something else answering on a port we picked.
            logged = read_from(self.log_path, log_offset)
            return listening in logged and _READY_LINE in logged and await port_accepts(LOOPBACK, self._port)

        process = await self._launch([*wrap, *self._argv(binary)], self.log_path, is_ready)
        as_user = f" as {owner.pw_name}" if owner is not None else ""
        logger.info("postgres (pid %d%s) listening on %s, files in %s", process.pid, as_user, self.url, self._directory)

    async def _initdb(self, command: list[str]) -> None:
        argv = [
            *command,
            "--pgdata",
            str(self.data_path),
            "--username",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=trust",  # initdb's pg_hba.conf lists loopback addresses only
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # a throwaway cluster: see TEST_SETTINGS
        ]
        offset = file_size(self.initdb_log_path)
        loop = asyncio.get_running_loop()
        started = loop.time()
        process = await spawn(argv, self.initdb_log_path)
        try:
            await asyncio.wait_for(process.wait(), self._start_timeout_s)
        except TimeoutError:
            raise ServerStartError(
                f"initdb did not finish within {self._start_timeout_s:g} s.\n"
                f"--- {self.initdb_log_path} (tail) ---\n{tail(self.initdb_log_path, offset)}"
            ) from None
        finally:
            await kill(process)
        if process.returncode != 0:
            raise ServerStartError(
                f"initdb exited with code {process.returncode}.\n"
                f"--- {self.initdb_log_path} (tail) ---\n{tail(self.initdb_log_path, offset)}"
            )
        logger.debug("initdb made %s in %.2f s", self.data_path, loop.time() - started)


def _initdb_beside(binary: Path) -> Path:
    """The ``initdb`` in the directory of ``binary`` (or of the file it links to)."""
    for directory in (binary.parent, binary.resolve().parent):
        if _is_executable(directory / "initdb"):
            return directory / "initdb"
    raise BinaryNotFoundError(f"initdb is not beside {binary}; {PostgresServer.not_installed_message()}")


def _server_user() -> pwd.struct_passwd | None:
    """Who runs PostgreSQL: None (this process's user) unless this process is root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get(SERVER_USER_ENV)
    for name in (wanted,) if wanted else UNPRIVILEGED_USERS:
        with suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServerStartError(
        f"PostgreSQL refuses to run as root and there is no user {wanted or ' or '.join(UNPRIVILEGED_USERS)} "
        f"to run it as; set {SERVER_USER_ENV} to an unprivileged user"
    )


def _setpriv_prefix(owner: pwd.struct_passwd) -> list[str]:
    """The command prefix that runs the rest as ``owner``; setpriv execs it, so its pid is the server's."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise BinaryNotFoundError(
            "PostgreSQL refuses to run as root and setpriv (Debian package util-linux), which runs it as "
            f"{owner.pw_name}, is not installed"
        )
    return [setpriv, f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--clear-groups", "--"]


def _child_pids(parent: int) -> list[int]:
    """The pids of ``parent``'s child processes, read from ``/proc`` (empty where there is none)."""
    children: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 1 and fields[1] == str(parent):
            children.append(int(entry.name))
    return children


async def _wait_gone(pids: list[int], timeout_s: float) -> None:
    """Return once none of ``pids`` is a live process (gone, or a zombie), or after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while any(_is_alive(pid) for pid in pids):
        if loop.time() >= deadline:
            logger.warning("postgres backends %s still exist %g s after SIGKILL", pids, timeout_s)
            return
        await asyncio.sleep(_POLL_INTERVAL_S)


def _is_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
