"""Fixtures for every test: a session's PostgreSQL server and a fresh database per test (tests/postgres_fixture.py),
and real RTSP servers serving H.264 clips (tests/rtsp_server.py).

Hypothesis runs without its timing checks (a per-example deadline, slow input generation): the suite runs on
every core of a small, shared machine, and tests hold no timing thresholds (benchmarks measure time)."""

from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.postgres_fixture", "tests.rtsp_server"]

settings.register_profile("outpost", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("outpost")
