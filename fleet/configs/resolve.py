"""Resolving a gateway's config from its layers: a deep merge, later layers winning, validated by the edge's model.

Mappings merge key by key, to any depth; anything else (numbers, strings, null, lists) is replaced whole
by the later layer. Lists are never merged element by element: a device list set at village level and
another at gateway level would otherwise mix two technicians' intentions. The merge starts from the
model's defaults, so the resolved config is the whole config the gateway runs, and two layer sets that
mean the same config (a layer repeating a default) resolve to the same digest, hence the same version.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pydantic import ValidationError

from protocol.camera_sources import camera_source_problem
from protocol.gateway_config import DriverKind, GatewayConfig

Overrides = Mapping[str, Any]
_DEFAULTS: Final = GatewayConfig().model_dump(mode="json")
_ERRORS_SHOWN: Final = 5


def deep_merge(base: Overrides, override: Overrides) -> dict[str, Any]:
    """``base`` with ``override`` on top: mappings merged recursively, every other value replaced whole."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def merge_layers(layers: Iterable[Overrides]) -> dict[str, Any]:
    """The model's defaults with each layer merged on top, in order (the last one wins)."""
    merged: dict[str, Any] = dict(_DEFAULTS)
    for layer in layers:
        merged = deep_merge(merged, layer)
    return merged


def validated(document: Overrides) -> GatewayConfig:
    """``document`` as a :class:`GatewayConfig`, validated as strictly as the gateway's decoder does.

    Raises :class:`ValueError` with a one-line summary of what is wrong (at most five problems)."""
    try:
        text = json.dumps(document, allow_nan=False)
    except ValueError as exc:  # NaN or infinity: JSON cannot carry them, the gateway would refuse them
        raise ValueError(f"not valid JSON: {exc}") from None
    try:
        config = GatewayConfig.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise ValueError(summary(exc)) from None
    for device in config.devices:
        source = device.params.get("source") if device.driver is DriverKind.CAMERA else None
        problem = camera_source_problem(source, files=False) if isinstance(source, str) else None
        if problem is not None:  # the gateway would refuse it too: say so now, to whoever wrote the layer
            raise ValueError(f"devices.{device.id}.params.source: {problem}")
    return config


def summary(error: ValidationError) -> str:
    """A validation error in one line: ``where: what`` for its first problems."""
    details = error.errors(include_url=False, include_input=False, include_context=False)
    shown = "; ".join(f"{'.'.join(map(str, d['loc'])) or 'config'}: {d['msg']}" for d in details[:_ERRORS_SHOWN])
    more = f" (and {len(details) - _ERRORS_SHOWN} more)" if len(details) > _ERRORS_SHOWN else ""
    return shown + more


def resolve(layers: Iterable[Overrides]) -> GatewayConfig:
    """The config that ``layers`` (most general first) make; :class:`ValueError` if it is not valid."""
    return validated(merge_layers(layers))


def canonical(config: GatewayConfig) -> dict[str, Any]:
    """The config as JSON values, exactly as the signature covers it."""
    return config.model_dump(mode="json")


def digest(config: GatewayConfig) -> str:
    """SHA-256 of the config's deterministic JSON (sorted keys, no whitespace): equal configs, equal digests."""
    text = json.dumps(canonical(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
