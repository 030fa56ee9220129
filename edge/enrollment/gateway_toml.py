"""The agent's settings file (``gateway.toml``) from an enrollment grant, checked by loading it back as
:class:`~edge.settings.EdgeSettings` before it is written, so the agent can never be handed a file it refuses.

TOML has no null: a config value that is None (e.g. a door policy's ``held_open_s``, "never") is left out,
which means its default. The check catches the one case where that changes the config (a default that is
not None) and refuses, naming the field, rather than write a different config than the fleet gave.
"""

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from edge.errors import EnrollmentError
from edge.settings import EdgeSettings
from protocol.enrollment import EnrollmentGrant
from protocol.gateway_config import GatewayConfig
from protocol.hosts import is_loopback_host

_BARE_KEY: Final = re.compile(r"^[A-Za-z0-9_-]+$")

TomlValue = str | int | float | bool | list["TomlValue"] | dict[str, "TomlValue"]


@dataclass(frozen=True, slots=True)
class UpdatePaths:
    """What the agent needs to fetch updates: the fleet as enrollment reached it, the gateway's own key, and the
    release keys the fleet named."""

    fleet_url: str
    fleet_ca: Path | None
    identity_key: Path
    release_keys: Path


@dataclass(frozen=True, slots=True)
class SettingsPaths:
    """Where the files the settings refer to are (or will be) on the gateway."""

    state_dir: Path
    broker_ca: Path | None
    config_signing_key: Path | None
    broker_cert: Path | None = None
    broker_key: Path | None = None
    updates: UpdatePaths | None = None


def production_ready(grant: EnrollmentGrant) -> list[str]:
    """What keeps these settings from production (empty when nothing does)."""
    missing = []
    if grant.broker.username is None or grant.broker.password is None or grant.broker.client_id is None:
        missing.append("the fleet provisioned no broker credentials")
    if grant.config_signing_key_pem is None:
        missing.append("the fleet sent no config-signing key")
    if not grant.broker.tls and not is_loopback_host(grant.broker.host):
        missing.append("the fleet's broker takes no TLS")
    return missing


def render_settings(grant: EnrollmentGrant, paths: SettingsPaths, *, header: str) -> str:
    """``gateway.toml`` for ``grant``: production settings when the grant allows them, else development."""
    environment = "development" if production_ready(grant) else "production"
    top: dict[str, TomlValue] = {
        "environment": environment,
        "village_id": grant.village_id,
        "gateway_id": grant.gateway_id,
        "state_dir": str(paths.state_dir),
    }
    if paths.config_signing_key is not None:
        top["config_signing_key"] = str(paths.config_signing_key)
    broker: dict[str, TomlValue] = {"host": grant.broker.host, "port": grant.broker.port}
    if grant.broker.username is not None and grant.broker.password is not None:
        broker |= {"username": grant.broker.username, "password": grant.broker.password}
    if grant.broker.client_id is not None:
        broker["client_id"] = grant.broker.client_id
    lines = [f"# {line}" for line in header.splitlines()]
    lines += [*_pairs(top), "", "[broker]", *_pairs(broker)]
    if grant.broker.tls:
        if paths.broker_ca is None:
            raise EnrollmentError("the broker speaks TLS but no CA file is known to verify it with")
        tls: dict[str, TomlValue] = {"ca_file": str(paths.broker_ca)}
        if paths.broker_cert is not None and paths.broker_key is not None:
            tls |= {"cert_file": str(paths.broker_cert), "key_file": str(paths.broker_key)}
        lines += ["", "[broker.tls]", *_pairs(tls)]
    if paths.updates is not None:
        updates: dict[str, TomlValue] = {
            "fleet_url": paths.updates.fleet_url,
            "identity_key": str(paths.updates.identity_key),
            "release_keys": str(paths.updates.release_keys),
        }
        if paths.updates.fleet_ca is not None:
            updates["fleet_ca"] = str(paths.updates.fleet_ca)
        lines += ["", "[updates]", *_pairs(updates)]
    if grant.config is not None:
        config: dict[str, TomlValue] = grant.config.model_dump(mode="json", exclude_none=True)
        lines += ["", "[config]", *_pairs(config)]
    text = "\n".join(lines) + "\n"
    _check(text, grant)
    return text


def _check(text: str, grant: EnrollmentGrant) -> None:
    """Load ``text`` as the agent will, and compare its config with the grant's."""
    try:
        settings = EdgeSettings(**tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise EnrollmentError(f"the settings made from the fleet's grant are not valid: {exc}") from None
    if grant.config is not None and settings.config != grant.config:
        changed = _differences(grant.config, settings.config)
        raise EnrollmentError(
            f"the initial config cannot be written as TOML without changing it ({', '.join(changed)}): "
            "a value the fleet set to null has a default"
        )


def _differences(wanted: GatewayConfig, written: GatewayConfig) -> list[str]:
    a, b = wanted.model_dump(mode="json"), written.model_dump(mode="json")
    return [key for key in a if a[key] != b.get(key)] or ["config"]


def _pairs(table: Mapping[str, TomlValue]) -> list[str]:
    return [f"{_key(key)} = {_value(value)}" for key, value in table.items()]


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EnrollmentError(f"{value!r} has no place in the gateway's settings")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = [(key, item) for key, item in value.items() if item is not None]
        return "{ " + ", ".join(f"{_key(str(key))} = {_value(item)}" for key, item in items) + " }" if items else "{}"
    raise EnrollmentError(f"cannot write {value!r} ({type(value).__name__}) into the gateway's settings")


def _string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that TOML also wants DEL escaped."""
    return json.dumps(text).replace("\x7f", "\\u007f")
