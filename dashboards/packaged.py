"""The files the dashboards package carries besides its code: the generated JSON and Grafana's provisioning files.

Both are package data (pyproject.toml), found through :mod:`importlib.resources`, so one lookup serves a
checkout (``dashboards/generated/``, ``dashboards/provisioning/``) and an installed Outpost (their copies in
site-packages). An installed copy is read, never rewritten: ``outpost dashboards export`` writes into the
package's own ``generated/`` only in a checkout, where it is committed (:func:`writable_generated_dir`).
"""

import shutil
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Final

PROVISIONING_FILES: Final = ("datasources/outpost.yaml", "dashboards/outpost.yaml")
"""Grafana's provisioning files, relative to its provisioning directory (``/etc/grafana/provisioning``)."""
ENV_FILE: Final = "outpost.env"
"""The defaults of the variables the provisioning files read, for Grafana's environment."""


def _folder(name: str) -> Path:
    found = files("dashboards").joinpath(name)
    # Always a real folder: setuptools installs the package unzipped (a zipped one would have no folder to read).
    return found if isinstance(found, Path) else Path(str(found))


GENERATED_DIR: Final = _folder("generated")
"""The generated dashboards, ``<flavour>/<uid>.json`` (committed; a test fails when they differ from the code)."""
PROVISIONING_DIR: Final = _folder("provisioning")
"""Grafana's provisioning files for Outpost's data sources and dashboards, and their README."""


def writable_generated_dir() -> Path | None:
    """:data:`GENERATED_DIR` when this package is a checkout's (a ``pyproject.toml`` of Outpost beside it), where
    ``export`` keeps the committed JSON up to date; None for an installed package, whose files are not ours to
    rewrite."""
    project = GENERATED_DIR.parents[1] / "pyproject.toml"
    try:
        return GENERATED_DIR if 'name = "outpost"' in project.read_text(encoding="utf-8") else None
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class CopyResult:
    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    kept: tuple[Path, ...]
    """Files left as they were because someone may have edited them (an existing env file)."""


def copy_provisioning(out: Path, env_file: Path) -> CopyResult:
    """Copy the provisioning files into ``out`` (Grafana's provisioning directory layout) and the env file to
    ``env_file``, which is kept when it exists (it holds the deployment's own addresses and password)."""
    written: list[Path] = []
    unchanged: list[Path] = []
    for relative in PROVISIONING_FILES:
        source, target = PROVISIONING_DIR / relative, out / relative
        if target.is_file() and target.read_bytes() == source.read_bytes():
            unchanged.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        target.chmod(0o644)  # Grafana runs as its own user
        written.append(target)
    if env_file.exists():
        return CopyResult(tuple(written), tuple(unchanged), (env_file,))
    env_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROVISIONING_DIR / ENV_FILE, env_file)
    env_file.chmod(0o640)  # it will hold InfluxDB's password; systemd reads an EnvironmentFile= as root
    return CopyResult((*written, env_file), tuple(unchanged), ())
