"""Real disk conditions for the edge tests: a directory the agent cannot write to, and a small file system."""

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


def _mount(*args: str) -> bool:
    done = subprocess.run(["mount", *args], capture_output=True, check=False)
    return done.returncode == 0


@contextlib.contextmanager
def read_only_directory(path: Path) -> Iterator[Path]:
    """``path`` as a directory nobody may write to: a read-only tmpfs where this runs as root (root ignores
    permission bits), else permission bits without write access. Writable again afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = os.geteuid() == 0 and _mount("-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(path))
    if not mounted:
        path.chmod(0o555)
    try:
        yield path
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=True)
        else:
            path.chmod(0o755)


@contextlib.contextmanager
def small_filesystem(path: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of ``size_bytes`` mounted at ``path`` (needs root: the fault tests run as root in CI and here)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)):
        raise PermissionError(f"cannot mount a {size_bytes} byte tmpfs at {path}: run as root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)
