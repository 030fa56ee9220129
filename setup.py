"""The packages an Outpost installation carries: the one part of its packaging pyproject.toml cannot say.

- The roles' packages, found as ``[tool.setuptools.packages.find]`` would (namespace folders too, so the
  migrations and the dashboards' data come along). Not ``bench``: a tool run from the checkout
  (``python -m bench``) that nothing installed imports.
- The sensor-node firmware, ``firmware/``: MicroPython for the boards, which no CPython code imports, but
  which an installed Outpost needs as files (``outpost firmware build`` compiles it, the demo's simulated
  nodes run it). It ships under the name ``outpost_firmware`` (``package_dir`` maps that name to
  ``firmware/``), so an installation, editable or not, finds it through the import system
  (``simulators.nodes.firmware.firmware_dir``) while the folder stays where it is. pyproject.toml can
  either find packages or list them, not add one beside the found ones; hence this file.

Everything else (metadata, dependencies, package data) is in pyproject.toml.
"""

from setuptools import find_namespace_packages, find_packages, setup

ROLES = ["protocol", "edge", "fleet", "simulators", "dashboards", "outpost_cli"]
FIRMWARE_PACKAGE = "outpost_firmware"
FIRMWARE_DIR = "firmware"

setup(
    packages=[
        *find_namespace_packages(include=[pattern for role in ROLES for pattern in (role, f"{role}.*")]),
        FIRMWARE_PACKAGE,
        *(f"{FIRMWARE_PACKAGE}.{package}" for package in find_packages(where=FIRMWARE_DIR)),
    ],
    package_dir={FIRMWARE_PACKAGE: FIRMWARE_DIR},
)
