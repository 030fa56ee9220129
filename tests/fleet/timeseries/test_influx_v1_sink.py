"""The v1 write sink against a real HTTP server on loopback: what it sends, and how each answer is taken.

The server here answers as the test scripts it (an InfluxDB 1.x's statuses and bodies); the sink against a
real InfluxDB 1.6 is in tests/integration/test_timeseries_influxdb_v1.py.
"""

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from fastapi import FastAPI, Request, Response
from pydantic import AnyHttpUrl, SecretStr, ValidationError

from fleet.api.server import HttpServer
from fleet.errors import TimeSeriesRejectedError, TimeSeriesUnavailableError
from fleet.settings import FleetSettings, InfluxSettings, TimeSeriesSettings
from fleet.timeseries.factory import sink_for
from fleet.timeseries.influx import InfluxSink
from fleet.timeseries.influx_v1 import InfluxV1Sink
from fleet.timeseries.points import Point, PointList
from simulators.infra.ports import LOOPBACK, free_port

TS = 1_700_000_000_000
TOKEN = "influx-token"


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    params: dict[str, str]
    authorization: str | None
    content_type: str | None
    body: str


@dataclass
class ScriptedInflux:
    """Takes any POST, records it, and answers the next scripted (status, body); 204 once they are used up."""

    answers: list[tuple[int, str]] = field(default_factory=list)
    held: asyncio.Event | None = None
    """While set to an unset event, requests wait for it (a server too slow to answer)."""
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def take(request: Request) -> Response:
            self.received.append(
                Received(
                    request.url.path,
                    dict(request.query_params),
                    request.headers.get("authorization"),
                    request.headers.get("content-type"),
                    (await request.body()).decode(),
                )
            )
            if self.held is not None:
                await self.held.wait()
            status, body = self.answers.pop(0) if self.answers else (204, "")
            return Response(status_code=status, content=body, media_type="application/json")

        return app


@pytest.fixture
async def influx() -> AsyncIterator[ScriptedInflux]:
    scripted = ScriptedInflux()
    server = HttpServer(scripted.app(), LOOPBACK, 0, "scripted-influx")
    await server.start()
    scripted.url = server.url
    try:
        yield scripted
    finally:
        if scripted.held is not None:
            scripted.held.set()
        await server.stop()


def v1_settings(url: str, **changes: object) -> InfluxSettings:
    return InfluxSettings.model_validate(
        {"url": AnyHttpUrl(url), "token": SecretStr(TOKEN), "write_api": "v1", **changes}
    )


def chunk(n: int, start: int = 0) -> PointList:
    tags = (("device", "cam-1"), ("gateway", "gw-01"), ("village", "lake side"))
    return PointList([Point("telemetry", tags, (("line_in", float(i)),), TS + i) for i in range(start, start + n)])


async def test_the_v2_write_api_stays_the_default() -> None:
    settings = InfluxSettings(url=AnyHttpUrl("http://tsdb:8086"), token=SecretStr(TOKEN))
    sink = sink_for(TimeSeriesSettings(influx=settings))  # influxdb-client wants a running loop
    await sink.close()

    assert settings.write_api == "v2"
    assert isinstance(sink, InfluxSink)


async def test_write_api_v1_picks_the_v1_sink() -> None:
    sink = sink_for(TimeSeriesSettings(influx=v1_settings("http://tsdb:8086")))
    await sink.close()

    assert isinstance(sink, InfluxV1Sink)
    assert sink.name == "influxdb-v1"


def test_write_api_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPOST_FLEET_TIMESERIES__INFLUX__URL", "http://tsdb:8086")
    monkeypatch.setenv("OUTPOST_FLEET_TIMESERIES__INFLUX__TOKEN", TOKEN)
    monkeypatch.setenv("OUTPOST_FLEET_TIMESERIES__INFLUX__WRITE_API", "v1")

    influx = FleetSettings(environment="development").timeseries.influx

    assert influx is not None
    assert influx.write_api == "v1"


@pytest.mark.parametrize("value", ["v3", "1", "V1"])
def test_an_unknown_write_api_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="write_api"):
        v1_settings("http://tsdb:8086", write_api=value)


def test_v1_still_needs_a_token_so_none_is_defaulted() -> None:
    with pytest.raises(ValidationError, match="token"):
        InfluxSettings.model_validate({"url": "http://tsdb:8086", "write_api": "v1"})


async def test_a_batch_is_one_post_to_write_in_the_bucket_database_with_ms_precision(influx: ScriptedInflux) -> None:
    sink = InfluxV1Sink(v1_settings(influx.url, bucket="county"))
    first, second = chunk(2), chunk(3, start=2)
    try:
        await sink.write([first, second])
    finally:
        await sink.close()

    [request] = influx.received
    assert request.path == "/write"
    assert request.params == {"db": "county", "precision": "ms"}
    assert request.authorization == f"Token {TOKEN}"
    assert request.content_type == "text/plain; charset=utf-8"
    assert request.body.split("\n") == [*first.lines(), *second.lines()]
    assert request.body.split("\n")[0] == rf"telemetry,device=cam-1,gateway=gw-01,village=lake\ side line_in=0.0 {TS}"


async def test_influxql_database_and_username_give_the_database_and_basic_auth(influx: ScriptedInflux) -> None:
    settings = v1_settings(influx.url + "/influx/", influxql_database="outpost_1x", influxql_username="fleet")
    sink = InfluxV1Sink(settings)
    try:
        await sink.write([chunk(1)])
    finally:
        await sink.close()

    [request] = influx.received
    assert request.path == "/influx/write"  # a base URL's path (a reverse proxy's prefix) is kept
    assert request.params["db"] == "outpost_1x"
    assert request.authorization == "Basic " + base64.b64encode(f"fleet:{TOKEN}".encode()).decode()


async def test_an_empty_batch_sends_nothing(influx: ScriptedInflux) -> None:
    sink = InfluxV1Sink(v1_settings(influx.url))
    try:
        await sink.write([])
    finally:
        await sink.close()

    assert influx.received == []


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, '{"error":"partial write: field type conflict: input field \\"line_in\\" dropped=1"}'),
        (400, '{"error":"unable to parse \'telemetry line_in=nan 1\': invalid number"}'),
        (413, '{"error":"Request Entity Too Large"}'),
        (422, '{"error":"unprocessable"}'),
    ],
)
async def test_points_the_server_refuses_are_rejected_with_its_reason(
    influx: ScriptedInflux, status: int, body: str
) -> None:
    influx.answers.append((status, body))
    sink = InfluxV1Sink(v1_settings(influx.url))
    try:
        with pytest.raises(TimeSeriesRejectedError) as refused:
            await sink.write([chunk(2)])
    finally:
        await sink.close()

    assert f"answered {status}: {body}" in str(refused.value)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, '{"error":"database not found: \\"outpost\\""}'),
        (401, '{"error":"authorization failed"}'),
        (403, '{"error":"forbidden"}'),
        (429, '{"error":"too many requests"}'),
        (500, '{"error":"timeout"}'),
        (503, '{"error":"engine is closed"}'),
    ],
)
async def test_what_may_change_without_the_points_changing_is_unavailable(
    influx: ScriptedInflux, status: int, body: str
) -> None:
    influx.answers.append((status, body))
    sink = InfluxV1Sink(v1_settings(influx.url))
    try:
        with pytest.raises(TimeSeriesUnavailableError) as unavailable:
            await sink.write([chunk(2)])
        await sink.write([chunk(2)])  # the same sink writes once the server takes points again
    finally:
        await sink.close()

    assert f"answered {status}: {body}" in str(unavailable.value)
    assert len(influx.received) == 2


async def test_a_long_error_body_is_cut_to_200_characters(influx: ScriptedInflux) -> None:
    reason = "partial write: " + "x" * 500
    influx.answers.append((400, reason))
    sink = InfluxV1Sink(v1_settings(influx.url))
    try:
        with pytest.raises(TimeSeriesRejectedError) as refused:
            await sink.write([chunk(1)])
    finally:
        await sink.close()

    assert str(refused.value).endswith(f"answered 400: {reason[:200]}")


async def test_a_server_not_listening_is_unavailable() -> None:
    sink = InfluxV1Sink(v1_settings(f"http://{LOOPBACK}:{free_port()}"))
    try:
        with pytest.raises(TimeSeriesUnavailableError, match="unreachable"):
            await sink.write([chunk(1)])
    finally:
        await sink.close()


async def test_a_server_that_does_not_answer_in_time_is_unavailable(influx: ScriptedInflux) -> None:
    influx.held = asyncio.Event()
    sink = InfluxV1Sink(v1_settings(influx.url, timeout_s=0.2))
    try:
        with pytest.raises(TimeSeriesUnavailableError, match="unreachable: ReadTimeout"):
            await sink.write([chunk(1)])
    finally:
        await sink.close()
