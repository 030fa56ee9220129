"""The firmware's scenarios under CPython (one test each) and under the real MicroPython interpreter,
from source and compiled to .mpy by mpy-cross, as a board runs them."""

import json
from pathlib import Path

import pytest

from outpost_cli.firmware import PACKAGE, build
from simulators.infra.micropython import MicroPython, tree
from simulators.nodes.firmware import FIRMWARE_DIR
from tests.firmware import scenarios

SCENARIOS = scenarios.names()
SCENARIO_SOURCE = Path(scenarios.__file__).read_bytes()


@pytest.mark.parametrize("name", SCENARIOS)
def test_under_cpython(name: str, tmp_path: Path) -> None:
    getattr(scenarios, name)(str(tmp_path))


def compiled(target: Path) -> dict[str, bytes]:
    """The firmware package compiled to .mpy by ``outpost firmware build``, as a board gets it."""
    build(FIRMWARE_DIR, target, progress=lambda _: None)
    return tree(target / PACKAGE, PACKAGE)


def outcomes(micropython: MicroPython, firmware: dict[str, bytes]) -> dict[str, str]:
    script = "import scenarios\nos.mkdir('/flash/scratch')\nscenarios.run_all('/flash/scratch')\n"
    printed = micropython.run(script, {**firmware, "scenarios.py": SCENARIO_SOURCE})
    return {line["scenario"]: line["outcome"] for line in map(json.loads, printed.splitlines())}


@pytest.fixture(scope="module")
def from_source(micropython: MicroPython) -> dict[str, str]:
    return outcomes(micropython, tree(FIRMWARE_DIR / PACKAGE, PACKAGE))


@pytest.fixture(scope="module")
def from_mpy(micropython: MicroPython, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return outcomes(micropython, compiled(tmp_path_factory.mktemp("mpy")))


def test_micropython_ran_every_scenario(from_source: dict[str, str], from_mpy: dict[str, str]) -> None:
    assert sorted(from_source) == SCENARIOS
    assert sorted(from_mpy) == SCENARIOS


@pytest.mark.parametrize("name", SCENARIOS)
def test_under_micropython_from_source(name: str, from_source: dict[str, str]) -> None:
    assert from_source.get(name) == "ok"


@pytest.mark.parametrize("name", SCENARIOS)
def test_under_micropython_compiled_to_mpy(name: str, from_mpy: dict[str, str]) -> None:
    assert from_mpy.get(name) == "ok"


def test_the_interpreter_is_micropython_not_cpython(micropython: MicroPython) -> None:
    printed = micropython.run("import sys\nprint(sys.implementation.name, sys.implementation._mpy & 0xff)", {})
    assert printed.split() == ["micropython", "6"]
