"""``outpost demo`` ends, with its servers, whatever its output is connected to.

A user's ``outpost demo --villages 2 2>&1 | head -40`` ran on for over ten minutes, deaf to ``--duration``,
SIGINT and SIGTERM, and left Mosquitto processes behind. The real command runs here as a child process,
its stdout and stderr on a pipe, with two villages of firmware nodes as in the report: a reader that
closes the pipe after a few lines, and a reader that never reads (the pipe full from the start, as
behind a pager or a terminal on hold) while a signal asks the demo to stop.

Every process the demo starts inherits a mark in its environment; none may be left once it has exited.
The bound on each run only detects a hang: a demo that ends does so well within it.
"""

import asyncio
import contextlib
import fcntl
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.integration.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]  # above the hang bounds: they fail first

HANG_S = 120.0
"""A demo that has not exited by then hangs (it ends within seconds of being asked, or of its --duration)."""
MARK = "OUTPOST_TEST_DEMO_RUN"
CLOSED_PIPE_EXIT = 141  # 128 + SIGPIPE, as the shell reports a tool that a closed pipe ended


def _marked(mark: str) -> set[int]:
    """The processes whose environment carries ``mark`` (the demo and everything it started)."""
    entry = f"{MARK}={mark}".encode() + b"\0"
    found = set()
    for process in Path("/proc").iterdir():
        if process.name.isdigit():
            with contextlib.suppress(OSError):
                if entry in (process / "environ").read_bytes():
                    found.add(int(process.name))
    return found


@contextlib.asynccontextmanager
async def _demo(write_end: int, *args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``outpost demo --villages 2 --broker mosquitto ARGS`` (three firmware nodes in each village), its stdout and
    stderr onto ``write_end``; on the way out, whatever it left running is killed (the test has failed then)."""
    mark = uuid.uuid4().hex
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "outpost_cli", "demo", "--villages", "2", "--broker", "mosquitto", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=write_end, stderr=write_end, env={**os.environ, MARK: mark},
    )  # fmt: skip
    os.close(write_end)
    try:
        yield process, mark
    finally:
        for pid in _marked(mark):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await process.wait()


async def _exits(demo: asyncio.subprocess.Process) -> None:
    try:
        async with asyncio.timeout(HANG_S):
            await demo.wait()
    except TimeoutError:
        pytest.fail(f"the demo did not exit within {HANG_S:g} s: it hangs")


def _started(demo: asyncio.subprocess.Process, mark: str, processes: int) -> Callable[[], Awaitable[bool]]:
    """Whether the demo has started (at least) ``processes`` processes."""

    async def check() -> bool:
        return len(_marked(mark) - {demo.pid}) >= processes

    return check


async def test_a_demo_whose_reader_closes_the_pipe_after_a_few_lines_exits_quietly_and_stops_its_servers() -> None:
    read_end, write_end = os.pipe()
    with open(read_end, "rb") as reader:  # noqa: ASYNC230 - a pipe, read a line at a time in a thread
        async with _demo(write_end, "--duration", "20") as (demo, mark):
            async with asyncio.timeout(HANG_S):
                lines = [await asyncio.to_thread(reader.readline) for _ in range(5)]
            assert all(lines), "the demo's output ended before five lines"
            await eventually(_started(demo, mark, 1), HANG_S, "the demo's first broker")  # it must go with the demo
            reader.close()  # as `| head -5` does: the reader is gone, the pipe broken
            await _exits(demo)
            assert demo.returncode == CLOSED_PIPE_EXIT  # quietly, as a closed pipe ends a Unix tool
            assert _marked(mark) == set(), "processes the demo started outlived it"


def _fill(write_end: int) -> None:
    """Fill the pipe until a write would block, as a reader that stopped reading leaves it."""
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        for chunk in (b"x" * 4096, b"x"):  # whole pages, then whatever room is left
            with contextlib.suppress(BlockingIOError):
                while True:
                    os.write(write_end, chunk)
    finally:
        fcntl.fcntl(write_end, fcntl.F_SETFL, flags)  # the demo gets the pipe as a shell would give it: blocking


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_a_signal_ends_the_demo_and_its_servers_while_nobody_reads_its_output(signum: signal.Signals) -> None:
    read_end, write_end = os.pipe()
    try:
        _fill(write_end)  # every write of the demo's would block: nobody reads the pipe, ever
        async with _demo(write_end) as (demo, mark):  # no --duration: it runs until told
            await eventually(_started(demo, mark, 3), HANG_S, "the county's broker and both villages'")
            demo.send_signal(signum)
            await _exits(demo)
            assert demo.returncode == 0
            assert _marked(mark) == set(), "processes the demo started outlived it"
    finally:
        os.close(read_end)
