"""The agent run as systemd runs ``outpost-gateway.service`` with its update guard, where no systemd runs.

Before every start the guard's ``start`` runs (the unit's ``ExecStartPre``); the agent is
``<root>/current/bin/outpost gateway run`` (``ExecStart``), started again half a second after it ends, however
it ends (``Restart=always``); every second the guard's ``check`` runs (the timer) and, when it rolled an update
back (exit 10 here), the agent is restarted (``systemctl restart``). Each start's output goes to its own log.
"""

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import Final, Self

GUARD: Final = Path(str(files("edge").joinpath("systemd/outpost-update-guard")))
ROLLED_BACK: Final = 10


class AgentService:
    def __init__(self, root: Path, settings: Path, logs: Path, environment: Mapping[str, str]) -> None:
        self.root = root
        self._settings = settings
        self._logs = logs
        self._environment = {**os.environ, **environment}
        self.process: asyncio.subprocess.Process | None = None
        self.exits: list[int] = []
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        self._logs.mkdir(parents=True, exist_ok=True)
        self._tasks = [asyncio.create_task(self._service()), asyncio.create_task(self._timer())]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.process is not None and self.process.returncode is None:
            self.kill()
            await self.process.wait()

    @property
    def starts(self) -> int:
        return len(self.exits) + (1 if self.process is not None and self.process.returncode is None else 0)

    def kill(self) -> None:
        """kill -9 the running agent and every process it started (a power cut, as far as they can tell; systemd
        kills a unit's whole control group the same way)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    async def _guard(self, mode: str) -> int:
        guard = await asyncio.create_subprocess_exec("/bin/sh", str(GUARD), mode, str(self.root))
        return await guard.wait()

    async def _service(self) -> None:
        while not self._stopping:
            await self._guard("start")
            log = (self._logs / f"start-{len(self.exits) + 1}.log").open("wb")
            try:
                self.process = await asyncio.create_subprocess_exec(
                    str(self.root / "current" / "bin" / "outpost"), "--log-level", "info", "gateway", "run",
                    "--config", str(self._settings),
                    env=self._environment, stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
                self.exits.append(await self.process.wait())
            finally:
                log.close()
            await asyncio.sleep(0.5)

    async def _timer(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if await self._guard("check") == ROLLED_BACK and self.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGTERM)

    def log_tail(self, characters: int = 3000) -> str:
        """The last output of every start, for a failing test's message."""
        parts = []
        for path in sorted(self._logs.glob("start-*.log"), key=lambda p: int(p.stem.split("-")[1])):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-characters:]}")
        return "\n".join(parts[-4:])
