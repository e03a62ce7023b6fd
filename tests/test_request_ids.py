"""X-Request-ID (loop/request_ids.py): a sane incoming id is kept and echoed, anything else replaced by a new one."""

from __future__ import annotations

import re

import pytest
from django.test import Client

NEW_ID = re.compile(r"[0-9a-f]{32}")  # uuid4 hex


@pytest.fixture
def client() -> Client:
    return Client()


def test_a_request_without_an_id_gets_a_new_one(client: Client) -> None:
    # An unknown URL: the JSON 404 carries it too (the middleware wraps every answer).
    first = client.get("/nowhere/")
    second = client.get("/nowhere/")
    assert first.status_code == 404
    assert NEW_ID.fullmatch(first["X-Request-ID"])
    assert NEW_ID.fullmatch(second["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.parametrize("given", ["abc-123", "Req.7_x-Y", "a" * 64, "0"])
def test_a_sane_incoming_id_is_kept(client: Client, given: str) -> None:
    assert client.get("/nowhere/", HTTP_X_REQUEST_ID=given)["X-Request-ID"] == given


@pytest.mark.parametrize(
    "given",
    [
        "a" * 65,  # too long
        "abc\r\nX-Injected: 1",  # a header injection attempt
        "abc\x00def",  # control character
        "two words",
        "semi;colon",
        "ümlaut",
        "",
    ],
)
def test_a_hostile_or_odd_id_is_replaced(client: Client, given: str) -> None:
    answered = client.get("/nowhere/", HTTP_X_REQUEST_ID=given)["X-Request-ID"]
    assert answered != given
    assert NEW_ID.fullmatch(answered)
