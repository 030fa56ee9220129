"""Roles and what each may do. A route asks for one :class:`Permission`; a token carries one :class:`Role`."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from fleet.access.scope import PlaceScope


class Role(StrEnum):
    TECHNICIAN = "technician"  # provisions gateways and devices in the field, runs diagnostics
    COMMAND_STAFF = "command_staff"  # watches the fleet and handles alerts
    ADMIN = "admin"  # everything, including the site hierarchy, tokens and the audit log


class Permission(StrEnum):
    READ = "read"  # sites, gateways, devices, presence, health, alerts
    PROVISION = "provision"  # gateways and devices: create, change, remove, enroll
    DIAGNOSE = "diagnose"  # commands to gateways
    HANDLE_ALERTS = "handle_alerts"  # acknowledge, note, cancel, resolve
    MANAGE_SITES = "manage_sites"  # counties, towns, villages, grids; bulk import
    RESTORE_GATEWAYS = "restore_gateways"  # let a revoked (stolen, compromised) gateway in again
    ADMINISTER = "administer"  # API tokens, the audit log


GRANTS: Final[dict[Role, frozenset[Permission]]] = {
    Role.TECHNICIAN: frozenset({Permission.READ, Permission.PROVISION, Permission.DIAGNOSE}),
    Role.COMMAND_STAFF: frozenset({Permission.READ, Permission.HANDLE_ALERTS}),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling: the token's name (as the audit log records it), its role, and the place it is scoped to
    (None: the whole fleet)."""

    name: str
    role: Role
    scope: PlaceScope | None = None

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]
