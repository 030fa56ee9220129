"""The ``rtsp_server`` fixture: real RTSP servers (:class:`simulators.infra.rtsp.RtspServer`, GStreamer's
gst-rtsp-server) serving H.264 clips for the camera tests, each closed after its test.

Skips a test when the server cannot run here, unless ``OUTPOST_REQUIRE_RTSP_SERVER=1`` (set by
scripts/test, which installs the Debian packages), which fails it instead: CI never skips them.
"""

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from simulators.infra.rtsp import REQUIRE_ENV, Credentials, Mount, RtspServer, unavailable_reason


def require_rtsp_server() -> None:
    """Skip the calling test if the server cannot run here (fail it if :data:`REQUIRE_ENV` is set)."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class RtspServerFactory(Protocol):
    """The ``rtsp_server`` fixture: makes and starts an :class:`RtspServer`, closed after the test."""

    def __call__(
        self,
        mounts: Mapping[str, Path] | Sequence[Mount],
        *,
        credentials: Credentials | None = None,
        tcp_only: bool = False,
        start: bool = True,
    ) -> RtspServer: ...


@pytest.fixture
def rtsp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspServerFactory]:
    """Makes RTSP servers for the test (started unless ``start=False``) and closes them all afterwards.

    Skips the test if GStreamer's RTSP server is not installed (fails it with ``OUTPOST_REQUIRE_RTSP_SERVER=1``).
    """
    require_rtsp_server()
    servers: list[RtspServer] = []

    def make(
        mounts: Mapping[str, Path] | Sequence[Mount],
        *,
        credentials: Credentials | None = None,
        tcp_only: bool = False,
        start: bool = True,
    ) -> RtspServer:
        directory = tmp_path_factory.mktemp("rtsp-server")
        server = RtspServer(mounts, credentials=credentials, tcp_only=tcp_only, directory=directory)
        servers.append(server)
        if start:
            server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.close()
