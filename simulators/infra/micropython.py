"""The real MicroPython interpreter, without a board: the official WebAssembly port run by Node.js.

The firmware's logic is tested and measured under it as well as under CPython. MicroPython's
``micropython-webassembly-pyscript`` package (npm, the MicroPython project's own build of v1.27)
is installed by ``scripts/test`` into ``.cache/micropython-wasm``; ``OUTPOST_MICROPYTHON_WASM``
points elsewhere. Each :meth:`MicroPython.run` is a fresh interpreter: the files given land under
``/flash`` (the working directory and first on ``sys.path``, as on a board) and the script runs there.

Memory: this port frees garbage only between the steps of a run (it cannot scan the WebAssembly
stack, so ``gc.collect()`` in the middle of a step frees nothing); to measure what stays allocated,
build in one step and call ``gc.collect()``/``gc.mem_alloc()`` in the next.
"""

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Final

from simulators.infra.errors import BinaryNotFoundError, MicroPythonError

PACKAGE: Final = "@micropython/micropython-webassembly-pyscript"
VERSION: Final = "1.27.0"
DEFAULT_PREFIX: Final = Path(__file__).resolve().parents[2] / ".cache" / "micropython-wasm"
DEFAULT_HEAP_BYTES: Final = 1024 * 1024
_TIMEOUT_S: Final = 300.0


class MicroPython:
    def __init__(self, prefix: Path | None = None, node: str | None = None) -> None:
        configured = os.environ.get("OUTPOST_MICROPYTHON_WASM")
        self.prefix = prefix or (Path(configured) if configured else DEFAULT_PREFIX)
        found = node or shutil.which("node")
        if found is None:
            raise BinaryNotFoundError("Node.js is not installed (scripts/test installs it: Debian's nodejs)")
        if not (self.prefix / "node_modules" / PACKAGE / "micropython.wasm").is_file():
            raise BinaryNotFoundError(
                f"MicroPython's WebAssembly port is not in {self.prefix} "
                f"(scripts/test installs it: npm install --prefix {self.prefix} {PACKAGE}@{VERSION})"
            )
        self._node = found
        self._runner = str(files("simulators.infra") / "micropython_runner.mjs")

    def run(
        self, script: str | Sequence[str], sources: dict[str, bytes], *, heap_bytes: int = DEFAULT_HEAP_BYTES
    ) -> str:
        """Run ``script`` (or its steps in turn) with ``sources`` (path under /flash -> content); return
        what it printed."""
        request = {
            "files": {path: base64.b64encode(content).decode() for path, content in sources.items()},
            "steps": [script] if isinstance(script, str) else list(script),
            "heap": heap_bytes,
        }
        done = subprocess.run(  # noqa: S603 - our runner script, our arguments
            [self._node, self._runner, str(self.prefix)],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise MicroPythonError(done.stderr.decode(errors="replace")[-4000:] or f"exit code {done.returncode}")
        return done.stdout.decode()


def tree(root: Path, under: str = "") -> dict[str, bytes]:
    """Every file below ``root`` that a board would carry (sources and .mpy), keyed by its path under ``under``."""
    found: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in {".py", ".mpy", ".json"} and "__pycache__" not in path.parts:
            found[str(Path(under) / path.relative_to(root))] = path.read_bytes()
    return found
