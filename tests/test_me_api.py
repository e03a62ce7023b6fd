"""GET /me/: who the caller is and what they may do, as the dashboard reads it to hide controls.

Sessions, the static tokens and the open service (keys: tests/test_api_keys.py). ``role`` is a signed-in
user's; ``scope`` a key's (null here).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from tests.support.api import FULL, READ, assert_json_error

pytestmark = [pytest.mark.accounts]


def user_with(username: str, *groups: str, superuser: bool = False) -> User:
    user = User.objects.create_user(username, password="pw-not-used-1234", is_superuser=superuser)
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user


@pytest.mark.parametrize(
    ("groups", "superuser", "role", "capabilities"),
    [
        (["viewer"], False, "viewer", ["read"]),
        (["operator"], False, "operator", ["read", "ingest", "operate"]),
        (["viewer", "admin"], False, "admin", ["read", "ingest", "operate", "admin"]),
        ([], True, "admin", ["read", "ingest", "operate", "admin"]),
        ([], False, None, []),
        (["strangers"], False, None, []),
    ],
)
def test_a_signed_in_user_is_their_highest_role(
    settings, db: None, groups: list[str], superuser: bool, role: str | None, capabilities: list[str]
) -> None:
    settings.AUTH_REQUIRED = True
    client = Client()
    client.force_login(user_with("maria", *groups, superuser=superuser))
    response = client.get("/me/")
    assert response.status_code == 200
    assert response.json() == {
        "name": "maria",
        "kind": "user",
        "role": role,
        "scope": None,
        "capabilities": capabilities,
    }


def test_the_session_counts_even_when_api_token_is_set(settings, db: None) -> None:
    settings.API_TOKEN = FULL
    client = Client()
    client.force_login(user_with("vera", "viewer"))
    assert client.get("/me/").json()["name"] == "vera"


def test_the_servers_tokens_are_an_admin_and_a_reader(settings, tokens: None) -> None:
    client = Client()
    full = client.get("/me/", HTTP_AUTHORIZATION=f"Bearer {FULL}").json()
    read = client.get("/me/", HTTP_AUTHORIZATION=f"Bearer {READ}").json()
    assert full == {
        "name": "token:API_TOKEN",
        "kind": "token",
        "role": None,  # not a user: no role, every capability
        "scope": None,
        "capabilities": ["read", "ingest", "operate", "admin"],
    }
    assert read == {
        "name": "token:API_READ_TOKEN",
        "kind": "token",
        "role": None,
        "scope": None,
        "capabilities": ["read"],
    }


def test_a_wrong_token_or_nobody_is_a_401_when_access_is_enforced(settings, tokens: None) -> None:
    settings.AUTH_REQUIRED = True
    client = Client()
    wrong = assert_json_error(client.get("/me/", HTTP_AUTHORIZATION="Bearer nope"), 401)
    assert wrong == {"error": "Invalid API token or key."}
    assert (
        assert_json_error(client.get("/me/"), 401)["error"]
        == "Missing API token or key: send 'Authorization: Bearer <API key or token>', or sign in."
    )


def test_without_a_token_and_with_auth_required_nobody_is_a_401(settings, db: None) -> None:
    settings.API_TOKEN = ""
    settings.AUTH_REQUIRED = True
    body = assert_json_error(Client().get("/me/"), 401)
    assert body == {"error": "Missing API token or key: send 'Authorization: Bearer <API key or token>', or sign in."}


def test_an_open_server_lets_everyone_do_everything(settings) -> None:
    settings.API_TOKEN = ""
    settings.AUTH_REQUIRED = False
    response = Client().get("/me/")
    assert response.status_code == 200
    assert response.json() == {
        "name": "anonymous",
        "kind": "open",
        "role": None,
        "scope": None,
        "capabilities": ["read", "ingest", "operate", "admin"],
    }
