"""One enrollment, in an order that never leaves a gateway half-enrolled by its own doing:

1. check that the settings directory can be written (before the single-use token is spent);
2. make the gateway's key pair and enroll over HTTPS;
3. render the settings from the grant and check them as the agent will load them;
4. move the previous enrollment's files into a backup directory, then write the key, the broker CA, the
   fleet's signing key and, last, the settings that refer to them;
5. install the systemd unit, and start the agent if asked and systemd runs.

Every path written (into the settings and the unit) is absolute, whatever directory enrollment ran in. When
the unit's user (``outpost``) could not read the settings, enrollment warns, saying what to run, and does not
start the agent (it could only fail). The unit names only supplementary groups this system has.
"""

import logging
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from edge import AGENT_VERSION
from edge.enrollment.client import request_enrollment
from edge.enrollment.files import (
    PUBLIC_MODE,
    SECRET_MODE,
    Access,
    agent_cannot_read,
    back_up,
    prepare_directory,
    write_atomically,
)
from edge.enrollment.gateway_toml import SettingsPaths, UpdatePaths, production_ready, render_settings
from edge.enrollment.keys import generate_key_pair, generate_tls_request
from edge.enrollment.systemd import (
    DEFAULT_GUARD_DIR,
    SUPPLEMENTARY_GROUPS,
    UNIT_NAME,
    agent_command,
    existing_groups,
    install_guard,
    install_unit,
    start_agent,
    systemd_running,
    unit_text,
    update_root,
)
from edge.errors import EnrollmentError
from protocol.enrollment import EnrollmentGrant, EnrollmentRequest

logger = logging.getLogger(__name__)

SETTINGS_FILE: Final = "gateway.toml"
KEY_FILE: Final = "gateway-key.pem"
BROKER_CA_FILE: Final = "broker-ca.pem"
SIGNING_KEY_FILE: Final = "config-signing.pem"
TLS_CERT_FILE: Final = "broker-client.pem"
TLS_KEY_FILE: Final = "broker-client-key.pem"
RELEASE_KEYS_FILE: Final = "release-keys.pem"


@dataclass(frozen=True, slots=True)
class EnrollOptions:
    fleet_url: str
    token: str = field(repr=False)
    hostname: str
    config_dir: Path = Path("/etc/outpost")
    state_dir: Path = Path("/var/lib/outpost")
    fleet_ca: Path | None = None
    allow_http: bool = False
    group: str | None = None
    """The agent's group, which may read the settings; None: ``outpost`` if it exists; "": nobody's."""
    systemd_dir: Path | None = Path("/etc/systemd/system")
    """Where to install the unit; None: do not install it."""
    start: bool = False
    guard_dir: Path = DEFAULT_GUARD_DIR
    """Where the update guard goes, for an agent installed in update slots (``<root>/current``)."""


@dataclass(frozen=True, slots=True)
class EnrollmentResult:
    gateway_id: str
    village_id: str
    replaced: bool
    key_id: str
    settings_file: Path
    production: bool
    backup_dir: Path | None
    unit_file: Path | None
    started: bool
    notices: list[str]
    warnings: list[str] = field(default_factory=list)
    """What keeps the agent from running as installed (its user cannot read the settings...), with the fix."""


def enroll_gateway(options: EnrollOptions) -> EnrollmentResult:
    directory = options.config_dir.absolute()  # the settings and the unit name these paths: never relative
    state_dir = options.state_dir.absolute()
    access = Access.for_group(options.group)
    prepare_directory(directory, access)
    keys = generate_key_pair()
    tls = generate_tls_request(options.hostname)
    request = EnrollmentRequest(
        token=options.token,
        public_key_pem=keys.public_pem,
        hostname=options.hostname,
        agent_version=AGENT_VERSION,
        tls_csr_pem=tls.csr_pem,
    )
    grant = request_enrollment(options.fleet_url, request, ca_file=options.fleet_ca, allow_http=options.allow_http)
    settings_file, key_file = directory / SETTINGS_FILE, directory / KEY_FILE
    broker_ca = directory / BROKER_CA_FILE if grant.broker.ca_pem is not None else _system_ca(grant)
    signing_key = directory / SIGNING_KEY_FILE if grant.config_signing_key_pem is not None else None
    certified = grant.broker.client_cert_pem is not None
    tls_cert, tls_key = (directory / TLS_CERT_FILE, directory / TLS_KEY_FILE) if certified else (None, None)
    not_production = production_ready(grant)
    header = _header(grant, options.fleet_url, not_production)
    release_keys = directory / RELEASE_KEYS_FILE if grant.release_keys_pem is not None else None
    fleet_ca = options.fleet_ca.absolute() if options.fleet_ca is not None else None
    in_slots = update_root(Path(agent_command()[0])) is not None  # only an agent in two slots can update itself
    updates = (
        UpdatePaths(options.fleet_url.rstrip("/"), fleet_ca, key_file, release_keys)
        if release_keys is not None and in_slots
        else None
    )
    paths = SettingsPaths(state_dir, broker_ca, signing_key, tls_cert, tls_key, updates)
    text = render_settings(grant, paths, header=header)

    previous = [
        settings_file, key_file, directory / BROKER_CA_FILE, directory / SIGNING_KEY_FILE,
        directory / TLS_CERT_FILE, directory / TLS_KEY_FILE, directory / RELEASE_KEYS_FILE,
    ]  # fmt: skip
    backup = back_up(previous, directory)
    if updates is not None:  # the agent signs its update downloads with the gateway's key: it must read it
        write_atomically(key_file, keys.private_pem, access.settings_mode, access.gid)
    else:
        write_atomically(key_file, keys.private_pem, SECRET_MODE)
    if release_keys is not None and grant.release_keys_pem is not None:
        write_atomically(release_keys, grant.release_keys_pem, PUBLIC_MODE)
    if grant.broker.ca_pem is not None:
        write_atomically(directory / BROKER_CA_FILE, grant.broker.ca_pem, PUBLIC_MODE)
    if signing_key is not None and grant.config_signing_key_pem is not None:
        write_atomically(signing_key, grant.config_signing_key_pem, PUBLIC_MODE)
    if tls_cert is not None and tls_key is not None and grant.broker.client_cert_pem is not None:
        write_atomically(tls_key, tls.private_pem, access.settings_mode, access.gid)  # the agent reads it
        write_atomically(tls_cert, grant.broker.client_cert_pem, PUBLIC_MODE)
    write_atomically(settings_file, text, access.settings_mode, access.gid)

    notices = list(grant.notices)
    if not_production:
        notices.append(f"development settings: {'; '.join(not_production)}")
    service = _Service(None, started=False, notices=notices, warnings=[])
    if options.systemd_dir is not None:
        readable = [settings_file, *([tls_key] if tls_key is not None else []), *([key_file] if updates else [])]
        service = _install_service(
            options.systemd_dir, options.guard_dir, access, readable, state_dir, notices, start=options.start
        )
    logger.info("enrolled as gateway %s of %s (key %s)", grant.gateway_id, grant.village_id, keys.key_id)
    return EnrollmentResult(
        gateway_id=grant.gateway_id,
        village_id=grant.village_id,
        replaced=grant.replaced,
        key_id=keys.key_id,
        settings_file=settings_file,
        production=not not_production,
        backup_dir=backup,
        unit_file=service.unit_file,
        started=service.started,
        notices=service.notices,
        warnings=service.warnings,
    )


@dataclass(slots=True)
class _Service:
    unit_file: Path | None
    started: bool
    notices: list[str]
    warnings: list[str]


def _install_service(
    systemd_dir: Path,
    guard_dir: Path,
    access: Access,
    readable: list[Path],
    state_dir: Path,
    notices: list[str],
    *,
    start: bool,
) -> _Service:
    """Install the unit for the settings (``readable[0]``, and the files it names that the agent reads) and start
    it if asked; warn instead of starting when the unit's user could not read them."""
    settings_file = readable[0]
    groups, missing = existing_groups(SUPPLEMENTARY_GROUPS)
    if missing:
        notices.append(f"the unit leaves out the supplementary groups this system lacks: {', '.join(missing)}")
    unreadable = agent_cannot_read(access, settings_file.parent, readable)
    warnings = [unreadable] if unreadable is not None else []
    text = unit_text(
        settings_file, state_dir, group=access.group_name, supplementary_groups=groups, guard_dir=guard_dir
    )
    unit_file = install_unit(systemd_dir.absolute(), text)
    root = update_root(Path(agent_command()[0]))
    guarded = root is not None  # an agent in update slots: the guard that rolls a failed update back
    if root is not None:
        install_guard(guard_dir.absolute(), systemd_dir.absolute(), root)
    started = False
    if start and warnings:
        warnings.append(f"not started: fix that first, then systemctl restart {UNIT_NAME}")
    elif start:
        if systemd_running():
            start_agent(guarded=guarded)
            started = True
        else:
            notices.append(f"systemd is not running here: start the agent with outpost gateway run -c {settings_file}")
    return _Service(unit_file, started=started, notices=notices, warnings=warnings)


def _system_ca(grant: EnrollmentGrant) -> Path | None:
    """The system's CA bundle, for a TLS broker whose certificate a public CA signed (no CA in the grant)."""
    if not grant.broker.tls:
        return None
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise EnrollmentError("the broker speaks TLS, the fleet sent no CA for it, and this system has no CA bundle")


def _header(grant: EnrollmentGrant, fleet_url: str, not_production: list[str]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    lines = [
        f"Written by `outpost gateway enroll` at {when}: gateway {grant.gateway_id} of village {grant.village_id},",
        f"enrolled with {fleet_url}. Enroll again rather than edit the broker credentials.",
    ]
    if not_production:
        lines.append(f"Development settings: {'; '.join(not_production)}.")
    return "\n".join(lines)
