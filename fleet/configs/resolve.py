"""A resolved gateway config as the fleet versions and signs it: its canonical JSON and its digest."""

import hashlib
import json
from typing import Any

from protocol.gateway_config import GatewayConfig


def canonical(config: GatewayConfig) -> dict[str, Any]:
    """The config as JSON values, exactly as the signature covers it."""
    return config.model_dump(mode="json")


def digest(config: GatewayConfig) -> str:
    """SHA-256 of the config's deterministic JSON (sorted keys, no whitespace): equal configs, equal digests."""
    text = json.dumps(canonical(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
