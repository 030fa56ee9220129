"""Loads the sensor-node firmware from its directory on disk, the way a board runs it.

The firmware is not an Outpost package: its files are copied to a board's flash and imported
there as the top-level package ``outpost_node``, with the flash root first on ``sys.path``. The
rule "nothing imports ``firmware/``" keeps the gateway, the fleet and the simulators from
depending on it as a library; but the node simulator must run exactly the code a board runs, not
a copy. So this module is the one deliberate loader: it puts the firmware directory on
``sys.path`` just long enough to import ``outpost_node`` (and takes it off again, so the
firmware's ``main.py`` never shadows anything), and hands out the few classes the simulator
drives, typed here by Protocols because mypy does not check the firmware (it is MicroPython code).

One process runs one firmware directory: ``outpost_node`` is a top-level module name, so a second
directory cannot be loaded beside the first (:class:`FirmwareLoadError`).

Where the firmware is: ``firmware/`` stays a folder of the repository, and an installation carries it under
the name ``outpost_firmware`` (setup.py maps that name to ``firmware/``). :func:`firmware_dir` asks the
import system where that name lies, without importing anything from it: in an installed wheel, the copy in
site-packages; in a checkout (the editable install ``scripts/bootstrap.sh`` makes), ``firmware/`` itself.
"""

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

PACKAGE: Final = "outpost_node"
INSTALLED_AS: Final = "outpost_firmware"
"""The name an installation gives ``firmware/`` (setup.py): a folder of files, never imported as a package."""

Settings = dict[str, int | float | bool | str]
Outgoing = tuple[str, bytes, bool]  # topic, payload, retain


class FirmwareLoadError(Exception):
    """The firmware directory is missing, or another one is already loaded in this process."""


def firmware_dir() -> Path:
    """The sensor-node firmware this Outpost carries: the folder holding ``main.py`` and ``outpost_node/``.

    Raises :class:`FirmwareLoadError` when the installation has none (an install made before the firmware
    was packaged, or a source tree run without installing it: ``pip install -e .``).
    """
    spec = importlib.util.find_spec(INSTALLED_AS)  # a top-level name: nothing is imported to find it
    # A folder without __init__.py: a namespace package, whose search path may also hold an editable
    # install's placeholder entry (not a folder); the firmware is the entry that holds outpost_node.
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    for location in locations:
        candidate = Path(location)
        if (candidate / PACKAGE / "__init__.py").is_file():
            return candidate
    raise FirmwareLoadError(
        f"this Outpost installation ({Path(__file__).parents[2]}) carries no sensor-node firmware "
        f"({INSTALLED_AS}): install it again from its wheel (in a checkout: pip install -e .)"
    )


def __getattr__(name: str) -> Path:
    # FIRMWARE_DIR, for the firmware tests and benchmarks: found when first read, so that importing this
    # module (the demo does) never fails for want of the firmware, and a gateway-only demo runs without it.
    if name == "FIRMWARE_DIR":
        return firmware_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Pin(Protocol):
    """What the firmware reads from an input: ``machine.Pin.value()``."""

    def value(self) -> int: ...


class FlashRing(Protocol):
    overwritten: int


class FirmwareBackoff(Protocol):
    def next_delay_ms(self) -> int: ...

    def reset(self) -> None: ...


class FirmwareNode(Protocol):
    """``outpost_node.node.Node`` as the simulator drives it (see that module for the contract)."""

    node_id: str
    boot: int
    reset_cause: str
    settings: Settings
    queue: Sized

    def start(self, now: int, woke_by_input: bool = False) -> None: ...

    def edge(self, line: int, now: int) -> None: ...

    def step(self, now: int) -> None: ...

    def due(self, now: int) -> int: ...

    def idle(self) -> bool: ...

    def last_will(self, now: int) -> Outgoing: ...

    def config_topic(self) -> str: ...

    def connected(self, now: int) -> None: ...

    def disconnected(self) -> None: ...

    def outgoing(self, now: int) -> Outgoing | None: ...

    def delivered(self, now: int) -> None: ...

    def configure(self, payload: bytes, now: int) -> bool: ...


class NodeFactory(Protocol):
    def __call__(
        self,
        settings: Settings,
        boot: int,
        reset_cause: str,
        ring: FlashRing,
        input_pin: Pin,
        tamper_pin: Pin | None = None,
        battery_v: Callable[[], float] | None = None,
        rssi_dbm: Callable[[], int] | None = None,
        save: Callable[[Settings], None] | None = None,
    ) -> FirmwareNode: ...


@dataclass(frozen=True, slots=True)
class Firmware:
    """The loaded firmware: what a board's ``main.py`` imports from ``outpost_node``."""

    directory: Path
    version: str
    node: NodeFactory
    flash_ring: Callable[[str, int], FlashRing]  # path, slots
    backoff: Callable[[int, int, Callable[[], float]], FirmwareBackoff]  # base_ms, cap_ms, uniform in [0, 1)
    validate: Callable[[object], tuple[Settings, list[str]]]  # a flashed settings file: (settings, problems)
    input_line: int  # ``node.edge`` line numbers
    tamper_line: int


def load_firmware(directory: Path | None = None) -> Firmware:
    """The firmware in ``directory`` (default: this installation's, :func:`firmware_dir`)."""
    root = (directory or firmware_dir()).resolve()
    if not (root / PACKAGE / "__init__.py").is_file():
        raise FirmwareLoadError(f"no {PACKAGE} package in {root}")
    loaded = sys.modules.get(PACKAGE)
    if loaded is not None:
        loaded_from = Path(loaded.__file__ or "").resolve().parents[1]
        if loaded_from != root:
            raise FirmwareLoadError(f"{PACKAGE} is already loaded from {loaded_from}; cannot load {root} beside it")
    entry = str(root)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        package = importlib.import_module(PACKAGE)
        node = importlib.import_module(f"{PACKAGE}.node")
        flash_ring = importlib.import_module(f"{PACKAGE}.flash_ring")
        backoff = importlib.import_module(f"{PACKAGE}.backoff")
        settings = importlib.import_module(f"{PACKAGE}.settings")
    finally:
        if added:
            sys.path.remove(entry)
    return Firmware(
        directory=root,
        version=str(package.FIRMWARE_VERSION),
        node=node.Node,
        flash_ring=flash_ring.FlashRing,
        backoff=backoff.Backoff,
        validate=settings.validate,
        input_line=int(node.INPUT),
        tamper_line=int(node.TAMPER_INPUT),
    )
