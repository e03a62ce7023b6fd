"""Alert channel use cases (POST/GET/PATCH/DELETE /channels/): where events go, and the rules of a channel.

A webhook channel gets a ``whsec_`` secret at creation: it is answered once (the creation's answer) and
kept server-side to sign every delivery. Webhook and Slack URLs are checked against SSRF here and again
at every send (``loop.services.deliveries``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from loop import storage
from loop.errors import InvalidInput, NotFound
from loop.events import SUBSCRIBABLE_EVENTS
from loop.ids import ID_SHAPE, is_id, new_id
from loop.services.paging import PAGE_SIZE_DEFAULT, Page, page_skip
from loop.timeutil import utcnow
from loop.webhooks import UrlRefused, check_url, new_secret

CHANNEL_ID_HELP = f"A channel id: {ID_SHAPE}."
NAME_MAX = 100
# The fields PATCH /channels/<id>/ may change (the kind never changes: a new kind is a new channel).
EDITABLE_FIELDS = ("name", "url", "email", "events", "enabled")


class ChannelKind(StrEnum):
    WEBHOOK = "webhook"  # Standard Webhooks: signed JSON POST
    SLACK = "slack"  # a Slack incoming-webhook URL: {"text": ...}
    EMAIL = "email"  # Django's e-mail backend


URL_KINDS = (ChannelKind.WEBHOOK, ChannelKind.SLACK)


@dataclass(frozen=True)
class ChannelView:
    channel_id: str
    name: str
    kind: str
    url: str | None
    email: str | None
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class CreatedChannel(ChannelView):
    """The creation's answer: the only one that carries the webhook secret."""

    secret: str | None


def url_problem(url: str) -> str | None:
    """Why a webhook or Slack URL may not be called now (None: it may), by the SSRF rule of ``loop.webhooks``."""
    try:
        check_url(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE)
    except UrlRefused as refused:
        return str(refused)
    return None


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise InvalidInput("name", f"must be 1 to {NAME_MAX} characters")
    return name


def _checked_events(events: Sequence[str] | None) -> list[str]:
    if events is None:
        return list(SUBSCRIBABLE_EVENTS)
    unknown = [event for event in events if event not in SUBSCRIBABLE_EVENTS]
    if unknown:
        raise InvalidInput(
            "events", f"unknown event type(s) {', '.join(map(str, unknown))}; one of {', '.join(SUBSCRIBABLE_EVENTS)}"
        )
    if not events:
        raise InvalidInput("events", "must name at least one event type")
    return [event for event in SUBSCRIBABLE_EVENTS if event in events]  # one each, in a fixed order


def _checked_target(kind: ChannelKind, url: str | None, email: str | None) -> tuple[str | None, str | None]:
    """(url, email) of a channel of ``kind``: a URL kind needs a callable URL and no e-mail, and vice versa."""
    if kind in URL_KINDS:
        if email:
            raise InvalidInput("email", f"a {kind.value} channel has no e-mail address")
        if not url:
            raise InvalidInput("url", f"a {kind.value} channel needs a url")
        problem = url_problem(url)
        if problem:
            raise InvalidInput("url", f"refused: {problem}")
        return url, None
    if url:
        raise InvalidInput("url", "an email channel has no url")
    if not email:
        raise InvalidInput("email", "an email channel needs an e-mail address")
    try:
        validate_email(email)
    except ValidationError as exc:
        raise InvalidInput("email", "is not a valid e-mail address") from exc
    return None, email


def _view(doc: Mapping[str, Any]) -> ChannelView:
    return ChannelView(
        channel_id=doc["channel_id"],
        name=doc["name"],
        kind=doc["kind"],
        url=doc.get("url"),
        email=doc.get("email"),
        events=list(doc["events"]),
        enabled=bool(doc["enabled"]),
        disabled_reason=doc.get("disabled_reason"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


def create_channel(
    *, name: str, kind: str, url: str | None = None, email: str | None = None, events: Sequence[str] | None = None
) -> CreatedChannel:
    try:
        channel_kind = ChannelKind(kind)
    except ValueError:
        raise InvalidInput("kind", f"must be one of {', '.join(k.value for k in ChannelKind)}") from None
    checked_url, checked_email = _checked_target(channel_kind, url, email)
    now = utcnow()
    doc: dict[str, Any] = {
        "channel_id": new_id(),
        "name": _checked_name(name),
        "kind": channel_kind.value,
        "url": checked_url,
        "email": checked_email,
        "events": _checked_events(events),
        "enabled": True,
        "disabled_reason": None,
        "secret": new_secret() if channel_kind == ChannelKind.WEBHOOK else None,
        "created_at": now,
        "updated_at": now,
    }
    storage.create_channel(storage.get_db(), doc)
    view = _view(doc)
    return CreatedChannel(**vars(view), secret=doc["secret"])


def _channel_doc(channel_id: str) -> dict[str, Any]:
    if not is_id(channel_id):
        raise NotFound(f"Unknown channel: {channel_id}")
    doc = storage.get_channel(storage.get_db(), channel_id)
    if doc is None:
        raise NotFound(f"Unknown channel: {channel_id}")
    return doc


def get_channel(*, channel_id: str) -> ChannelView:
    return _view(_channel_doc(channel_id))


def list_channels(*, page: int = 1, page_size: int = PAGE_SIZE_DEFAULT) -> Page[ChannelView]:
    """One page of the channels, newest first (never their secrets)."""
    skip = page_skip(page=page, page_size=page_size)
    count, docs = storage.list_channels(storage.get_db(), skip=skip, limit=page_size)
    return Page(count=count, page=page, page_size=page_size, results=[_view(doc) for doc in docs])


def update_channel(*, channel_id: str, changes: Mapping[str, Any]) -> ChannelView:
    """Change any of ``EDITABLE_FIELDS``; the URL is checked again, and enabling clears ``disabled_reason``."""
    doc = _channel_doc(channel_id)
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput(unknown[0], f"cannot be changed (only {', '.join(EDITABLE_FIELDS)})")
    fields: dict[str, Any] = {}
    if "name" in changes:
        fields["name"] = _checked_name(str(changes["name"]))
    if "events" in changes:
        if changes["events"] is None:
            raise InvalidInput("events", "must name at least one event type")
        fields["events"] = _checked_events(changes["events"])
    if "url" in changes or "email" in changes:
        url = changes.get("url", doc.get("url"))
        email = changes.get("email", doc.get("email"))
        fields["url"], fields["email"] = _checked_target(ChannelKind(doc["kind"]), url, email)
    if "enabled" in changes:
        fields["enabled"] = bool(changes["enabled"])
        if fields["enabled"]:
            fields["disabled_reason"] = None
        elif not doc.get("disabled_reason"):
            fields["disabled_reason"] = "disabled by a user"
    if not fields:
        return _view(doc)
    updated = storage.update_channel(storage.get_db(), channel_id, fields)
    if updated is None:
        raise NotFound(f"Unknown channel: {channel_id}")
    return _view(updated)


def delete_channel(*, channel_id: str) -> None:
    """Remove the channel; its pending deliveries fail at their next attempt (their channel is gone)."""
    _channel_doc(channel_id)
    storage.delete_channel(storage.get_db(), channel_id)


def disable_channel(*, channel_id: str, reason: str) -> None:
    storage.update_channel(storage.get_db(), channel_id, {"enabled": False, "disabled_reason": reason})
