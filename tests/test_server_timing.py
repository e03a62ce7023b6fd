"""``SERVER_TIMING``: answers tell how long authentication took (what bench/bench_load.py --auth reads)."""

from __future__ import annotations

import re

from rest_framework.test import APIClient

from tests.support.api import FULL

TIMING = re.compile(r"^auth;dur=\d+\.\d{3}$")


def test_with_server_timing_an_answer_says_how_long_authentication_took(api: APIClient, tokens: None, settings) -> None:
    settings.SERVER_TIMING = True
    answered = api.get("/reports/", HTTP_AUTHORIZATION=f"Bearer {FULL}")
    assert answered.status_code == 200
    assert TIMING.match(answered["Server-Timing"]), answered["Server-Timing"]
    refused = api.get("/reports/", HTTP_AUTHORIZATION="Bearer wrong")
    assert refused.status_code == 401 and TIMING.match(refused["Server-Timing"])


def test_without_it_no_answer_says_anything(api: APIClient, tokens: None, settings) -> None:
    settings.SERVER_TIMING = False
    assert "Server-Timing" not in api.get("/reports/", HTTP_AUTHORIZATION=f"Bearer {FULL}")


def test_a_route_that_never_authenticates_says_nothing(api: APIClient, tokens: None, settings) -> None:
    settings.SERVER_TIMING = True
    assert "Server-Timing" not in api.get("/dashboard/stores/")
