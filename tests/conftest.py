"""Fixtures for every test: a session's PostgreSQL server and a fresh database per test (tests/postgres_fixture.py),
and real RTSP servers serving H.264 clips (tests/rtsp_server.py)."""

pytest_plugins = ["tests.postgres_fixture", "tests.rtsp_server"]
