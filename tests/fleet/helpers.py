"""Helpers shared by the fleet's unit tests."""

from pathlib import Path


class FakeClock:
    """Epoch milliseconds that only move when a test moves them."""

    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def database_url(directory: Path) -> str:
    """A SQLite file in ``directory``, opened through the fleet's async driver."""
    return f"sqlite+aiosqlite:///{directory / 'fleet.db'}"
