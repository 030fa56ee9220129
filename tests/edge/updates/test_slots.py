"""The two slots and the ``current`` link: which slot runs, which one an update installs into, and a switch that
leaves ``current`` on the old slot or on the new one at every moment."""

import os
import sys
import threading
from pathlib import Path

import pytest

from edge.errors import UpdateError
from edge.updates.slots import SlotLayout


@pytest.fixture
def layout(tmp_path: Path) -> SlotLayout:
    root = tmp_path / "outpost"
    for name in ("a", "b"):
        (root / "slots" / name / "bin").mkdir(parents=True)
    return SlotLayout(root)


def test_a_root_without_link_runs_no_slot_and_installs_into_a(layout: SlotLayout) -> None:
    assert layout.target() is None
    assert layout.active() is None
    assert layout.inactive() == "a"
    assert not layout.running_here(str(layout.slot("a")))


def test_an_installation_from_before_slots_installs_into_a(layout: SlotLayout) -> None:
    (layout.root / "venv").mkdir()
    (layout.root / "current").symlink_to("venv")

    assert layout.target() == "venv"
    assert layout.active() is None
    assert layout.inactive() == "a"


def test_switch_points_current_at_a_slot_and_the_other_becomes_inactive(layout: SlotLayout) -> None:
    layout.switch("slots/a")
    assert layout.current.is_symlink()
    assert layout.target() == "slots/a"
    assert (layout.active(), layout.inactive()) == ("a", "b")

    layout.switch("slots/b")
    assert layout.target() == "slots/b"
    assert (layout.active(), layout.inactive()) == ("b", "a")
    assert layout.current.resolve() == layout.slot("b").resolve()
    assert sorted(os.listdir(layout.root)) == ["current", "slots"]  # no staged link left behind


def test_switch_back_to_an_installation_from_before_slots(layout: SlotLayout) -> None:
    (layout.root / "venv").mkdir()
    layout.switch("slots/a")

    layout.switch("venv")

    assert layout.target() == "venv"
    assert layout.active() is None


@pytest.mark.parametrize(
    "target", ["/etc", "/opt/outpost/slots/a", "..", "../x", "slots/../../etc", "slots/a/..", "./../slots/a"]
)
def test_switch_refuses_targets_outside_the_root(layout: SlotLayout, target: str) -> None:
    layout.switch("slots/a")

    with pytest.raises(UpdateError, match="is not a slot under"):
        layout.switch(target)

    assert layout.target() == "slots/a"
    assert sorted(os.listdir(layout.root)) == ["current", "slots"]


def test_switch_replaces_the_link_without_a_moment_where_it_is_missing(layout: SlotLayout) -> None:
    layout.switch("slots/a")
    stop = threading.Event()
    seen: set[str] = set()
    errors: list[OSError] = []
    reads = 0

    def read_link() -> None:
        nonlocal reads
        while True:
            try:
                seen.add(os.readlink(layout.current))
            except OSError as exc:
                errors.append(exc)
            reads += 1
            if stop.is_set():
                return

    reader = threading.Thread(target=read_link)
    reader.start()
    try:
        for switch in range(500):
            layout.switch("slots/b" if switch % 2 == 0 else "slots/a")
    finally:
        stop.set()
        reader.join()

    assert errors == []
    assert reads > 0
    assert seen <= {"slots/a", "slots/b"}
    assert layout.target() == "slots/a"
    assert sorted(os.listdir(layout.root)) == ["current", "slots"]


def test_target_of_a_current_that_is_no_link_is_an_update_error(layout: SlotLayout) -> None:
    (layout.root / "current").mkdir()

    with pytest.raises(UpdateError, match="is not a symbolic link to a slot") as raised:
        layout.target()
    assert str(layout.current) in str(raised.value)


def test_running_here_compares_the_prefix_with_where_current_resolves(layout: SlotLayout, tmp_path: Path) -> None:
    layout.switch("slots/a")
    alias = tmp_path / "alias"
    alias.symlink_to(layout.slot("a"))

    assert layout.running_here(str(layout.slot("a")))
    assert layout.running_here(str(alias))  # the same installation reached through another link
    assert layout.running_here(str(layout.current))
    assert not layout.running_here(str(layout.slot("b")))
    assert not layout.running_here(str(layout.slot("a") / "bin"))
    assert not layout.running_here()  # this test's own Python runs from elsewhere
    assert not layout.running_here(sys.prefix)


def test_running_here_is_false_when_current_points_at_nothing(layout: SlotLayout) -> None:
    layout.switch("slots/c")  # a slot that was never installed

    assert not layout.running_here(str(layout.root / "slots" / "c"))


def test_current_is_never_pointed_at_itself_and_a_loop_is_not_running_here(tmp_path: Path) -> None:
    layout = SlotLayout(tmp_path)
    with pytest.raises(UpdateError):
        layout.switch("current")
    with pytest.raises(UpdateError):
        layout.switch("")
    os.symlink("current", tmp_path / "current")  # a loop made by hand
    assert not layout.running_here(str(tmp_path / "slots" / "a"))
