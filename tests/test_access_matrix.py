"""Every route declares who may call it, and answers each kind of caller as docs/access.md's table says.

The table (method, path, what it needs) is parsed from the markdown, so the documentation and the
behaviour cannot drift: the URL walk fails for a DRF route without a declaration covering each of its
methods, or one that disagrees with the table; the matrix calls every row as every kind of caller.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.views import APIView

from loop.accounts.capabilities import Capability, Role, Scope
from loop.accounts.models import ApiKey
from loop.api.access import CapabilityAccess
from tests.support.accounts import bearer, make_key, make_user
from tests.support.api import FULL, READ, VALID_ID

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "access.md"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Routes that are not DRF views, by the module of their view: the dashboard pages (HTML shells, their
# data comes through the API), Django's admin and auth pages (their own staff sign-in; the admin's own-password
# page audited by loop.accounts.admin), the JSON 404.
NOT_API_MODULES = ("loop.dashboard", "django.contrib.", "loop.accounts.admin", "loop.api.errors")


@dataclass(frozen=True)
class Row:
    method: str
    path: str  # /stores/<store_id>/timezone/
    needs: str  # public, identified, or a capability


def access_table() -> list[Row]:
    text = DOC.read_text()
    section = text.split("## Every route", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in METHODS:
            rows.append(Row(cells[0], cells[1].strip("`"), cells[2]))
    return rows


TABLE = access_table()


def test_the_table_is_read_and_says_what_the_issue_asks() -> None:
    # The parsing must find the rows, or the matrix below proves nothing.
    assert len(TABLE) >= 45
    needs = {(row.method, row.path): row.needs for row in TABLE}
    assert needs[("POST", "/store_status/")] == "ingest"
    assert needs[("POST", "/imports/")] == "ingest"
    assert needs[("POST", "/trigger_report/")] == "read"  # a report changes no data
    assert needs[("DELETE", "/reports/<report_id>/")] == "admin"
    assert needs[("POST", "/alerts/<alert_id>/ack/")] == "operate"
    assert needs[("PUT", "/stores/<store_id>/business_hours/")] == "operate"
    assert needs[("POST", "/channels/")] == "admin"
    assert needs[("GET", "/health/")] == "public"
    assert needs[("GET", "/me/")] == "identified"
    assert len(needs) == len(TABLE)  # no route listed twice


# --- the URL walk -----------------------------------------------------------------------------------


def _route(regex: str) -> str:
    """``^stores/(?P<store_id>[^/]+)/timezone/?$`` -> ``stores/<store_id>/timezone/``."""
    text = regex.removeprefix("^").removesuffix("$")
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", text)
    return text.replace("/?", "/")


def walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for entry in patterns:
        if isinstance(entry, URLResolver) and entry.app_name == "admin":
            continue  # Django's admin: its own staff sign-in, no API view
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + _route(str(entry.pattern)))
        else:
            assert isinstance(entry, URLPattern)
            yield "/" + prefix + _route(str(entry.pattern)), entry.callback


def implemented(view: type[APIView]) -> set[str]:
    return {method for method in METHODS if hasattr(view, method.lower())}


def test_every_api_route_declares_each_of_its_methods_as_the_table_says() -> None:
    table = {(row.method, row.path): row.needs for row in TABLE}
    found: dict[tuple[str, str], str] = {}
    for path, callback in walk(get_resolver().url_patterns):
        view = getattr(callback, "cls", None)
        if view is None or not issubclass(view, APIView):
            module = getattr(callback, "view_class", callback).__module__
            assert module.startswith(NOT_API_MODULES), f"{path}: {module} is neither an API view nor a known page"
            continue
        declared = getattr(view, "required_capabilities", None)
        assert isinstance(declared, dict), f"{path} ({view.__name__}) declares no required_capabilities"
        assert set(declared) == implemented(view), f"{path} ({view.__name__}): {sorted(declared)}"
        assert CapabilityAccess in view.permission_classes, f"{path} ({view.__name__}) skips CapabilityAccess"
        for method, capability in declared.items():
            assert capability is None or isinstance(capability, Capability), (path, method)
            if capability is None:
                needs = "identified" if getattr(view, "requires_identity", False) else "public"
            else:
                needs = capability.value
            found[(method, path)] = needs
    assert found == table


# --- the matrix ----------------------------------------------------------------------------------------

ALL4 = frozenset({"read", "ingest", "operate", "admin"})
OPERATOR = frozenset({"read", "ingest", "operate"})
READ_ONLY = frozenset({"read"})
# Each kind of caller and what it may do (None: its credentials are refused).
CALLERS: dict[str, frozenset[str] | None] = {
    "no credentials": None,
    "wrong key": None,
    "expired key": None,
    "revoked key": None,
    "key of a deactivated owner": None,
    "viewer session": READ_ONLY,
    "session without a role": frozenset(),
    "read key": READ_ONLY,
    "ingest key": frozenset({"ingest"}),
    "operator session": OPERATOR,
    "operate key": OPERATOR,
    "admin session": ALL4,
    "admin key": ALL4,
    "API_TOKEN": ALL4,
    "API_READ_TOKEN": READ_ONLY,
}


def _session(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _with(headers: dict[str, str]) -> APIClient:
    client = APIClient()
    client.credentials(**headers)
    return client


@pytest.fixture
def clients(mdb: Any, tokens: None, settings: Any, db: None) -> dict[str, APIClient]:
    settings.TRIGGER_RATE_LIMIT = "0"  # the matrix triggers reports many times
    viewer, operator = make_user("vera", Role.VIEWER), make_user("otto", Role.OPERATOR)
    admin = make_user("ada", Role.ADMIN)
    roleless = make_user("rolf", Role.VIEWER)
    roleless.groups.clear()
    gone = make_user("gus", Role.OPERATOR)
    read_key, read_row = make_key(viewer, Scope.READ)
    expired, expired_row = make_key(admin, Scope.ADMIN, expires_at=timezone.now() + dt.timedelta(days=1))
    ApiKey.objects.filter(pk=expired_row.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    revoked, revoked_row = make_key(admin, Scope.ADMIN)
    ApiKey.objects.filter(pk=revoked_row.pk).update(revoked_at=timezone.now())
    gone_key, _ = make_key(gone, Scope.OPERATE)
    gone.is_active = False
    gone.save()
    clients = {
        "no credentials": APIClient(),
        "wrong key": _with(bearer(f"{read_row.prefix}_{'A' * 43}")),
        "expired key": _with(bearer(expired)),
        "revoked key": _with(bearer(revoked)),
        "key of a deactivated owner": _with(bearer(gone_key)),
        "viewer session": _session(viewer),
        "session without a role": _session(roleless),
        "read key": _with(bearer(read_key)),
        "ingest key": _with(bearer(make_key(operator, Scope.INGEST)[0])),
        "operator session": _session(operator),
        "operate key": _with(bearer(make_key(operator, Scope.OPERATE)[0])),
        "admin session": _session(admin),
        "admin key": _with(bearer(make_key(admin, Scope.ADMIN)[0])),
        "API_TOKEN": _with(bearer(FULL)),
        "API_READ_TOKEN": _with(bearer(READ)),
    }
    assert set(clients) == set(CALLERS)
    return clients


def concrete(path: str) -> str:
    return re.sub(r"<(\w+)>", lambda m: "s1" if m.group(1) == "store_id" else VALID_ID, path)


def expected(needs: str, may: frozenset[str] | None) -> str:
    if needs == "public":
        return "through"
    if may is None:
        return "401"
    if needs == "identified" or needs in may:
        return "through"
    return "403"


@pytest.mark.accounts
@pytest.mark.parametrize("row", TABLE, ids=[f"{row.method} {row.path}" for row in TABLE])
def test_each_caller_gets_what_the_table_says(clients: dict[str, APIClient], row: Row) -> None:
    wrong = []
    for caller, client in clients.items():
        response = client.generic(row.method, concrete(row.path), b"{}", content_type="application/json")
        status = response.status_code
        got = str(status) if status in (401, 403) else "through"
        want = expected(row.needs, CALLERS[caller])
        assert status < 500, (caller, status, response.content[:300])
        if got != want:
            wrong.append((caller, want, status, response.content[:160]))
        elif got != "through":
            assert response["Content-Type"] == "application/json" and response.json()["error"]
            if got == "401":
                assert response["WWW-Authenticate"].startswith("Bearer")
    assert wrong == []


@pytest.mark.accounts
@pytest.mark.parametrize("method", ["HEAD", "OPTIONS"])
def test_head_and_options_need_what_get_needs(clients: dict[str, APIClient], method: str) -> None:
    for caller in ("no credentials", "ingest key", "viewer session", "read key"):
        status = clients[caller].generic(method, "/reports/").status_code
        assert status == {"no credentials": 401, "ingest key": 403}.get(caller, 200), (caller, status)
    # A view without GET: describing it is a read.
    assert clients["ingest key"].options("/store_status/").status_code == 403
    assert clients["read key"].options("/store_status/").status_code == 200


@pytest.mark.accounts
def test_a_method_the_view_lacks_is_405_for_everyone_allowed_or_not(clients: dict[str, APIClient]) -> None:
    for caller in ("no credentials", "ingest key", "admin key"):
        assert clients[caller].put("/overview/", {}, format="json").status_code == 405, caller
        assert clients[caller].get(f"/reports/{VALID_ID}/").status_code == 405, caller


@pytest.mark.accounts
def test_the_roles_are_groups_made_by_the_migration(db: None) -> None:
    assert set(Group.objects.values_list("name", flat=True)) >= {"viewer", "operator", "admin"}
