"""The gateway agent that runs at each village: device adapters, local rules and the MQTT uplink."""

from importlib.metadata import PackageNotFoundError, version


def _installed_version() -> str:
    """Outpost's installed version (what an update installed and what heartbeats report); ``0+unknown`` when
    run from a source tree that is not installed."""
    try:
        return version("outpost")
    except PackageNotFoundError:
        return "0+unknown"


AGENT_VERSION = _installed_version()
