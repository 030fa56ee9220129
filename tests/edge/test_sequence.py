"""The per-gateway sequence number: strictly increasing, and never reused across restarts."""

from pathlib import Path

import pytest

from edge.errors import EdgeError
from edge.faults import SEQUENCE, SEQUENCE_UNPERSISTED, GatewayFaults
from edge.sequence import DEFAULT_BLOCK, SequenceCounter
from tests.edge.disk import read_only_directory


def test_sequence_starts_at_zero_and_increases_by_one(tmp_path: Path) -> None:
    counter = SequenceCounter(tmp_path / "sequence", block=10)

    assert [counter.next() for _ in range(25)] == list(range(25))


def test_sequence_has_no_gaps_across_block_reservations(tmp_path: Path) -> None:
    counter = SequenceCounter(tmp_path / "sequence")

    values = [counter.next() for _ in range(3 * DEFAULT_BLOCK + 7)]

    assert values == list(range(len(values)))


@pytest.mark.parametrize("handed_out", [0, 1, 9, 10, 11, 35])
def test_a_restart_resumes_above_every_number_handed_out(tmp_path: Path, handed_out: int) -> None:
    path = tmp_path / "sequence"
    before = SequenceCounter(path, block=10)
    issued = [before.next() for _ in range(handed_out)]

    after = SequenceCounter(path, block=10)

    assert after.next() > max(issued, default=-1)


def test_repeated_restarts_never_reuse_a_number(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    issued: list[int] = []

    for run_length in [3, 0, 12, 1, 10, 7]:
        counter = SequenceCounter(path, block=5)
        issued.extend(counter.next() for _ in range(run_length))

    assert issued == sorted(issued)
    assert len(issued) == len(set(issued))


def test_a_restart_before_the_first_number_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    SequenceCounter(path, block=10)

    assert SequenceCounter(path, block=10).next() == 0


def test_the_state_file_holds_the_reservation_and_its_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "state" / "nested" / "sequence"
    counter = SequenceCounter(path, block=10)

    counter.next()

    assert path.read_text(encoding="ascii") == "10"
    assert not path.with_suffix(".tmp").exists()


def test_a_state_file_with_surrounding_whitespace_is_read(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    path.write_text(" 42\n", encoding="ascii")

    assert SequenceCounter(path).next() == 42


@pytest.mark.parametrize("content", ["", "abc", "-5", "1.5", "12 13", "0x10", "\x00\x00\x00"])
def test_a_corrupt_state_file_raises_edge_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "sequence"
    path.write_text(content, encoding="ascii")

    with pytest.raises(EdgeError, match="corrupt"):
        SequenceCounter(path)


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe", "\u00b2".encode(), "\u0661\u0662".encode()],
    ids=["invalid-utf8", "superscript-two", "arabic-indic-digits"],
)
def test_a_state_file_with_non_ascii_bytes_raises_edge_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "sequence"
    path.write_bytes(content)

    with pytest.raises(EdgeError):
        SequenceCounter(path)


def test_an_unreadable_state_file_raises_edge_error(tmp_path: Path) -> None:
    path = tmp_path / "sequence"
    path.mkdir()

    with pytest.raises(EdgeError, match="cannot read"):
        SequenceCounter(path)


@pytest.mark.parametrize("block", [0, -1])
def test_block_size_must_be_positive(tmp_path: Path, block: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        SequenceCounter(tmp_path / "sequence", block=block)


class Monotonic:
    """The injected monotonic clock: it moves only when the test moves it."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_a_read_only_state_directory_never_stops_the_numbers_and_a_later_reservation_covers_them(
    tmp_path: Path,
) -> None:
    monotonic = Monotonic()
    faults = GatewayFaults()
    with read_only_directory(tmp_path / "state") as state:
        counter = SequenceCounter(state / "sequence", block=10, faults=faults, retry_s=5.0, monotonic=monotonic)
        from_memory = [counter.next() for _ in range(25)]  # the press path: never raises
        assert not counter.persisted
        assert faults.counts[SEQUENCE_UNPERSISTED] == 1  # one attempt; the next waits retry_s
        assert "from memory" in (faults.reason(SEQUENCE) or "")
        monotonic.now_s += 5.0
        counter.next()
        assert faults.counts[SEQUENCE_UNPERSISTED] == 2

    monotonic.now_s += 5.0
    after = counter.next()  # writable again: this reservation covers everything handed out
    assert counter.persisted
    assert faults.reason(SEQUENCE) is None
    assert from_memory == list(range(25))
    assert after == 26
    assert SequenceCounter(state / "sequence").next() > after  # a restart resumes above them all
