"""The fleet's REST API served over real HTTP on a free loopback port, for the CLI commands that call it.

The CLI is synchronous (httpx.Client), so tests run it on a worker thread with :func:`invoke`, while
the server answers on the test's event loop.
"""

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import typer
from typer.testing import CliRunner, Result

from fleet.api.app import create_app
from fleet.api.context import ApiContext
from fleet.api.limits import RequestLimits
from fleet.api.server import HttpServer


@asynccontextmanager
async def served_api(context: ApiContext, limits: RequestLimits | None = None) -> AsyncIterator[str]:
    """The API of ``context`` listening on 127.0.0.1; yields its base URL."""
    server = HttpServer(create_app(context, limits), "127.0.0.1", 0, "test-fleet")
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()


async def invoke(app: typer.Typer, args: Sequence[str], *, token: str, fleet: str) -> Result:
    """Run ``outpost fleet …`` as a person would, with the fleet and token from the environment."""
    runner = CliRunner()
    env = {"OUTPOST_FLEET_URL": fleet, "OUTPOST_TOKEN": token}
    return await asyncio.to_thread(runner.invoke, app, list(args), env=env, catch_exceptions=False)
