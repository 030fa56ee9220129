"""PostgreSQL for the tests: one server per session, started only if a test asks for it, and a fresh database per test.

Fixtures (registered for every test by ``tests/conftest.py``):

``postgres_server`` (session scope) -> :class:`PostgresServer`
    The session's server, started on the first request and closed (directory deleted) at the end of
    the session. Use its :meth:`~PostgresServer.database_url`, :meth:`~PostgresServer.dsn`,
    :meth:`~PostgresServer.create_database` and :meth:`~PostgresServer.drop_database` from any test;
    do not stop, kill or restart it (other tests share it): a test of those starts its own
    :class:`PostgresServer`.

``postgres_url`` (function scope) -> ``str``
    The SQLAlchemy URL (``postgresql+asyncpg://outpost@127.0.0.1:PORT/NAME``) of a new empty
    database made for this test alone, named after the test plus a random suffix. It is dropped
    after the test, disconnecting whatever the test left connected, so an engine the test forgot to
    dispose does no harm (dispose it anyway)::

        async def test_registry(postgres_url: str) -> None:
            engine = create_async_engine(postgres_url)
            ...
            await engine.dispose()

How it works with pytest-asyncio (``asyncio_mode = "auto"``, fixtures and tests each in their own
function-scoped loop by default): both fixtures are synchronous. The server lives in an event loop of
its own, run by a daemon thread (:class:`BackgroundPostgres`), which starts, stops and makes and drops
databases for every test; the fixtures block on it. So no test needs ``loop_scope="session"``, tests of
any loop scope (and plain functions) can use them, and the server's subprocess never belongs to a loop
that pytest-asyncio closes between tests. Tests reach the server only through its URL, with their own
connections in their own loop. If PostgreSQL is not installed the fixtures fail the test, telling
to run ``scripts/test``, which installs it.
"""

import asyncio
import re
import threading
import uuid
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import pytest

from simulators.infra.postgres import PostgresServer

T = TypeVar("T")

CALL_TIMEOUT_S: Final = 60.0
_NAME_CHARS_RE: Final = re.compile(r"[^a-z0-9_]+")
_NAME_STEM_CHARS: Final = 40


class BackgroundPostgres:
    """A :class:`PostgresServer` whose lifecycle runs in an event loop on a daemon thread of its own.

    ``with BackgroundPostgres() as background:`` starts the thread and the server, and on leaving
    closes the server and stops the thread. :meth:`run` runs a coroutine in that loop and returns its
    result, from any thread that is not the loop's own.
    """

    def __init__(self, server: PostgresServer | None = None, *, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.server = server if server is not None else PostgresServer()
        self._timeout_s = timeout_s
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="postgres-fixture", daemon=True)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` in the server's loop and return its result (:class:`TimeoutError` after ``timeout_s``)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(self._timeout_s)
        except BaseException:
            future.cancel()
            raise

    def __enter__(self) -> Self:
        self._thread.start()
        try:
            self.run(self.server.start())
        except BaseException:
            self._shut_down()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._shut_down()

    def _shut_down(self) -> None:
        try:
            self.run(self.server.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self._timeout_s)
            if not self._thread.is_alive():
                self._loop.close()


def database_name_for(test_name: str) -> str:
    """A new database name for the test ``test_name``: ``t_<test name, made plain>_<8 random hex digits>``."""
    stem = _NAME_CHARS_RE.sub("_", test_name.lower()).strip("_")[:_NAME_STEM_CHARS]
    return f"t_{stem}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def postgres_background() -> Iterator[BackgroundPostgres]:
    """The session's :class:`BackgroundPostgres`; most tests want ``postgres_server`` or ``postgres_url``."""
    if not PostgresServer.available():
        pytest.fail(PostgresServer.not_installed_message(), pytrace=False)
    with BackgroundPostgres() as background:
        yield background


@pytest.fixture(scope="session")
def postgres_server(postgres_background: BackgroundPostgres) -> PostgresServer:
    """The session's PostgreSQL server (see the module docstring for what tests may do with it)."""
    return postgres_background.server


@pytest.fixture
def postgres_url(postgres_background: BackgroundPostgres, request: pytest.FixtureRequest) -> Iterator[str]:
    """The SQLAlchemy URL of a new empty database for this test, dropped after it."""
    server = postgres_background.server
    name = database_name_for(request.node.name)
    url = postgres_background.run(server.create_database(name))
    yield url
    postgres_background.run(server.drop_database(name))
