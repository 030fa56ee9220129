"""``outpost dashboards preview`` fails when its previews would show errors: at once, drawing nothing, when the
data source cannot be reached; after drawing them, listing every failed panel, when queries fail.

The data source is a stand-in speaking VictoriaMetrics' and InfluxDB's query APIs over real HTTP, answering
every query with no data; under ``/refusing`` it refuses the queries that name one metric."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from dashboards.catalogue import build_all
from dashboards.cli import app
from dashboards.errors import QueryError, SourceUnreachableError
from dashboards.model import Flavour
from dashboards.preview.interpolation import Interpolation, TimeRange
from dashboards.preview.sources import InfluxSource, PromSource, Source
from simulators.infra.ports import LOOPBACK, free_port

runner = CliRunner()
REFUSED_METRIC = "alerts_open"
"""Under ``/refusing``, the stand-in refuses every query naming this metric (PromQL and InfluxQL names)."""
OPTION = {Flavour.PROMETHEUS: "--prometheus", Flavour.INFLUXDB: "--influxdb"}
TARGET_QUERY = {Flavour.PROMETHEUS: "expr", Flavour.INFLUXDB: "query"}


class _DataSource(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path.removeprefix("/refusing")
        query = parse_qs(url.query).get("q" if path == "/query" else "query", [""])[0]
        refused = path != url.path and REFUSED_METRIC in query
        if path == "/query":  # InfluxDB: errors come in the results, with 200
            body: object = {"results": [{"statement_id": 0, **({"error": "no such metric"} if refused else {})}]}
            self._answer(200, body)
        elif refused:
            self._answer(400, {"status": "error", "errorType": "bad_data", "error": "no such metric"})
        else:
            self._answer(200, {"status": "success", "data": {"resultType": "matrix", "result": []}})

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # the stand-in keeps quiet
        pass


@pytest.fixture(scope="module")
def data_source() -> Iterator[str]:
    server = ThreadingHTTPServer((LOOPBACK, 0), _DataSource)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("flavour", list(Flavour))
def test_an_unreachable_source_fails_the_preview_at_once_drawing_nothing(flavour: Flavour, tmp_path: Path) -> None:
    url = f"http://{LOOPBACK}:{free_port()}"  # nothing listens there

    result = runner.invoke(app, ["preview", OPTION[flavour], url, "--out", str(tmp_path / "previews")])

    assert result.exit_code == 1
    assert f"preview failed: cannot reach the data source at {url}" in result.stderr
    assert not (tmp_path / "previews").exists()


def test_a_source_url_that_is_no_http_url_fails_the_preview(tmp_path: Path) -> None:
    result = runner.invoke(app, ["preview", "--prometheus", "127.0.0.1:8428", "--out", str(tmp_path / "previews")])

    assert result.exit_code == 1
    assert "preview failed: cannot reach the data source at 127.0.0.1:8428" in result.stderr
    assert not (tmp_path / "previews").exists()


@pytest.mark.parametrize("flavour", list(Flavour))
def test_failed_panels_are_drawn_then_listed_and_fail_the_preview(
    flavour: Flavour, data_source: str, tmp_path: Path
) -> None:
    dashboards = build_all((flavour,))
    refused = sorted(
        f"{d.uid} / {panel['title']}"
        for d in dashboards
        for panel in d.model["panels"]
        if any(REFUSED_METRIC in str(target[TARGET_QUERY[flavour]]) for target in panel.get("targets", []))
    )
    assert refused, f"no panel queries {REFUSED_METRIC}: choose another metric for the stand-in to refuse"

    result = runner.invoke(app, ["preview", OPTION[flavour], f"{data_source}/refusing", "--out", str(tmp_path)])

    assert result.exit_code == 1
    header, *listed = result.stderr.splitlines()
    assert header == f"preview failed: panels showing an error instead of data ({len(refused)}):"
    assert sorted(line.strip().split(": ", 1)[0] for line in listed) == refused
    assert all("no such metric" in line for line in listed)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(f"{d.uid}.png" for d in dashboards)
    assert result.stdout.splitlines() == [f"wrote {tmp_path / d.uid}.png" for d in dashboards]


@pytest.mark.parametrize("flavour", list(Flavour))
def test_a_preview_whose_every_query_is_answered_succeeds(flavour: Flavour, data_source: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["preview", OPTION[flavour], data_source, "--out", str(tmp_path)])

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(f"{d.uid}.png" for d in build_all((flavour,)))


def _source(flavour: Flavour, transport: httpx.MockTransport) -> tuple[Source, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=transport)
    interpolation = Interpolation(TimeRange(0, 3_600_000))
    url = "http://tsdb.county.example"
    source: Source = (
        PromSource(client, url, interpolation)
        if flavour is Flavour.PROMETHEUS
        else InfluxSource(client, url, interpolation, "outpost")
    )
    return source, client


def _raise(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("flavour", list(Flavour))
@pytest.mark.parametrize(
    ("failure", "unreachable"),
    [
        (httpx.ConnectError("connection refused"), True),
        (httpx.ConnectTimeout("no SYN-ACK"), True),
        (httpx.RemoteProtocolError("closed without an answer"), True),
        (httpx.ReadTimeout("a heavy query"), False),
    ],
    ids=["refused", "connect-timeout", "no-answer", "read-timeout"],
)
async def test_only_a_query_that_got_no_answer_at_all_means_the_source_is_unreachable(
    flavour: Flavour, failure: httpx.HTTPError, *, unreachable: bool
) -> None:
    source, client = _source(flavour, _raise(failure))
    target = {"refId": "A", TARGET_QUERY[flavour]: "SELECT 1" if flavour is Flavour.INFLUXDB else "up"}

    async with client:
        with pytest.raises(QueryError) as caught:
            await source.run({"type": "stat"}, target)

    assert isinstance(caught.value, SourceUnreachableError) is unreachable


async def test_an_influxdb_answer_that_is_no_json_fails_the_panel() -> None:
    source, client = _source(Flavour.INFLUXDB, httpx.MockTransport(lambda _: httpx.Response(200, text="<html>")))

    async with client:
        with pytest.raises(QueryError, match="answered 'SELECT 1' with '<html>'"):
            await source.run({"type": "stat"}, {"refId": "A", "query": "SELECT 1"})
