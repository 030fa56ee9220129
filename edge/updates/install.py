"""Installing an agent release into a slot: a new virtual environment, filled by pip from the release alone.

The slot is emptied first, then made with the base interpreter of the running agent (and its system site
packages when its own environment has them: GPIO libraries from Debian packages), then pip installs the
manifest's requirement with ``--no-index`` and ``--only-binary :all:`` from the release's wheels under its
constraints: nothing is fetched, nothing is built, and the updater leaves nothing but the signed files in the
release's directory before it calls this. pip runs isolated from the machine's pip configuration and
environment. Last, the new ``outpost --version`` must name the release's version.
"""

import asyncio
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from edge.errors import UpdateError
from protocol.releases import ReleaseManifest

logger = logging.getLogger(__name__)

PIP_TIMEOUT_S: Final = 1800.0
"""pip unpacking ~90 MB of wheels on a Raspberry Pi's SD card: minutes, not half an hour."""
_TAIL: Final = 300


def base_python() -> str:
    """The interpreter the running agent's environment was made from."""
    return str(getattr(sys, "_base_executable", None) or sys.executable)


def system_site_packages(prefix: str = sys.prefix) -> bool:
    try:
        config = (Path(prefix) / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return False
    return any(line.replace(" ", "").lower() == "include-system-site-packages=true" for line in config.splitlines())


def _isolated_environment() -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    return environment | {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


async def _run(what: str, command: Sequence[str], timeout_s: float) -> str:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=_isolated_environment(),
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise UpdateError(f"{what} took longer than {timeout_s:.0f} s") from None
    except asyncio.CancelledError:
        process.kill()
        await process.wait()
        raise
    text = output.decode("utf-8", "replace").strip()
    if process.returncode != 0:
        errors = [line for line in text.splitlines() if line.startswith("ERROR")]
        raise UpdateError(f"{what} failed: {(errors[-1] if errors else text[-_TAIL:])[:_TAIL]}")
    return text


async def install_release(
    release_dir: Path, manifest: ReleaseManifest, slot: Path, *, python: str | None = None
) -> None:
    """Install the agent release in ``release_dir`` (downloaded and checked) into ``slot``."""
    if not manifest.install or manifest.constraints is None:
        raise UpdateError(f"release {manifest.version} says nothing to install (no requirement or constraints)")
    logger.info("installing agent %s into %s", manifest.version, slot)
    await asyncio.to_thread(shutil.rmtree, slot, True)
    venv = [python or base_python(), "-m", "venv"]
    if system_site_packages():
        venv.append("--system-site-packages")
    await _run("making the virtual environment", [*venv, str(slot)], PIP_TIMEOUT_S)
    pip = [str(slot / "bin" / "python"), "-m", "pip", "install", "--no-index", "--only-binary", ":all:"]
    pip += ["--no-cache-dir", "--quiet"]
    pip += ["--find-links", str(release_dir / "wheels"), "--constraint", str(release_dir / manifest.constraints)]
    await _run(f"pip installing {manifest.install}", [*pip, manifest.install], PIP_TIMEOUT_S)
    printed = await _run("the new agent's --version", [str(slot / "bin" / "outpost"), "--version"], 60.0)
    if printed.strip().splitlines()[-1:] != [f"outpost {manifest.version}"]:
        raise UpdateError(f"the installed agent says {printed[-80:]!r}, not outpost {manifest.version}")
