"""Outgoing HTTP of the alert channels: Standard Webhooks secrets and signatures, the URL check against
requests into our own network (SSRF), and one POST. No Django, no MongoDB: settings come as arguments.

Signatures follow https://www.standardwebhooks.com/ through the ``standardwebhooks`` package:
``webhook-signature: v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">`` keyed by
the base64-decoded part of the channel's ``whsec_`` secret.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import math
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
WEBHOOK_ID_PREFIX = "msg_"
USER_AGENT = "loop-store-monitoring-webhooks/1"

Resolver = Callable[..., list[tuple[Any, ...]]]


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes (the format the spec's libraries read)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def new_webhook_id() -> str:
    return WEBHOOK_ID_PREFIX + secrets.token_urlsafe(18)


def signed_headers(*, secret: str, webhook_id: str, body: str, at: dt.datetime) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent at ``at`` (UTC; whole seconds are signed)."""
    utc = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
    signature = Webhook(secret).sign(msg_id=webhook_id, timestamp=utc, data=body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(math.floor(utc.timestamp())),
        "webhook-signature": signature,
    }


class UrlRefused(Exception):
    """The URL may not be called; the message says why (safe to show)."""


def _blocked(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
    )


def check_url(url: str, *, allow_private: bool, resolve: Resolver = socket.getaddrinfo) -> None:
    """Raise ``UrlRefused`` unless ``url`` is http(s) with a host whose every address is public
    (``allow_private`` lets private, loopback, link-local, reserved and multicast ones through)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("only http and https URLs are allowed")
    host = parts.hostname
    if not host:
        raise UrlRefused("the URL has no host")
    if parts.username or parts.password:
        raise UrlRefused("credentials in the URL are not allowed")
    if allow_private:
        return
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = resolve(host, port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as exc:
            raise UrlRefused(f"the host {host} does not resolve ({exc})") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise UrlRefused(f"the host {host} does not resolve")
    for address in addresses:
        if _blocked(address):
            raise UrlRefused(
                f"the host {host} resolves to {address}, a private, loopback, link-local, reserved or multicast "
                "address (set WEBHOOK_ALLOW_PRIVATE=1 to allow internal receivers)"
            )


@dataclass(frozen=True)
class HttpAnswer:
    """What one POST got: a status (None when no answer came) and the error text, Retry-After if any."""

    status_code: int | None
    error: str | None = None
    retry_after: str | None = None


def post(*, url: str, body: str, headers: dict[str, str], timeout: float) -> HttpAnswer:
    """POST ``body`` (UTF-8 JSON) without following redirects (their target was never checked)."""
    try:
        response = requests.post(
            url,
            data=body.encode("utf-8"),
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            timeout=(timeout, timeout),
            allow_redirects=False,
        )
    except requests.Timeout:
        return HttpAnswer(None, f"no answer within {timeout:g} s")
    except requests.RequestException as exc:
        return HttpAnswer(None, f"{type(exc).__name__}: {str(exc)[:200]}")
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}: {response.text[:200]}"
    return HttpAnswer(response.status_code, error, response.headers.get("Retry-After"))
