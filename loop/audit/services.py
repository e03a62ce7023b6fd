"""Writing the audit log: ``record_audit``, called by every write view (and the Django admin's user, group and
key pages, and the sign-in's signal receivers) once its write succeeded; ``record_command_audit`` for the
``manage.py`` commands that change accounts.

Who: ``actor_of`` reads ``request.auth`` (the ``Principal`` of ``loop.api.access``: its name), else the
signed-in Django user (the admin site, which DRF does not authenticate), else ``anonymous``. One INSERT
per write; a failed INSERT (the accounts database away) does not undo or fail the write that already
happened: the entry goes to the log at ERROR level instead, whole.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError
from django.http import HttpRequest
from django.utils import timezone

from loop.accounts.capabilities import Principal
from loop.audit.models import (
    ACTION_MAX_LENGTH,
    ACTOR_MAX_LENGTH,
    ADDRESS_MAX_LENGTH,
    TARGET_MAX_LENGTH,
    AuditEntry,
)
from loop.request_ids import request_id_of

if TYPE_CHECKING:
    from rest_framework.request import Request

logger = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
COMMAND_ACTOR = "manage.py"  # whoever runs the commands holds the server's secrets; no request, no address


def actor_of(request: HttpRequest | Request) -> tuple[str, str]:
    """(actor, actor_kind) of a request: the name the audit log records and what kind of caller it is."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, Principal):
        if auth.kind == "open":
            # The open service names its principal after the signed-in user (only when the CSRF check passed).
            return (auth.name, "user") if auth.user_id is not None else (ANONYMOUS, ANONYMOUS)
        return auth.name, auth.kind
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return str(user.get_username()), "user"
    return ANONYMOUS, ANONYMOUS


def address_of(request: HttpRequest | Request) -> str:
    # DRF's client address (X-Forwarded-For only behind NUM_PROXIES trusted proxies), as the rate limit sees it.
    # Imported here: the Django admin loads this module in every process, the offline command's included.
    from rest_framework.request import Request
    from rest_framework.throttling import BaseThrottle

    drf_request = request if isinstance(request, Request) else Request(request)
    return str(BaseThrottle().get_ident(drf_request))


def _plain_json(detail: dict[str, Any] | None) -> dict[str, Any]:
    # Instants, enums and DRF's ReturnDict/ReturnList become plain JSON, so the INSERT cannot fail on a type.
    return json.loads(json.dumps(detail or {}, default=str)) if detail else {}


def record_audit(
    *,
    request: HttpRequest | Request,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
    actor: tuple[str, str] | None = None,
) -> AuditEntry | None:
    """Append one entry for a write that succeeded; the entry, or None when it could not be stored.

    ``actor``: (actor, actor_kind) when the caller knows better than the request (a sign-in names the user
    who just signed in); else ``actor_of(request)``."""
    name, kind = actor if actor is not None else actor_of(request)
    return _append(
        actor=name,
        actor_kind=kind,
        action=action,
        target=target,
        detail=detail,
        address=address_of(request),
        request_id=request_id_of(request),
    )


def record_command_audit(*, action: str, target: str = "", detail: dict[str, Any] | None = None) -> AuditEntry | None:
    """Append one entry for a write a ``manage.py`` command made (actor ``manage.py``, no address or request id)."""
    return _append(
        actor=COMMAND_ACTOR,
        actor_kind="command",
        action=action,
        target=target,
        detail=detail,
        address="",
        request_id="",
    )


def _append(
    *,
    actor: str,
    actor_kind: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None,
    address: str,
    request_id: str,
) -> AuditEntry | None:
    entry = AuditEntry(
        at=timezone.now(),
        actor=actor[:ACTOR_MAX_LENGTH],
        actor_kind=actor_kind,
        action=action[:ACTION_MAX_LENGTH],
        target=target[:TARGET_MAX_LENGTH],
        detail=_plain_json(detail),
        address=address[:ADDRESS_MAX_LENGTH],
        request_id=request_id,
    )
    try:
        entry.save(force_insert=True)
    except DatabaseError as exc:
        logger.error(
            "audit entry not stored (%s): %s",
            exc,
            json.dumps(
                {
                    "at": entry.at.isoformat(),
                    "actor": entry.actor,
                    "action": entry.action,
                    "target": entry.target,
                    "detail": entry.detail,
                    "address": entry.address,
                    "request_id": entry.request_id,
                }
            ),
        )
        return None
    return entry
