"""The dashboard's sign-in with Django's test client: the login form, sign-out, who-you-are in every page's
header, anonymous visitors sent to sign in when AUTH_REQUIRED is on, and django-axes' lockout (per username
and per address, the same answer whether the user exists or not, allowed again after the window).

The browser side (the pages' scripts, a viewer's hidden controls) is in tests/browser/test_signin_browser.py.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Group, User
from django.db.models import F
from django.test import Client

from tests.support.api import assert_json_error

pytestmark = [pytest.mark.accounts]

PASSWORD = "correct horse battery staple 42"
GENERIC = "Please enter a correct username and password. Note that both fields may be case-sensitive."
LOCKED = "Too many failed sign-in attempts. Signing in is paused for up to 15 minutes; try again later."


@pytest.fixture
def people(db: None) -> dict[str, User]:
    """A viewer and an operator (groups named as the roles), and a deactivated operator."""
    made = {}
    for name, role, active in (("vera", "viewer", True), ("otto", "operator", True), ("gone", "operator", False)):
        user = User.objects.create_user(name, password=PASSWORD, is_active=active)
        user.groups.add(Group.objects.get_or_create(name=role)[0])
        made[name] = user
    return made


@pytest.fixture
def limits(settings) -> None:
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def sign_in(
    client: Client, username: str, password: str, address: str = "10.0.0.1", forwarded: str = "", **fields: str
):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    return client.post(
        "/accounts/login/", {"username": username, "password": password, **fields}, REMOTE_ADDR=address, **headers
    )


def error_text(response) -> str:
    match = re.search(r'<p class="error" id="login-error">(.*?)</p>', response.content.decode(), re.S)
    assert match, response.content.decode()[:2000]
    return " ".join(match.group(1).split()).replace("&#x27;", "'")


def without_csrf(response) -> str:
    """The page's text with the per-response CSRF token blanked (it differs on every answer)."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


# --- the login form -----------------------------------------------------------------------------------


def test_the_login_page_is_a_strict_page_with_a_csrf_protected_form(db: None) -> None:
    response = Client().get("/accounts/login/?next=/dashboard/alerts/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert 'name="csrfmiddlewaretoken"' in html
    assert '<input type="hidden" name="next" value="/dashboard/alerts/">' in html
    # Nothing from another host, no inline script.
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith(("/", "#")) or s == "data:," for s in sources), sources
    assert "<script>" not in html


def test_a_right_password_signs_in_and_goes_where_the_visitor_was_going(people: dict[str, User]) -> None:
    client = Client()
    response = sign_in(client, "otto", PASSWORD, next="/dashboard/alerts/")
    assert response.status_code == 302 and response["Location"] == "/dashboard/alerts/"
    page = client.get("/dashboard/alerts/")
    assert "Signed in as <strong>otto</strong> (operator)" in page.content.decode()


def test_a_next_to_another_site_is_ignored(people: dict[str, User]) -> None:
    response = sign_in(Client(), "vera", PASSWORD, next="https://evil.example/steal")
    assert response.status_code == 302 and response["Location"] == "/"


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(people: dict[str, User]) -> None:
    wrong = sign_in(Client(), "vera", "not it")
    unknown = sign_in(Client(), "nobody-here", "not it")
    inactive = sign_in(Client(), "gone", PASSWORD)  # a deactivated user's right password
    assert wrong.status_code == unknown.status_code == inactive.status_code == 200
    assert error_text(wrong) == GENERIC
    # Same page, byte for byte, apart from the CSRF token and the username typed (kept in no field).
    assert without_csrf(wrong) == without_csrf(unknown) == without_csrf(inactive)
    assert "_auth_user_id" not in Client().session


@pytest.mark.parametrize("username", ["' OR '1'='1", "admin'; DROP TABLE auth_user; --", "vera\x00"])
def test_sql_in_a_username_is_only_a_wrong_username(people: dict[str, User], username: str) -> None:
    response = sign_in(Client(), username, "' OR '1'='1")
    assert response.status_code == 200
    assert "error" in response.content.decode()
    assert User.objects.count() == 3  # the table is still there, untouched


def test_the_login_form_needs_its_csrf_token(people: dict[str, User]) -> None:
    response = sign_in(Client(enforce_csrf_checks=True), "vera", PASSWORD)
    body = assert_json_error(response, 403)
    assert body["error"].startswith("Forbidden (CSRF check failed")


# --- sign-out ------------------------------------------------------------------------------------------


def test_sign_out_is_a_post_with_its_csrf_token(people: dict[str, User]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["vera"])
    page = client.get("/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert '<form method="post" action="/accounts/logout/" class="sign-out">' in page

    assert client.get("/accounts/logout/").status_code == 405  # a link cannot sign anyone out
    assert client.post("/accounts/logout/").status_code == 403  # nor a form without the token
    assert client.session.get("_auth_user_id") == str(people["vera"].pk)

    response = client.post("/accounts/logout/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert client.session.get("_auth_user_id") is None


# --- the pages ------------------------------------------------------------------------------------------


PAGES = ["/", "/dashboard/stores/", "/dashboard/stores/store-1/", "/dashboard/reports/", "/dashboard/alerts/",
         "/dashboard/alerting/", "/dashboard/me/"]  # fmt: skip


@pytest.mark.parametrize("path", PAGES)
def test_with_auth_required_an_anonymous_visitor_is_sent_to_sign_in(settings, db: None, path: str) -> None:
    settings.AUTH_REQUIRED = True
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_with_auth_required_a_browser_using_a_key_gets_the_page(settings, db: None) -> None:
    settings.AUTH_REQUIRED = True
    client = Client()
    client.cookies["loop_key"] = "1"
    response = client.get("/dashboard/alerts/")
    assert response.status_code == 200
    assert "Not signed in" in response.content.decode()


def test_with_auth_required_a_signed_in_user_gets_the_page_with_who_they_are(settings, people: dict[str, User]) -> None:
    settings.AUTH_REQUIRED = True
    client = Client()
    client.force_login(people["vera"])
    response = client.get("/dashboard/alerting/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-auth-required="1"' in html
    assert '<a id="who-name" href="/dashboard/me/">Signed in as <strong>vera</strong> (viewer)</a>' in html
    assert 'class="link">Sign out</button>' in html
    assert response.cookies["csrftoken"].value  # the scripts send it back on writes


def test_a_deactivated_users_session_no_longer_opens_the_pages(settings, people: dict[str, User]) -> None:
    settings.AUTH_REQUIRED = True
    client = Client()
    client.force_login(people["otto"])
    User.objects.filter(username="otto").update(is_active=False)
    assert client.get("/").status_code == 302


def test_without_auth_required_the_pages_stay_open_and_say_not_signed_in(settings, db: None) -> None:
    settings.AUTH_REQUIRED = False
    response = Client().get("/dashboard/reports/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-auth-required="0"' in html
    assert '<span id="who-name">Not signed in</span>' in html
    assert '<a id="sign-in" href="/accounts/login/?next=/dashboard/reports/">Sign in</a>' in html


# --- lockout (django-axes) -----------------------------------------------------------------------------


def test_failures_for_one_username_lock_it_from_every_address(people: dict[str, User], limits: None) -> None:
    for n in range(2):
        assert sign_in(Client(), "vera", "wrong", address=f"10.0.1.{n}").status_code == 200
    third = sign_in(Client(), "vera", "wrong", address="10.0.1.2")
    assert third.status_code == 429
    assert error_text(third) == LOCKED
    # Now even the right password, from a fresh address, is refused; another user is not locked.
    assert sign_in(Client(), "vera", PASSWORD, address="10.0.1.99").status_code == 429
    assert sign_in(Client(), "otto", PASSWORD, address="10.0.1.99").status_code == 302


def test_failures_from_one_address_lock_it_for_every_username(people: dict[str, User], limits: None) -> None:
    for name in ("a1", "a2"):
        assert sign_in(Client(), name, "wrong", address="10.0.2.1").status_code == 200
    assert sign_in(Client(), "a3", "wrong", address="10.0.2.1").status_code == 429
    assert sign_in(Client(), "otto", PASSWORD, address="10.0.2.1").status_code == 429
    assert sign_in(Client(), "otto", PASSWORD, address="10.0.2.2").status_code == 302


def test_an_unknown_username_is_locked_exactly_like_a_real_one(people: dict[str, User], limits: None) -> None:
    answers = {}
    for name in ("vera", "nobody-here"):
        statuses = [sign_in(Client(), name, "wrong", address=f"10.0.3.{i}").status_code for i in range(4)]
        answers[name] = (statuses, without_csrf(sign_in(Client(), name, "wrong", address="10.0.3.9")))
    assert answers["vera"][0] == answers["nobody-here"][0] == [200, 200, 429, 429]
    assert answers["vera"][1] == answers["nobody-here"][1]


def test_a_locked_username_signs_in_again_after_the_window(people: dict[str, User], limits: None) -> None:
    for n in range(3):
        sign_in(Client(), "vera", "wrong", address=f"10.0.4.{n}")
    assert sign_in(Client(), "vera", PASSWORD, address="10.0.4.50").status_code == 429
    # 14 minutes later: still locked (tries during the lockout do not count and do not extend it) ...
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=14))
    assert sign_in(Client(), "vera", PASSWORD, address="10.0.4.51").status_code == 429
    # ... 16 minutes after the locking failure: allowed again.
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=2))
    assert sign_in(Client(), "vera", PASSWORD, address="10.0.4.52").status_code == 302


def test_behind_proxies_the_address_counted_is_the_one_the_last_proxy_saw(
    settings, people: dict[str, User], limits: None
) -> None:
    # nginx (NUM_PROXIES=1) appends the real client: a forged first entry does not give a fresh address.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    for n in range(3):
        sign_in(Client(), f"u{n}", "wrong", address="172.18.0.5", forwarded=f"1.1.1.{n}, 203.0.113.7")
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True).distinct()) == ["203.0.113.7"]
    assert sign_in(Client(), "otto", PASSWORD, address="172.18.0.5", forwarded="203.0.113.7").status_code == 429
    assert sign_in(Client(), "otto", PASSWORD, address="172.18.0.5", forwarded="203.0.113.8").status_code == 302


# --- nothing else is counted -------------------------------------------------------------------------


def test_wrong_api_tokens_are_no_sign_in_failures(settings, people: dict[str, User], limits: None, mdb) -> None:
    settings.AUTH_REQUIRED = True
    settings.API_TOKEN = "full-Token_1234567890"
    client = Client()
    for _ in range(5):
        assert client.get("/overview/", HTTP_AUTHORIZATION="Bearer wrong", REMOTE_ADDR="10.0.5.1").status_code == 401
    assert AccessAttempt.objects.count() == 0
    assert sign_in(Client(), "otto", PASSWORD, address="10.0.5.1").status_code == 302


def test_a_locked_address_still_reaches_the_api(settings, people: dict[str, User], limits: None, mdb) -> None:
    for n in range(3):
        sign_in(Client(), f"u{n}", "wrong", address="10.0.6.1")
    response = Client().get("/overview/", REMOTE_ADDR="10.0.6.1")
    assert response.status_code == 200 and "stores" in response.json()


def test_the_test_clients_login_still_works(people: dict[str, User]) -> None:
    # Client.login() authenticates without a request: nothing to count, and no error from axes.
    client = Client()
    assert client.login(username="otto", password=PASSWORD) is True
    assert client.login(username="otto", password="wrong") is False
    assert AccessAttempt.objects.count() == 0


# --- a session's row and user, read on every request (loop/accounts/sessions.py, signin.AccountsBackend) -------


def test_a_sessions_request_reads_its_row_and_its_user_with_the_role_once(settings, people: dict[str, User]) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.AUTH_REQUIRED = True
    client = Client()
    client.force_login(people["otto"])
    with CaptureQueriesContext(connection) as queries:
        me = client.get("/me/")
    assert (me.status_code, me.json()["role"], me.json()["capabilities"]) == (
        200,
        "operator",
        ["read", "ingest", "operate"],
    )
    tables = [q["sql"].split(" FROM ")[1].split()[0] for q in queries.captured_queries]
    # The session row, then the user with their role groups joined: no query of the groups of its own.
    assert tables == ['"django_session"', '"auth_user"'], queries.captured_queries


def test_a_role_changed_or_a_session_expired_counts_at_the_next_request(settings, people: dict[str, User]) -> None:
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    settings.AUTH_REQUIRED = True
    client = Client()
    client.force_login(people["vera"])
    assert client.get("/me/").json()["role"] == "viewer"
    people["vera"].groups.set([Group.objects.get(name="operator")])
    assert client.get("/me/").json()["role"] == "operator"
    people["vera"].groups.clear()
    assert client.get("/me/").json() == {
        "name": "vera",
        "kind": "user",
        "role": None,
        "scope": None,
        "capabilities": [],
    }
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    assert_json_error(client.get("/me/"), 401)


def test_signing_out_ends_the_session_for_every_process(settings, people: dict[str, User]) -> None:
    settings.AUTH_REQUIRED = True
    first = Client()
    assert sign_in(first, "otto", PASSWORD).status_code == 302
    second = Client()  # another process holding the same cookie: it reads the same row
    second.cookies["sessionid"] = first.cookies["sessionid"].value
    assert second.get("/me/").json()["name"] == "otto"
    assert first.post("/accounts/logout/").status_code == 302  # the row goes
    assert_json_error(second.get("/me/"), 401)
