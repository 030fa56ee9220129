"""Health history: the query's bounds, the SQL reader on the embedded store, and GET /gateways/{id}/health."""

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import AnyHttpUrl, SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from fleet.access.roles import Actor, Role
from fleet.errors import InvalidRequestError
from fleet.gateways.registry import Registry
from fleet.settings import InfluxSettings, TimeSeriesSettings
from fleet.timeseries.embedded import EmbeddedSink
from fleet.timeseries.history import (
    HEALTH_FIELDS,
    MAX_RAW_RANGE_MS,
    MAX_SAMPLES,
    HealthQuery,
    HealthSample,
)
from fleet.timeseries.history_factory import history_for
from fleet.timeseries.history_influxql import InfluxqlHealthHistory
from fleet.timeseries.history_promql import PromqlHealthHistory
from fleet.timeseries.history_sql import SqlHealthHistory
from fleet.timeseries.points import PointList, health_point
from simulators.infra.ports import free_port
from tests.fleet.api_client import api_client, api_context
from tests.fleet.health_history_data import (
    BASE_MS,
    GATEWAY,
    PERIOD_MS,
    STEP_MS,
    UNTIL_MS,
    VILLAGE,
    assert_samples,
    expected_raw,
    expected_stepped,
    heartbeat,
    seed_points,
)
from tests.fleet.helpers import FakeClock

HOUR_MS = 3_600_000


def test_the_readers_know_every_field_a_heartbeat_is_written_with() -> None:
    point = health_point(VILLAGE, heartbeat(GATEWAY, 2, BASE_MS))

    assert sorted(name for name, _ in point.fields) == sorted(HEALTH_FIELDS)
    assert sorted(HEALTH_FIELDS) == sorted(f for f in HealthSample.__dataclass_fields__ if f != "ts_ms")


@pytest.mark.parametrize(
    ("since", "until", "step", "limit", "complaint"),
    [
        (BASE_MS, BASE_MS, None, 10, "must be after since"),
        (BASE_MS, BASE_MS - 1, None, 10, "must be after since"),
        (BASE_MS, BASE_MS + MAX_RAW_RANGE_MS + 1, None, 10, "needs a step"),
        (BASE_MS, BASE_MS + HOUR_MS, 999, 10, "step must be between"),
        (BASE_MS, BASE_MS + 32 * 24 * HOUR_MS, HOUR_MS, 10, "must not exceed 31 days"),
        (BASE_MS, BASE_MS + (MAX_SAMPLES + 1) * 1000, 1000, 10, "choose a longer step"),
        (BASE_MS, BASE_MS + HOUR_MS, None, 0, "limit"),
        (BASE_MS, BASE_MS + HOUR_MS, None, MAX_SAMPLES + 1, "limit"),
    ],
)
def test_a_query_out_of_bounds_is_refused_naming_the_bound(
    since: int, until: int, step: int | None, limit: int, complaint: str
) -> None:
    with pytest.raises(InvalidRequestError, match=complaint):
        HealthQuery.of(GATEWAY, since, until, step, limit)


def test_a_stepped_query_ends_with_a_whole_window() -> None:
    query = HealthQuery.of(GATEWAY, BASE_MS, BASE_MS + 25_000, 10_000, 10)

    assert (query.since_ms, query.until_ms) == (BASE_MS, BASE_MS + 30_000)
    assert query.window_start(BASE_MS + 19_999) == BASE_MS + 10_000


def test_the_settings_choose_the_reader(tmp_path: Path) -> None:
    def influx(language: str) -> InfluxSettings:
        return InfluxSettings.model_validate({"url": "http://127.0.0.1:8428", "token": "t", "query_language": language})

    assert isinstance(history_for(TimeSeriesSettings(embedded_path=tmp_path / "ts.db")), SqlHealthHistory)
    assert isinstance(history_for(TimeSeriesSettings(influx=influx("promql"))), PromqlHealthHistory)
    assert isinstance(history_for(TimeSeriesSettings(influx=influx("influxql"))), InfluxqlHealthHistory)
    default = InfluxSettings(url=AnyHttpUrl("http://127.0.0.1:8428"), token=SecretStr("t"))
    assert default.query_language == "promql"  # VictoriaMetrics, the server the fleet is tested against


@pytest.fixture
async def store(tmp_path: Path) -> SqlHealthHistory:
    path = tmp_path / "timeseries.db"
    sink = EmbeddedSink(path)
    await sink.write([PointList(seed_points())])
    await sink.close()
    return SqlHealthHistory(path)


async def test_sql_reader_returns_every_heartbeat_of_the_gateway_in_time_order(store: SqlHealthHistory) -> None:
    page = await store.health(HealthQuery.of(GATEWAY, BASE_MS, UNTIL_MS, None, MAX_SAMPLES))

    assert_samples(page.samples, expected_raw())
    assert not page.truncated


async def test_sql_reader_pages_raw_samples(store: SqlHealthHistory) -> None:
    first = await store.health(HealthQuery.of(GATEWAY, BASE_MS, UNTIL_MS, None, 5))
    rest = await store.health(HealthQuery.of(GATEWAY, first.samples[-1].ts_ms + 1, UNTIL_MS, None, 100))

    assert first.truncated
    assert not rest.truncated
    assert_samples([*first.samples, *rest.samples], expected_raw())


async def test_sql_reader_averages_each_step_window(store: SqlHealthHistory) -> None:
    page = await store.health(HealthQuery.of(GATEWAY, BASE_MS, UNTIL_MS, STEP_MS, MAX_SAMPLES))

    assert_samples(page.samples, expected_stepped())


async def test_sql_reader_finds_nothing_before_anything_was_written(tmp_path: Path) -> None:
    page = await SqlHealthHistory(tmp_path / "never-written.db").health(
        HealthQuery.of(GATEWAY, BASE_MS, UNTIL_MS, None, 10)
    )

    assert page.samples == []


# --- the API ---------------------------------------------------------------------------------


@pytest.fixture
async def api(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, store: SqlHealthHistory
) -> AsyncIterator[httpx.AsyncClient]:
    await Registry(sessions, clock).register(VILLAGE, GATEWAY)
    context = dataclasses.replace(api_context(sessions, clock), health_history=store)
    async with api_client(context) as client:
        yield client


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


async def test_health_history_of_a_gateway_through_the_api(api: httpx.AsyncClient) -> None:
    response = await api.get(f"/gateways/{GATEWAY}/health", params={"since": BASE_MS, "until": _iso(UNTIL_MS)})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["since_ms"], body["until_ms"], body["step_ms"], body["store"]) == (BASE_MS, UNTIL_MS, None, "embedded")
    assert not body["truncated"]
    assert_samples([HealthSample(**sample) for sample in body["samples"]], expected_raw())


async def test_health_history_in_steps_through_the_api(api: httpx.AsyncClient) -> None:
    response = await api.get(
        f"/gateways/{GATEWAY}/health", params={"since": _iso(BASE_MS), "until": UNTIL_MS, "step": "30s"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["step_ms"] == STEP_MS
    assert_samples([HealthSample(**s) for s in response.json()["samples"]], expected_stepped())


async def test_health_history_pages_say_when_more_follow(api: httpx.AsyncClient) -> None:
    response = await api.get(f"/gateways/{GATEWAY}/health", params={"since": BASE_MS, "until": UNTIL_MS, "limit": 4})

    body = response.json()
    assert body["truncated"]
    assert [s["ts_ms"] for s in body["samples"]] == [BASE_MS + i * PERIOD_MS for i in range(4)]


async def test_health_history_of_an_unknown_gateway_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/gateways/gw-nobody/health", params={"since": BASE_MS, "until": UNTIL_MS})

    assert response.status_code == 404
    assert "gw-nobody" in response.json()["detail"]


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({"since": "yesterday"}, "epoch milliseconds or ISO-8601"),
        ({"since": "2026-11-01T00:00:00"}, "time zone"),
        ({"since": UNTIL_MS, "until": BASE_MS}, "must be after since"),
        ({"since": BASE_MS, "until": BASE_MS + 2 * 24 * HOUR_MS}, "needs a step"),
        ({"since": BASE_MS, "until": UNTIL_MS, "step": "5 minutes"}, "step must be"),
        ({"since": 0, "until": 40 * 24 * HOUR_MS, "step": "1h"}, "31 days"),
    ],
)
async def test_health_history_refuses_times_and_ranges_out_of_bounds(
    api: httpx.AsyncClient, params: dict[str, str | int], complaint: str
) -> None:
    response = await api.get(f"/gateways/{GATEWAY}/health", params=params)

    assert response.status_code == 422
    assert complaint in response.json()["detail"]


async def test_health_history_defaults_to_the_last_hour(api: httpx.AsyncClient) -> None:
    before = int(datetime.now(UTC).timestamp() * 1000)
    body = (await api.get(f"/gateways/{GATEWAY}/health")).json()

    assert body["until_ms"] - body["since_ms"] == HOUR_MS
    assert body["until_ms"] >= before
    assert body["samples"] == []  # the seeded heartbeats are from another time


@pytest.mark.parametrize("role", list(Role))
async def test_every_role_may_read_health_history_and_nobody_without_a_token(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, store: SqlHealthHistory, role: Role
) -> None:
    await Registry(sessions, clock).register(VILLAGE, GATEWAY)
    context = dataclasses.replace(api_context(sessions, clock), health_history=store)
    issued = await context.tokens.issue(Actor("test-admin", Role.ADMIN), f"reader-{role.value}", role)
    path, params = f"/gateways/{GATEWAY}/health", {"since": BASE_MS, "until": UNTIL_MS}
    async with api_client(context, issued.secret) as client:
        assert (await client.get(path, params=params)).status_code == 200
    async with api_client(context, None) as client:
        assert (await client.get(path, params=params)).status_code == 401


async def test_an_unreachable_time_series_server_answers_503(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    await Registry(sessions, clock).register(VILLAGE, GATEWAY)
    nothing_listens = InfluxSettings(url=AnyHttpUrl(f"http://127.0.0.1:{free_port()}"), token=SecretStr("t"))
    for reader in (PromqlHealthHistory(nothing_listens), InfluxqlHealthHistory(nothing_listens)):
        context = dataclasses.replace(api_context(sessions, clock), health_history=reader)
        async with api_client(context) as client:
            response = await client.get(f"/gateways/{GATEWAY}/health", params={"since": BASE_MS, "until": UNTIL_MS})

        assert response.status_code == 503
        assert "unreachable" in response.json()["detail"]
