"""A node's settings: the JSON file written when it is flashed, and the updates the gateway pushes.

Every setting has a type, a range and a default; a file or update with an unknown key, a wrong type
or a value out of range is refused as a whole, with every problem listed. The gateway may change
only the thresholds and timers (``REMOTE``): identity, network and pins are set when flashing, so
no pushed update can cut a node off its network or its inputs.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    Settings = dict[str, int | float | bool | str]

ROLES = ("panic_button", "door_contact", "pir_sensor")
SLEEP_MODES = ("none", "light", "deep")

# name: (type, default, low, high); None as a default means "must be given" or "unset" (see OPTIONAL).
_SPEC = {
    "node_id": (str, None, 1, 64),
    "role": (str, None, 0, 0),
    "wifi_ssid": (str, None, 1, 32),
    "wifi_password": (str, "", 0, 64),
    "broker_host": (str, None, 1, 253),
    "broker_port": (int, 1883, 1, 65535),
    "broker_user": (str, "", 0, 64),
    "broker_password": (str, "", 0, 128),
    "keepalive_s": (int, 60, 10, 3600),
    "input_pin": (int, None, 0, 48),
    "active_low": (bool, True, 0, 0),  # a button to ground; False for a door contact or a PIR
    "pull_up": (bool, True, 0, 0),  # False for a PIR's push-pull output
    "tamper_pin": (int, -1, -1, 48),
    "battery_adc_pin": (int, -1, -1, 48),
    "battery_divider": (float, 2.0, 1.0, 10.0),
    "heartbeat_s": (int, 60, 5, 3600),
    "confirm_ms": (int, 5, 1, 50),
    "settle_ms": (int, 30, 5, 2000),
    "long_press_ms": (int, 2000, 300, 60000),
    "multi_window_ms": (int, 600, 150, 5000),
    "held_open_s": (int, 0, 0, 86400),
    "rearm_s": (int, 30, 0, 3600),
    "queue_size": (int, 32, 4, 128),
    "ring_slots": (int, 16, 4, 64),
    "sleep": (str, "none", 0, 0),
    "watchdog_s": (int, 30, 5, 120),
    "revision": (str, "", 0, 64),  # of the last update the gateway pushed
}
REQUIRED = ("node_id", "role", "wifi_ssid", "broker_host", "input_pin")
REMOTE = (
    "heartbeat_s",
    "confirm_ms",
    "settle_ms",
    "long_press_ms",
    "multi_window_ms",
    "held_open_s",
    "rearm_s",
    "sleep",
)
_CHOICES = {"role": ROLES, "sleep": SLEEP_MODES}
_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-_"


def _check(name: str, value: object) -> str:
    """The problem with ``value`` for setting ``name``, or "" if none."""
    spec = _SPEC.get(name)
    if spec is None:
        return name + ": unknown setting"
    kind, _, low, high = spec
    if kind is float and type(value) is int:
        value = float(value)
    if type(value) is not kind:
        return name + ": must be " + kind.__name__
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            return name + ": must be one of " + ", ".join(_CHOICES[name])
    elif isinstance(value, str):
        if not low <= len(value) <= high:
            return name + ": length must be " + str(low) + ".." + str(high)
        if name == "node_id" and any(c not in _ID_CHARS for c in value):
            return name + ": only a-z, 0-9, '-' and '_'"
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and not low <= value <= high:
        return name + ": must be " + str(low) + ".." + str(high)
    return ""


def defaults() -> "Settings":
    return {name: spec[1] for name, spec in _SPEC.items() if spec[1] is not None}


def validate(values: object) -> "tuple[Settings, list[str]]":
    """Settings from a flashed file: ``(settings with defaults filled in, problems)``."""
    if not isinstance(values, dict):
        return {}, ["settings must be a JSON object"]
    problems = [problem for problem in (_check(str(k), v) for k, v in values.items()) if problem]
    problems.extend(name + ": required" for name in REQUIRED if name not in values)
    if values.get("tamper_pin", -1) == values.get("input_pin") != -1:
        problems.append("tamper_pin: must differ from input_pin")
    settings = defaults()
    settings.update(values)
    for name, spec in _SPEC.items():
        value = settings.get(name)
        if spec[0] is float and type(value) is int:
            settings[name] = float(value)  # a whole number written without ".0" in the JSON
    return settings, problems


def apply_update(current: "Settings", update: object) -> "tuple[Settings, list[str]]":
    """``current`` with a pushed ``update`` applied: ``(new settings, problems)``; with problems, unchanged."""
    if not isinstance(update, dict):
        return current, ["update must be a JSON object"]
    problems = []
    for name, value in update.items():
        problem = _check(str(name), value)
        if not problem and name not in REMOTE:
            problem = str(name) + ": set only when flashing the node"
        if problem:
            problems.append(problem)
    if problems:
        return current, problems
    merged = dict(current)
    merged.update(update)
    return merged, []
