"""Fixtures for every test: a session's PostgreSQL server and a fresh database per test (tests/postgres_fixture.py)."""

pytest_plugins = ["tests.postgres_fixture"]
