"""The demo's output never blocks or breaks the code that writes it, whatever became of its reader."""

import os
from collections.abc import Iterator
from typing import TextIO

import pytest

from simulators.demo.output import DemoConsole, Outlet

LINE = "gateway gw-dongshan of village dongshan starting with 7 devices (config version 0)\n"


@pytest.fixture
def pipe() -> Iterator[tuple[int, TextIO]]:
    """A pipe: its read end (each test closes it), and a stream onto its write end."""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stream:
        yield read_end, stream


def _is_devnull(fd: int) -> bool:
    info, devnull = os.fstat(fd), os.stat(os.devnull)
    return (info.st_dev, info.st_ino) == (devnull.st_dev, devnull.st_ino)


def test_a_console_whose_reader_went_away_falls_silent_instead_of_raising(pipe: tuple[int, TextIO]) -> None:
    read_end, stream = pipe
    os.close(read_end)  # as `| head` does once it has its lines
    outlet = Outlet(stream)
    console = DemoConsole(file=outlet)  # type: ignore[arg-type] # Rich types its file as IO[str]
    console.print(LINE)  # Rich's own console raises SystemExit here, from whatever code was logging
    assert outlet.drain()  # the writing thread has met the closed pipe
    for _ in range(100):
        console.print(LINE)
    assert outlet.gone
    assert _is_devnull(stream.fileno())  # later writes onto it, Python's own at exit included, succeed
    assert outlet.gone_fds == {stream.fileno()}  # not stdout nor stderr: they lead elsewhere
    outlet.close()


def test_writing_never_waits_for_a_reader_that_does_not_read(pipe: tuple[int, TextIO]) -> None:
    read_end, stream = pipe
    outlet = Outlet(stream, limit_bytes=64 * 1024)
    for _ in range(50_000):  # about 4 MB, far more than the pipe holds: a blocking write would stop here
        outlet.write(LINE)
    assert outlet.dropped_bytes > 0
    assert not outlet.gone  # the reader is there, only slow
    assert not outlet.drain(timeout_s=0)
    outlet.close(timeout_s=0)  # gives up on what waits
    assert _is_devnull(stream.fileno())  # a last write at exit would block on the reader: it goes nowhere
    os.close(read_end)  # the writing thread, blocked on the full pipe, gets EPIPE
    assert outlet.drain()  # and is done


def test_a_reader_reads_what_was_written(pipe: tuple[int, TextIO]) -> None:
    read_end, stream = pipe
    outlet = Outlet(stream)
    for index in range(10):
        outlet.write(f"{index} {LINE}")
    outlet.close()
    stream.close()
    with os.fdopen(read_end, "r") as reader:
        assert reader.read() == "".join(f"{index} {LINE}" for index in range(10))
