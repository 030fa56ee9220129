"""PostgresServer runs a throwaway cluster on a loopback port that SQLAlchemy uses, keeps data across restarts and
kills, and cleans up; the session fixtures give each test a fresh database of its own."""

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from simulators.infra import postgres
from simulators.infra.errors import BinaryNotFoundError, ServerStartError, ServerStateError
from simulators.infra.postgres import PostgresServer, check_database_name, postgres_bin_dir
from tests.postgres_fixture import database_name_for


def require_postgres() -> None:
    if not PostgresServer.available():
        pytest.fail(PostgresServer.not_installed_message(), pytrace=False)


@pytest.fixture
async def pg() -> AsyncIterator[PostgresServer]:
    require_postgres()
    async with PostgresServer() as server:
        yield server


async def query_one(url: str, sql: str) -> object:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text(sql))).scalar_one()
    finally:
        await engine.dispose()


async def execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def process_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def make_executables(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True)
    for name in names:
        path = directory / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)


def test_bin_dir_is_on_path_else_the_newest_debian_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    versions = tmp_path / "lib"
    make_executables(versions / "9.6" / "bin", "postgres", "initdb")
    make_executables(versions / "15" / "bin", "postgres", "initdb")
    make_executables(versions / "16" / "bin", "postgres")  # no initdb: not usable
    monkeypatch.setattr(postgres, "POSTGRES_VERSIONS_DIR", versions)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert postgres_bin_dir() == versions / "15" / "bin"

    make_executables(tmp_path / "local", "postgres", "initdb")
    monkeypatch.setenv("PATH", str(tmp_path / "local"))
    assert postgres_bin_dir() == tmp_path / "local"


async def test_missing_binary_gives_a_clear_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(postgres, "POSTGRES_VERSIONS_DIR", tmp_path / "nowhere")
    assert not PostgresServer.available()
    server = PostgresServer()
    with pytest.raises(BinaryNotFoundError, match=r"PostgreSQL is not installed .*run scripts/test, which installs it"):
        async with server:
            pass
    assert not server.directory.exists()


def test_database_names_must_be_plain_identifiers() -> None:
    assert check_database_name("fleet_registry_1") == "fleet_registry_1"
    for bad in ("", "1st", "drop me", 'x"; DROP DATABASE postgres; --', "a" * 64):
        with pytest.raises(ValueError, match="not a plain database name"):
            check_database_name(bad)
    assert len(database_name_for("test_x[" + "p" * 100 + "]")) <= 63
    check_database_name(database_name_for("test_two_tests_get_fresh_databases[1]"))


@pytest.mark.integration
async def test_serves_sqlalchemy_keeps_data_across_restart_and_close_removes_it(pg: PostgresServer) -> None:
    url = await pg.create_database("registry")
    assert url == f"postgresql+asyncpg://outpost@127.0.0.1:{pg.port}/registry"
    assert await pg.create_database("registry") == url  # already there: kept as it is
    await execute(url, "CREATE TABLE sites (name text PRIMARY KEY)", "INSERT INTO sites VALUES ('north')")
    assert await query_one(url, "SHOW server_encoding") == "UTF8"
    assert await query_one(url, "SHOW fsync") == "off"
    assert await query_one(url, "SELECT current_user") == "outpost"
    pid, port = pg.pid, pg.port
    assert pid is not None
    if os.geteuid() == 0:
        assert process_uid(pid) != 0, "postgres must not run as root"
    assert (pg.socket_directory / f".s.PGSQL.{port}").exists()

    await pg.restart()

    assert (pg.port, pg.pid != pid) == (port, True)
    assert await query_one(url, "SELECT name FROM sites") == "north"
    directory = pg.directory
    await pg.close()
    assert not directory.exists()
    with pytest.raises(ServerStateError):
        await pg.create_database("late")


@pytest.mark.integration
async def test_kill_then_start_recovers_flushed_commits(pg: PostgresServer) -> None:
    url = await pg.create_database("crash")
    # With synchronous_commit off a commit is flushed to the WAL within ~0.6 s; this one is flushed at once.
    await execute(url, "CREATE TABLE t (n int)", "SET LOCAL synchronous_commit = on", "INSERT INTO t VALUES (7)")

    await pg.kill()
    assert not pg.running
    await pg.start()

    assert await query_one(url, "SELECT sum(n) FROM t") == 7


@pytest.mark.integration
async def test_drop_database_disconnects_clients_and_is_idempotent(postgres_server: PostgresServer) -> None:
    # The session's server runs in another thread's loop; making and dropping databases works from this one.
    pg = postgres_server
    name = database_name_for("doomed")
    await pg.create_database(name)
    lingering = await asyncpg.connect(pg.dsn(name))
    try:
        await pg.drop_database(name)
        await pg.drop_database(name)
        assert lingering.is_closed() or not await _still_usable(lingering)
    finally:
        await lingering.close()
    exists = f"SELECT count(*) FROM pg_database WHERE datname = '{name}'"
    assert await query_one(pg.database_url("postgres"), exists) == 0


async def _still_usable(connection: asyncpg.Connection) -> bool:
    try:
        await connection.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    return True


@pytest.mark.integration
async def test_start_failure_reports_the_server_output() -> None:
    require_postgres()
    server = PostgresServer(settings={"no_such_setting": "1"})
    try:
        with pytest.raises(ServerStartError, match=r"(?s)exited with code \d+.*no_such_setting"):
            await server.start()
        assert not server.running
    finally:
        await server.close()
    assert not server.directory.exists()


@pytest.mark.integration
async def test_start_fails_on_a_taken_port(pg: PostgresServer) -> None:
    with pytest.raises(ServerStartError, match="Address already in use"):
        async with PostgresServer(port=pg.port):
            pass


SEEN_URLS: list[str] = []


@pytest.mark.integration
@pytest.mark.parametrize("run", [1, 2])
async def test_two_tests_get_fresh_databases(run: int, postgres_url: str, postgres_server: PostgresServer) -> None:
    assert postgres_url.startswith(f"postgresql+asyncpg://outpost@127.0.0.1:{postgres_server.port}/t_")
    assert postgres_url not in SEEN_URLS
    tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    assert await query_one(postgres_url, tables) == 0
    await execute(postgres_url, "CREATE TABLE marker (run int)", f"INSERT INTO marker VALUES ({run})")
    if SEEN_URLS:  # the earlier run's database was dropped after it
        earlier = SEEN_URLS[-1].rpartition("/")[2]
        exists = f"SELECT count(*) FROM pg_database WHERE datname = '{earlier}'"
        assert await query_one(postgres_server.database_url("postgres"), exists) == 0
    SEEN_URLS.append(postgres_url)
