"""Config reports recorded in batches: completions say when a report is stored; nothing is lost or stuck."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from fleet.configs.reports import ReportRecorder
from fleet.errors import DatabaseRefusedError, DatabaseUnavailableError
from protocol.messages import ConfigReported, ConfigStatus
from protocol.reconnect import Backoff


def report(gateway_id: str, version: int = 1) -> ConfigReported:
    return ConfigReported(
        gateway_id=gateway_id, seq=version, event_id=uuid.uuid4(), ts=1, version=version, status=ConfigStatus.APPLIED
    )


class Store:
    """Records each batch; fails the first ``unavailable`` calls (retry) and refuses batches in ``refused``."""

    def __init__(self, unavailable: int = 0, refused: frozenset[int] = frozenset()) -> None:
        self.batches: list[list[str]] = []
        self.calls = 0
        self.unavailable = unavailable
        self.refused = refused
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, reports: Sequence[ConfigReported]) -> None:
        self.calls += 1
        await self.gate.wait()
        if self.calls <= self.unavailable:
            raise DatabaseUnavailableError("database is locked")
        if self.calls in self.refused:
            raise DatabaseRefusedError("constraint failed")
        self.batches.append([r.gateway_id for r in reports])


Start = Callable[[ReportRecorder], None]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Runs a recorder in a task, cancelled after the test."""
    tasks: list[asyncio.Task[None]] = []
    yield lambda recorder: tasks.append(asyncio.create_task(recorder.run()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_reports_arriving_together_are_stored_in_one_batch_and_completed_after_it(start: Start) -> None:
    store = Store()
    store.gate.clear()
    recorder = ReportRecorder(store, max_batch=500)
    start(recorder)
    first = recorder.add("v", report("gw-0"))
    await asyncio.sleep(0)  # the recorder takes gw-0 alone and waits at the gate
    rest = [recorder.add("v", report(f"gw-{n}")) for n in range(1, 300)]
    assert not first.done()

    store.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *rest), 10)

    assert store.batches == [["gw-0"], [f"gw-{n}" for n in range(1, 300)]]
    assert (recorder.recorded, recorder.batches, recorder.waiting) == (300, 2, 0)


async def test_a_batch_holds_at_most_max_batch_reports(start: Start) -> None:
    store = Store()
    recorder = ReportRecorder(store, max_batch=100)
    completions = [recorder.add("v", report(f"gw-{n}")) for n in range(250)]
    start(recorder)

    await asyncio.wait_for(asyncio.gather(*completions), 10)

    assert [len(batch) for batch in store.batches] == [100, 100, 50]


async def test_while_the_database_does_not_answer_reports_stay_pending_then_are_stored(start: Start) -> None:
    store = Store(unavailable=3)
    recorder = ReportRecorder(store, backoff=Backoff(base_s=0.01, cap_s=0.02))
    completion = recorder.add("v", report("gw-1"))
    start(recorder)

    await asyncio.wait_for(completion, 10)

    assert store.calls == 4
    assert store.batches == [["gw-1"]]


class PoisonStore(Store):
    """Refuses every batch holding a report of ``poison`` with ``error``, as a database refuses one bad row."""

    def __init__(self, poison: str, error: Exception) -> None:
        super().__init__()
        self.poison = poison
        self.error = error

    async def __call__(self, reports: Sequence[ConfigReported]) -> None:
        if any(r.gateway_id == self.poison for r in reports):
            self.calls += 1
            raise self.error
        await super().__call__(reports)


@pytest.mark.parametrize(
    "error",
    [DatabaseRefusedError("constraint failed"), OverflowError("Python int too large to convert to SQLite INTEGER")],
    ids=["refused", "unexpected"],
)
async def test_a_report_refused_for_good_fails_alone_and_the_rest_of_its_batch_is_stored(
    start: Start, error: Exception
) -> None:
    store = PoisonStore("gw-bad", error)
    store.gate.clear()
    recorder = ReportRecorder(store)
    start(recorder)
    first = recorder.add("v", report("gw-1"))
    await asyncio.sleep(0.05)  # the first batch is being stored; the next three wait together
    before, poison, after = (recorder.add("v", report(g)) for g in ("gw-2", "gw-bad", "gw-3"))
    store.gate.set()

    await asyncio.wait_for(asyncio.gather(first, before, after), 10)
    with pytest.raises(type(error)):
        await asyncio.wait_for(poison, 10)

    assert recorder.refused == 1
    assert store.batches == [["gw-1"], ["gw-2"], ["gw-3"]]
    later = recorder.add("v", report("gw-4"))
    await asyncio.wait_for(later, 10)
    assert store.batches[-1] == ["gw-4"], "the recorder goes on after a refusal"
