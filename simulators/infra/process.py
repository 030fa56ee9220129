"""Server child processes: output appended to a file, stopped gently or killed, and always reaped."""

import asyncio
import logging
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Final

logger = logging.getLogger(__name__)

_TAIL_LINES: Final = 20


async def spawn(argv: Sequence[str], output: Path) -> asyncio.subprocess.Process:
    """Start ``argv`` with stdin closed and stdout and stderr appended to ``output``.

    The child gets a session of its own, so a Ctrl-C in the terminal reaches only the Outpost
    process, which then stops its servers in order (a broker that died first would strand clients).
    """
    with output.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )


async def kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL ``process`` unless it has already exited, and reap it."""
    if process.returncode is None:
        with suppress(ProcessLookupError):
            process.kill()
    await process.wait()


async def terminate(process: asyncio.subprocess.Process, *, name: str, timeout_s: float) -> None:
    """SIGTERM ``process``, SIGKILL it if it is still running after ``timeout_s``, and reap it.

    The process is reaped even if the caller is cancelled while waiting.
    """
    if process.returncode is None:
        with suppress(ProcessLookupError):
            process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        logger.warning("%s (pid %d) ignored SIGTERM for %g s; killing it", name, process.pid, timeout_s)
    finally:
        await kill(process)


def file_size(path: Path) -> int:
    """The size of ``path`` in bytes, 0 if it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read_from(path: Path, offset: int) -> str:
    """The text of ``path`` from byte ``offset`` on ("" if the file does not exist)."""
    try:
        with path.open("rb") as source:
            source.seek(offset)
            data = source.read()
    except FileNotFoundError:
        return ""
    return data.decode(errors="replace")


def tail(path: Path, offset: int = 0, lines: int = _TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path`` after byte ``offset``, for error messages."""
    text = read_from(path, offset).rstrip()
    return "\n".join(text.splitlines()[-lines:]) if text else "(empty)"
