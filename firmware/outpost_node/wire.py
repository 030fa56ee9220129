"""The node protocol as the firmware writes it: topics and JSON payloads.

This mirrors ``protocol/node.py`` on the gateway, which the firmware cannot import (it runs on the
board); the contract tests decode everything built here with the gateway's own decoder.
"""

import json

PREFIX = "outpost-node/v1"
SCHEMA_VERSION = 1

STATUS = "status"
HEARTBEAT = "heartbeat"
EVENT = "event"
CONFIG = "config"  # gateway -> node, retained
CONFIG_RESULT = "config_result"

PRESS = "press"
LONG_PRESS = "long_press"
MULTI_PRESS = "multi_press"
DOOR_OPEN = "door_open"
DOOR_CLOSED = "door_closed"
DOOR_HELD_OPEN = "door_held_open"
MOTION = "motion"
TAMPER = "tamper"
TAMPER_CLEARED = "tamper_cleared"


def topic(node_id: str, channel: str) -> str:
    return PREFIX + "/" + node_id + "/" + channel


def _base(node_id: str, boot: int, uptime_ms: int) -> dict[str, object]:
    return {"schema_version": SCHEMA_VERSION, "node_id": node_id, "boot": boot, "uptime_ms": uptime_ms}


def status(node_id: str, boot: int, uptime_ms: int, online: bool) -> bytes:
    message = _base(node_id, boot, uptime_ms)
    message["state"] = "online" if online else "offline"
    return json.dumps(message).encode()


def heartbeat(
    node_id: str,
    boot: int,
    uptime_ms: int,
    interval_s: int,
    battery_v: "float | None",
    rssi_dbm: "int | None",
    reset_cause: str,
    firmware: str,
    queued: int,
) -> bytes:
    message = _base(node_id, boot, uptime_ms)
    message["interval_s"] = interval_s
    if battery_v is not None:
        message["battery_v"] = round(battery_v, 3)
    if rssi_dbm is not None:
        message["rssi_dbm"] = rssi_dbm
    message["reset_cause"] = reset_cause
    message["firmware"] = firmware
    message["queued"] = queued
    return json.dumps(message).encode()


def event(
    node_id: str,
    boot: int,
    uptime_ms: int,
    event_boot: int,
    seq: int,
    kind: str,
    at_ms: int,
    held_ms: int,
    count: int,
) -> bytes:
    """An event; ``at_ms`` is its uptime when it happened, meaningful only within this boot."""
    message = _base(node_id, event_boot, uptime_ms)
    message["seq"] = seq
    message["kind"] = kind
    if event_boot == boot:
        message["age_ms"] = max(0, uptime_ms - at_ms)
    if held_ms:
        message["held_ms"] = held_ms
    if count > 1:
        message["count"] = count
    return json.dumps(message).encode()


def config_result(node_id: str, boot: int, uptime_ms: int, revision: str, accepted: bool, errors: "list[str]") -> bytes:
    message = _base(node_id, boot, uptime_ms)
    message["revision"] = revision
    message["accepted"] = accepted
    message["errors"] = errors
    return json.dumps(message).encode()
