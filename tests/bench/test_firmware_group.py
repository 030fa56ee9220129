"""`python -m bench firmware --quick` prints every figure of the group, measured under both interpreters."""

import json
import subprocess
import sys

FIGURES = {
    "firmware.press_to_publish_p50_ms_cpython",
    "firmware.press_to_publish_max_ms_cpython",
    "firmware.press_to_publish_p50_ms_micropython",
    "firmware.press_to_publish_max_ms_micropython",
    "firmware.logic_ram_bytes_micropython",
    "firmware.code_ram_bytes_micropython",
    "firmware.mpy_set_bytes",
}


def test_the_firmware_group_prints_each_figure_once() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "firmware", "--quick"], capture_output=True, text=True, check=True, timeout=300
    )
    figures = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert sorted(figure["figure"] for figure in figures) == sorted(FIGURES)
    assert all(figure["value"] > 0 for figure in figures)
    by_name = {figure["figure"]: figure for figure in figures}
    assert by_name["firmware.mpy_set_bytes"]["baseline"] > by_name["firmware.mpy_set_bytes"]["value"]  # .mpy < source
