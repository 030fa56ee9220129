"""The ``firmware`` benchmark group (issue 7): the sensor-node firmware's logic, under CPython and
under the real MicroPython interpreter (the WebAssembly port, see ``simulators/infra/micropython.py``).

- press-to-publish delay in the logic (goal < 20 ms, network excluded), both interpreters;
- RAM the logic's data structures take under MicroPython (``gc.mem_alloc``; goal < 20 KB): one
  node with its event queue full and its flash ring, the worst case; the compiled code it imports is
  reported beside it (on a board with the modules frozen into flash that RAM is not spent);
- the size of the compiled ``.mpy`` set, against the size of its sources.
"""

import json
import statistics
import tempfile
from pathlib import Path
from typing import Final

from bench.firmware_press import MEASURE
from bench.harness import Figure, Profile, register_group
from outpost_cli.firmware import PACKAGE, build
from simulators.infra.micropython import MicroPython, tree
from simulators.nodes.firmware import FIRMWARE_DIR, load_firmware

PRESS_GOAL_MS: Final = 20.0
RAM_GOAL_BYTES: Final = 20 * 1024

# Steps: this port frees garbage only between steps (see simulators/infra/micropython.py).
RAM_STEPS: Final = (
    "import gc\ngc.collect()\nBEFORE = gc.mem_alloc()",
    "from outpost_node.flash_ring import FlashRing\nfrom outpost_node.node import Node\n"
    "from outpost_node.settings import validate",
    "gc.collect()\nCODE = gc.mem_alloc() - BEFORE\nBEFORE = gc.mem_alloc()",
    r"""
class Pin:
    def value(self):
        return 1

settings, _ = validate({"node_id": "bench", "role": "panic_button", "wifi_ssid": "v", "broker_host": "gw",
                        "input_pin": 4, "tamper_pin": 5})
node = Node(settings, 1, "power_on", FlashRing("ram-ring", settings["ring_slots"]), Pin(), Pin())
node.start(0)
node.connected(0)
for i in range(settings["queue_size"] + 4):  # a full queue, half of it urgent (on flash too)
    node._emit("press" if i % 2 else "motion", i, 100, 1)
""",
    "import json\ngc.collect()\n"
    "print(json.dumps({'code': CODE, 'data': gc.mem_alloc() - BEFORE, 'queued': len(node.queue)}))",
)


def _compiled(target: Path) -> dict[str, bytes]:
    """The package as ``outpost firmware build`` ships it: .mpy files under ``outpost_node/``."""
    build(FIRMWARE_DIR, target, progress=lambda _: None)
    return tree(target / PACKAGE, PACKAGE)


def _press_in_cpython(presses: int, scratch: str) -> tuple[list[float], list[float]]:
    load_firmware()  # MEASURE imports outpost_node, as the MicroPython run does
    namespace: dict[str, object] = {}
    exec(compile(MEASURE, "firmware_press", "exec"), namespace)  # noqa: S102 - the same text MicroPython runs
    node_delays, bare_delays = namespace["node_delays"], namespace["bare_delays"]
    return node_delays(presses, scratch), bare_delays(presses)  # type: ignore[operator]


def _press_in_micropython(
    micropython: MicroPython, mpy: dict[str, bytes], presses: int
) -> tuple[list[float], list[float]]:
    script = MEASURE + f"\nimport json\nprint(json.dumps([node_delays({presses}, '.'), bare_delays({presses})]))\n"
    node, bare = json.loads(micropython.run(script, mpy).splitlines()[-1])
    return node, bare


@register_group(
    "firmware",
    "sensor-node firmware: press-to-publish delay in the logic (CPython and MicroPython), RAM of its data "
    "structures under MicroPython, size of the compiled .mpy set",
)
def firmware_figures(profile: Profile) -> list[Figure]:
    presses = 10 if profile.runs < 5 else 40
    micropython = MicroPython()
    with tempfile.TemporaryDirectory() as scratch:
        mpy = _compiled(Path(scratch) / "mpy")
        figures = []
        for name, (node, bare) in (
            ("cpython", _press_in_cpython(presses, scratch)),
            ("micropython", _press_in_micropython(micropython, mpy, presses)),
        ):
            for stat, pick in (("p50", statistics.median), ("max", max)):
                figures.append(
                    Figure.measured(
                        f"firmware.press_to_publish_{stat}_ms_{name}",
                        round(pick(node), 3),
                        "ms",
                        better="lower",
                        runs=len(node),
                        goal=PRESS_GOAL_MS,
                        baseline=round(pick(bare), 3),
                    )
                )
        ram = json.loads(micropython.run(RAM_STEPS, mpy).splitlines()[-1])
        figures.append(Figure.measured("firmware.logic_ram_bytes_micropython", ram["data"], "bytes", better="lower",
                                       runs=1, goal=RAM_GOAL_BYTES))  # fmt: skip
        figures.append(Figure.measured("firmware.code_ram_bytes_micropython", ram["code"], "bytes", better="lower",
                                       runs=1))  # fmt: skip
        mpy_bytes = sum(len(content) for content in mpy.values())
        source_bytes = sum(path.stat().st_size for path in (FIRMWARE_DIR / PACKAGE).glob("*.py"))
        figures.append(Figure.measured("firmware.mpy_set_bytes", mpy_bytes, "bytes", better="lower", runs=1,
                                       baseline=source_bytes))  # fmt: skip
    return figures
