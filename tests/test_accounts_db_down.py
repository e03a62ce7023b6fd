"""The accounts database is down: what answers what (docs/failures.md).

The database connection is replaced by one whose settings point where no database can be opened: a
SQLite file in a folder that does not exist, or a PostgreSQL port nothing listens on (when `make test`
runs the ``accounts`` tests on PostgreSQL). The drivers' own errors follow, as in production.

A request that needs an identity (a session here; an API key too) answers 503 JSON, from a DRF view
and from a plain Django view alike; /health/ answers 503 naming the accounts database; the static
tokens (API_TOKEN, API_READ_TOKEN) need no database, so their reads go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.test import Client
from django.urls import path
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import myproject.urls as project_urls
from tests.support.api import FULL, READ, assert_json_error
from tests.support.processes import free_port

pytestmark = [pytest.mark.accounts, pytest.mark.django_db]

DOWN = {"error": "The accounts database is unavailable; try again later."}


class SessionUserView(APIView):
    """A DRF view that needs the signed-in user: the session is read from the accounts database."""

    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response({"user": request.user.get_username()})


def plain_user_view(request: HttpRequest) -> JsonResponse:
    """A plain Django view (a dashboard page, the login page) that reads the user of the session."""
    return JsonResponse({"authenticated": request.user.is_authenticated})


# This module doubles as a URLconf: the project's routes plus the two views above.
urlpatterns = [
    path("test-session-user/", SessionUserView.as_view()),
    path("test-plain-user/", plain_user_view),
    *project_urls.urlpatterns,
]
handler400 = project_urls.handler400
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500


class AccountsDatabase:
    """Switches this thread's default connection to an unreachable database and back."""

    def __init__(self, unreachable: dict[str, Any]) -> None:
        self.original = connections["default"]
        self.broken = type(self.original)({**self.original.settings_dict, **unreachable}, alias="default")

    def down(self) -> None:
        connections["default"] = self.broken

    def back(self) -> None:
        self.broken.close()
        connections["default"] = self.original


@pytest.fixture
def accounts_db(tmp_path: Path, settings) -> Iterator[AccountsDatabase]:
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__
    vendor = connections["default"].vendor
    if vendor == "sqlite":
        unreachable: dict[str, Any] = {"NAME": str(tmp_path / "no-such-folder" / "db.sqlite3")}
    else:
        unreachable = {"HOST": "127.0.0.1", "PORT": str(free_port())}  # nothing listens there
    switch = AccountsDatabase(unreachable)
    switch.down()
    yield switch
    switch.back()


def with_session() -> Client:
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "a" * 32  # a session to look up: the accounts database is asked
    return client


def test_health_names_the_accounts_database_and_recovers_with_it(api: Any, accounts_db: AccountsDatabase) -> None:
    down = Client().get("/health/")
    assert down.status_code == 503
    assert down.json() == {
        "status": "unavailable",
        "mongo": "ok",
        "broker": "embedded",
        "accounts": "error: OperationalError",
    }
    accounts_db.back()
    up = Client().get("/health/")
    assert up.status_code == 200
    assert up.json() == {"status": "ok", "mongo": "ok", "broker": "embedded", "accounts": "ok"}


def test_an_api_request_that_needs_a_session_answers_503_json(api: Any, accounts_db: AccountsDatabase) -> None:
    assert assert_json_error(with_session().get("/test-session-user/"), 503) == DOWN


def test_a_plain_django_view_that_needs_the_user_answers_503_json(api: Any, accounts_db: AccountsDatabase) -> None:
    assert assert_json_error(with_session().get("/test-plain-user/"), 503) == DOWN


def test_without_a_session_nothing_asks_the_accounts_database(api: Any, accounts_db: AccountsDatabase) -> None:
    # no cookie: an anonymous user, no lookup (the view itself then refuses, 403, as with the database up)
    assert assert_json_error(Client().get("/test-session-user/"), 403)["error"].startswith("Authentication")
    assert Client().get("/test-plain-user/").json() == {"authenticated": False}


@pytest.mark.parametrize("token", [FULL, READ], ids=["API_TOKEN", "API_READ_TOKEN"])
def test_static_token_reads_need_no_accounts_database(
    loaded: Any, tokens: None, accounts_db: AccountsDatabase, token: str
) -> None:
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    overview = client.get("/overview/")
    assert overview.status_code == 200, overview.content[:300]
    assert overview.json()["stores"] == 3  # the worked example: mon, old and later have polls
    stores = client.get("/stores/")
    assert stores.status_code == 200, stores.content[:300]
