"""A real Mosquitto broker on a loopback port, with its config, log and persistence in a directory it owns.

The tests and the demo start one per run; fault tests kill it (:meth:`MosquittoBroker.kill`) and start
it again on the same port. The executable is found by :func:`mosquitto_binary`: ``mosquitto`` on
``PATH``, else the Debian package's ``/usr/sbin/mosquitto``. With a :class:`TlsListener` it also
(or only) serves MQTT over TLS, e.g. with certificates from :mod:`simulators.infra.certificates`. With a
:class:`DynsecAdmin` it loads Mosquitto's dynamic security plugin: only clients created through the
plugin's control topic may connect, and each may do only what its roles grant.
"""

import base64
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from protocol.codec import MAX_PACKET_BYTES
from simulators.infra.errors import BinaryNotFoundError
from simulators.infra.managed import ManagedServer, PortTakenError
from simulators.infra.ports import LOOPBACK, free_port, port_accepts
from simulators.infra.process import file_size, read_from

logger = logging.getLogger(__name__)

MOSQUITTO_FALLBACK_PATH: Final = Path("/usr/sbin/mosquitto")
_READY_RE: Final = re.compile(r"mosquitto version \S+ running")
_MAX_QUEUED_BYTES: Final = 256 * 1024 * 1024  # per client
DYNSEC_PLUGIN_NAME: Final = "mosquitto_dynamic_security.so"
DYNSEC_PLUGIN_DIRECTORIES: Final = (
    Path("/usr/lib/x86_64-linux-gnu"),
    Path("/usr/lib/aarch64-linux-gnu"),
    Path("/usr/lib"),
    Path("/usr/local/lib"),
)
DYNSEC_CONTROL_FILTER: Final = "$CONTROL/dynamic-security/#"
# What ``mosquitto_ctrl dynsec init`` writes with Mosquitto 2.0: PBKDF2-SHA512, a 12-byte salt, 101 rounds.
_DYNSEC_SALT_BYTES: Final = 12
_DYNSEC_ITERATIONS: Final = 101


def mosquitto_binary() -> Path | None:
    """The Mosquitto executable: ``mosquitto`` on ``PATH``, else ``/usr/sbin/mosquitto``, else None."""
    found = shutil.which("mosquitto")
    if found is not None:
        return Path(found)
    if os.access(MOSQUITTO_FALLBACK_PATH, os.X_OK):
        return MOSQUITTO_FALLBACK_PATH
    return None


def dynamic_security_plugin() -> Path | None:
    """Mosquitto's dynamic security plugin (Debian's ``mosquitto`` package ships it), or None."""
    for directory in DYNSEC_PLUGIN_DIRECTORIES:
        candidate = directory / DYNSEC_PLUGIN_NAME
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True, slots=True)
class DynsecAdmin:
    """The one client a freshly initialised dynamic security configuration holds: it may only publish
    commands to, and read the answers from, ``$CONTROL/dynamic-security/…`` (no application topics)."""

    username: str
    password: str = field(repr=False)


def dynsec_initial_config(admin: DynsecAdmin) -> dict[str, object]:
    """The plugin's configuration as ``mosquitto_ctrl dynsec init FILE ADMIN PASSWORD`` writes it (same
    password hashing), except that the admin may not read application topics or ``$SYS`` and that every
    ACL type defaults to deny (the plugin's own defaults let every client receive and unsubscribe anything)."""
    salt = secrets.token_bytes(_DYNSEC_SALT_BYTES)
    password_hash = hashlib.pbkdf2_hmac("sha512", admin.password.encode(), salt, _DYNSEC_ITERATIONS)
    control_acls = [
        {"acltype": acltype, "topic": DYNSEC_CONTROL_FILTER, "allow": True}
        for acltype in ("publishClientSend", "publishClientReceive", "subscribePattern", "unsubscribePattern")
    ]
    return {
        "clients": [
            {
                "username": admin.username,
                "textname": "Dynamic security administrator",
                "password": base64.b64encode(password_hash).decode("ascii"),
                "salt": base64.b64encode(salt).decode("ascii"),
                "iterations": _DYNSEC_ITERATIONS,
                "roles": [{"rolename": "admin"}],
            }
        ],
        "roles": [{"rolename": "admin", "acls": control_acls}],
        "groups": [],
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": False,
        },
    }


@dataclass(frozen=True, slots=True)
class TlsListener:
    """A TLS listener's PEM files: the broker's certificate and key, and the CA it trusts for client
    certificates; with ``require_certificate`` a client must present one signed by that CA."""

    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = False


class MosquittoBroker(ManagedServer):
    """A ``mosquitto`` process listening on 127.0.0.1 only, on a free port unless ``port`` is given.

    :meth:`start` returns once Mosquitto has logged that it runs and its ports accept connections.

    With ``tls`` it also listens for MQTT over TLS on :attr:`tls_port`, a free port of its own; with
    ``plain=False`` as well, that is its only listener and :attr:`tls_port` is :attr:`port`.

    Everything it writes lives in :attr:`directory`: ``mosquitto.conf``, ``mosquitto.log`` (its
    ``log_dest``), ``mosquitto.out`` (anything it prints before its log is open) and, with
    ``persistence=True``, ``persistence/mosquitto.db``, so retained messages and persistent sessions
    survive :meth:`restart` and :meth:`kill` followed by :meth:`start`. Mosquitto saves that database
    when it stops and every ``autosave_interval_s`` seconds, so a hard kill loses at most that much.

    With ``dynamic_security`` it loads Mosquitto's dynamic security plugin with a configuration,
    :attr:`dynsec_config_path`, that it writes before the first start: the admin client only, every ACL
    type denied by default, anonymous clients refused (``allow_anonymous`` must not be True). The
    plugin saves every change to that file, so clients and roles survive a restart, like the directory.

    :meth:`stop` and :meth:`kill` keep the directory, and the port, for a later :meth:`start`;
    :meth:`close` (and leaving ``async with``) also deletes the directory.
    """

    display_name = "mosquitto"
    url_scheme = "mqtt"

    def __init__(
        self,
        *,
        port: int | None = None,
        allow_anonymous: bool | None = None,
        persistence: bool = False,
        autosave_interval_s: int = 1,
        extra_config: Sequence[str] = (),
        tls: TlsListener | None = None,
        plain: bool = True,
        dynamic_security: DynsecAdmin | None = None,
        binary: Path | None = None,
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(port=port, binary=binary, start_timeout_s=start_timeout_s, stop_timeout_s=stop_timeout_s)
        if dynamic_security is not None and allow_anonymous:
            raise ValueError("a broker with dynamic security refuses anonymous clients")
        self._allow_anonymous = allow_anonymous if allow_anonymous is not None else dynamic_security is None
        self._dynamic_security = dynamic_security
        self._persistence = persistence
        self._autosave_interval_s = autosave_interval_s
        self._extra_config = tuple(extra_config)
        if not plain and tls is None:
            raise ValueError("a broker without its plain listener needs a TLS listener")
        self._tls = tls
        self._plain = plain
        self._separate_tls_port = free_port() if tls is not None and plain else None

    @classmethod
    def find_binary(cls) -> Path | None:
        return mosquitto_binary()

    @classmethod
    def not_installed_message(cls) -> str:
        return (
            f"mosquitto is not installed (not on PATH, not at {MOSQUITTO_FALLBACK_PATH}); "
            "run scripts/test, which installs it"
        )

    @property
    def speaks_mqtt5(self) -> bool:
        """Mosquitto 2 speaks MQTT 5 and 3.1.1."""
        return True

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:port``, or ``mqtts://…`` when the only listener is the TLS one."""
        return super().url if self._plain else f"mqtts://{LOOPBACK}:{self._port}"

    @property
    def tls_port(self) -> int | None:
        """The TLS listener's port (:attr:`port` when it is the only listener), or None without TLS."""
        if self._tls is None:
            return None
        return self._separate_tls_port if self._separate_tls_port is not None else self._port

    @property
    def config_path(self) -> Path:
        return self._directory / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self._directory / "mosquitto.log"

    @property
    def dynsec_config_path(self) -> Path | None:
        """The dynamic security plugin's configuration (which it rewrites on every change), if loaded."""
        return self._directory / "dynamic-security.json" if self._dynamic_security is not None else None

    @property
    def persistence_path(self) -> Path | None:
        """Mosquitto's database file when persistence is on (it appears after the first save)."""
        return self._directory / "persistence" / "mosquitto.db" if self._persistence else None

    @property
    def _output_path(self) -> Path:
        return self._directory / "mosquitto.out"

    def _config_lines(self) -> list[str]:
        lines = ["# Written by simulators.infra.mosquitto for one test or demo broker."]
        if os.geteuid() == 0:
            # Started as root, Mosquitto 2 switches to the 'mosquitto' user, which cannot write here.
            lines.append("user root")
        lines += [
            "per_listener_settings false",
            *self._listener_lines(),
            f"allow_anonymous {str(self._allow_anonymous).lower()}",
            f"persistence {str(self._persistence).lower()}",
            # Mosquitto's default (1000) silently drops QoS 1 messages for a subscriber that falls more
            # than 1000 behind, connected or not: a gateway replaying after an outage outruns a slow
            # subscriber easily. Outpost's subscribers (fleet ingest, test recorders) must lose nothing,
            # so the bound is on bytes instead, generous for a test or demo broker.
            "max_queued_messages 0",
            f"max_queued_bytes {_MAX_QUEUED_BYTES}",
            "set_tcp_nodelay true",
            # Refuse any packet larger than the contract allows (the client is disconnected, MQTT 5 clients
            # are told the limit in CONNACK): nobody makes the broker, or a subscriber, hold a huge message.
            f"max_packet_size {MAX_PACKET_BYTES}",
        ]
        if self._persistence:
            lines += [
                f"persistence_location {self._directory / 'persistence'}/",
                "persistence_file mosquitto.db",
                f"autosave_interval {self._autosave_interval_s}",
            ]
        lines += [
            f"log_dest file {self.log_path}",
            *(f"log_type {kind}" for kind in ("error", "warning", "notice", "information")),
            "log_timestamp true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
            *self._plugin_lines(),
            *self._extra_config,
        ]
        return lines

    def _plugin_lines(self) -> list[str]:
        if self.dynsec_config_path is None:
            return []
        plugin = dynamic_security_plugin()
        if plugin is None:
            searched = ", ".join(str(directory) for directory in DYNSEC_PLUGIN_DIRECTORIES)
            raise BinaryNotFoundError(f"{DYNSEC_PLUGIN_NAME} is not installed (searched {searched})")
        return [f"plugin {plugin}", f"plugin_opt_config_file {self.dynsec_config_path}"]

    def _listener_lines(self) -> list[str]:
        lines = [f"listener {self._port} {LOOPBACK}"] if self._plain else []
        tls, tls_port = self._tls, self.tls_port
        if tls is not None and tls_port is not None:
            lines += [
                f"listener {tls_port} {LOOPBACK}",
                f"cafile {tls.cafile}",
                f"certfile {tls.certfile}",
                f"keyfile {tls.keyfile}",
                f"require_certificate {str(tls.require_certificate).lower()}",
            ]
        return lines

    def _listening_ports(self) -> list[int]:
        return [self._port] if self._separate_tls_port is None else [self._port, self._separate_tls_port]

    async def _start_once(self, binary: Path) -> None:
        if self._persistence:
            (self._directory / "persistence").mkdir(exist_ok=True)
        self.config_path.write_text("\n".join(self._config_lines()) + "\n", encoding="utf-8")
        dynsec_config = self.dynsec_config_path
        if self._dynamic_security is not None and dynsec_config is not None and not dynsec_config.exists():
            # Only before the first start: afterwards the plugin keeps its clients and roles there.
            initial = json.dumps(dynsec_initial_config(self._dynamic_security), indent=2).encode()
            descriptor = os.open(dynsec_config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # password hashes
            with os.fdopen(descriptor, "wb") as file:
                file.write(initial)
        log_offset = file_size(self.log_path)

        async def is_ready() -> bool:
            # The log line rules out something else answering on a port we picked.
            logged_running = _READY_RE.search(read_from(self.log_path, log_offset)) is not None
            return logged_running and all([await port_accepts(LOOPBACK, port) for port in self._listening_ports()])

        argv = [str(binary), "-c", str(self.config_path)]
        try:
            process = await self._launch(argv, self._output_path, is_ready, logs=[self.log_path])
        except PortTakenError:
            # ManagedServer.start picks another main port and retries; the TLS one moves with it.
            if self._separate_tls_port is not None and not self._has_started:
                self._separate_tls_port = free_port()
            raise
        tls = f", TLS on port {self.tls_port}" if self._plain and self.tls_port is not None else ""
        logger.info("mosquitto (pid %d) listening on %s%s, files in %s", process.pid, self.url, tls, self._directory)
