"""What a role or a key scope may do: the one home of these rules (pure, no Django models).

A view declares, per HTTP method, the one ``Capability`` a caller needs. A person's capabilities come
from their role; a key's are its scope's, cut down to what its owner's role allows today (a key never
outlives a demotion). ``ingest`` is deliberately not part of ``read``: a poller's key can post polls and
imports and nothing else, not even read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Capability(StrEnum):
    READ = "read"  # every GET, the dashboard, triggering a report (a report changes no data)
    INGEST = "ingest"  # POST /store_status/ and imports
    OPERATE = "operate"  # ack alerts; edit hours, zones, holidays, profiles; maintenance windows
    ADMIN = "admin"  # users, keys of others, channels, deleting reports and imports, the audit log


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


class Scope(StrEnum):
    READ = "read"
    INGEST = "ingest"
    OPERATE = "operate"
    ADMIN = "admin"


ALL = frozenset(Capability)

ROLE_CAPABILITIES: dict[Role, frozenset[Capability]] = {
    Role.VIEWER: frozenset({Capability.READ}),
    Role.OPERATOR: frozenset({Capability.READ, Capability.INGEST, Capability.OPERATE}),
    Role.ADMIN: ALL,
}

SCOPE_CAPABILITIES: dict[Scope, frozenset[Capability]] = {
    Scope.READ: frozenset({Capability.READ}),
    Scope.INGEST: frozenset({Capability.INGEST}),
    Scope.OPERATE: frozenset({Capability.READ, Capability.INGEST, Capability.OPERATE}),
    Scope.ADMIN: ALL,
}

# A key's visible prefix tells its kind (as healthchecks' hcw_/hcr_), so a leaked key found in a log or
# a repository says at once what it could do.
KEY_PREFIXES: dict[Scope, str] = {
    Scope.READ: "lpr_",
    Scope.INGEST: "lpi_",
    Scope.OPERATE: "lpo_",
    Scope.ADMIN: "lpa_",
}


def scope_allowed(*, scope: Scope, role: Role) -> bool:
    """A key may not do more than its owner: an operator cannot mint an admin key."""
    return SCOPE_CAPABILITIES[scope] <= ROLE_CAPABILITIES[role]


def key_capabilities(*, scope: Scope, owner_role: Role | None) -> frozenset[Capability]:
    """What a key may do now: its scope within its owner's current role (none without an active owner)."""
    if owner_role is None:
        return frozenset()
    return SCOPE_CAPABILITIES[scope] & ROLE_CAPABILITIES[owner_role]


@dataclass(frozen=True)
class Principal:
    """Who made a request, as ``request.auth`` after authentication, and what they may do.

    ``name`` is what the audit log records: a username, ``key:<prefix>`` or ``token:API_TOKEN``.
    """

    kind: str  # "user" (a session), "key", "token" (API_TOKEN / API_READ_TOKEN) or "open" (no sign-in required)
    name: str
    capabilities: frozenset[Capability]
    user_id: int | None = None
    key_id: str | None = None

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities
