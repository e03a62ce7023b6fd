"""The pure rules of alert delivery: signing, the SSRF URL check, backoff, Retry-After, verdicts, grouped events."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import socket

import pytest

from loop.delivery_rules import Verdict, backoff_seconds, next_attempt_at, parse_retry_after, verdict
from loop.events import ALERT_GROUPED, Event, event_for_channel, event_json
from loop.webhooks import UrlRefused, check_url, new_secret, signed_headers

T0 = dt.datetime(2026, 1, 1, 0, 0, 0)


# --- signing ------------------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # The test vector of the Standard Webhooks reference libraries (secret, id, timestamp, payload, signature).
    headers = signed_headers(
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        webhook_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        body='{"test": 2432232314}',
        at=dt.datetime.fromtimestamp(1614265330, dt.UTC),
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_signature_matches_a_hand_built_hmac() -> None:
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    body = '{"data":{},"timestamp":"2026-01-01T00:00:00Z","type":"alert.opened"}'
    headers = signed_headers(secret=secret, webhook_id="msg_abc", body=body, at=T0)  # naive = UTC
    # 2026-01-01T00:00:00Z is 1767225600 seconds after the epoch.
    assert headers["webhook-timestamp"] == "1767225600"
    mac = hmac.new(key, b"msg_abc.1767225600." + body.encode(), hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()


def test_new_secrets_are_whsec_and_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32


def test_event_json_is_the_documented_body() -> None:
    event = Event(type="alert.opened", timestamp=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), data={"a": 1})
    assert event_json(event) == '{"data":{"a":1},"timestamp":"2026-01-02T03:04:05Z","type":"alert.opened"}'


def test_unknown_event_types_are_refused() -> None:
    with pytest.raises(ValueError):
        Event(type="alert.exploded", timestamp=T0, data={})


# --- SSRF -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://localhost:8000/hook",  # a name resolving to loopback
        "http://192.168.0.10/",
        "http://224.0.0.1/",  # multicast
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",  # loopback hidden in an IPv4-mapped IPv6 address
    ],
)
def test_private_addresses_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(UrlRefused, match="private, loopback"):
        check_url(url, allow_private=False)
    check_url(url, allow_private=True)


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    def resolver(host: str, port: int, **kwargs: object) -> list[tuple[object, ...]]:
        assert (host, port) == ("hooks.example.com", 443)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443)),
        ]

    with pytest.raises(UrlRefused, match="10.0.0.5"):
        check_url("https://hooks.example.com/x", allow_private=False, resolve=resolver)


def test_a_public_address_is_allowed() -> None:
    def resolver(host: str, port: int, **kwargs: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80))]

    check_url("http://hooks.example.com/x", allow_private=False, resolve=resolver)
    check_url("https://93.184.216.34/x", allow_private=False)


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def resolver(host: str, port: int, **kwargs: object) -> list[tuple[object, ...]]:
        raise socket.gaierror(-2, "Name or service not known")

    with pytest.raises(UrlRefused, match="does not resolve"):
        check_url("https://nowhere.invalid/", allow_private=False, resolve=resolver)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://127.0.0.1/", "example.com"])
def test_only_http_and_https_are_allowed(url: str) -> None:
    with pytest.raises(UrlRefused, match="only http and https"):
        check_url(url, allow_private=True)


def test_credentials_and_missing_hosts_are_refused() -> None:
    with pytest.raises(UrlRefused, match="credentials"):
        check_url("https://user:pw@93.184.216.34/", allow_private=False)
    with pytest.raises(UrlRefused, match="no host"):
        check_url("https:///path", allow_private=True)


# --- verdicts, backoff, Retry-After -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (None, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (429, Verdict.RETRY),
        (410, Verdict.GONE),
        (400, Verdict.FAILED),
        (404, Verdict.FAILED),
        (301, Verdict.FAILED),
    ],
)
def test_verdicts(code: int | None, expected: Verdict) -> None:
    assert verdict(code) == expected


def test_backoff_doubles_from_the_base_up_to_the_cap_with_half_of_it_jittered() -> None:
    # full wait after attempt n: min(3600, 30 * 2**(n-1)); the jitter keeps between half and all of it.
    assert backoff_seconds(1, base=30, cap=3600, rand=lambda: 0.0) == 15
    assert backoff_seconds(1, base=30, cap=3600, rand=lambda: 1.0) == 30
    assert backoff_seconds(3, base=30, cap=3600, rand=lambda: 0.5) == 90  # 120: 60 + 0.5 * 60
    assert backoff_seconds(8, base=30, cap=3600, rand=lambda: 0.0) == 1800  # 30 * 128 = 3840 > 3600


def test_the_schedule_gives_up_after_the_window() -> None:
    window = dict(window_start=T0, max_age=dt.timedelta(hours=24), base=30, cap=3600, rand=lambda: 0.0)
    assert next_attempt_at(attempt_no=2, now=T0 + dt.timedelta(minutes=1), **window) == T0 + dt.timedelta(seconds=90)
    # 23:59 in, attempt 20: the wait (1800 s) would end at 24:29, after the 24 h window.
    assert next_attempt_at(attempt_no=20, now=T0 + dt.timedelta(hours=23, minutes=59), **window) is None
    # 23:00 in: 23:30 is still inside.
    late = next_attempt_at(attempt_no=20, now=T0 + dt.timedelta(hours=23), **window)
    assert late == T0 + dt.timedelta(hours=23, minutes=30)


def test_retry_after_replaces_the_backoff() -> None:
    window = dict(window_start=T0, max_age=dt.timedelta(hours=24), base=30, cap=3600, rand=lambda: 0.0)
    assert next_attempt_at(attempt_no=1, now=T0, retry_after=120.0, **window) == T0 + dt.timedelta(minutes=2)
    assert next_attempt_at(attempt_no=1, now=T0, retry_after=25 * 3600.0, **window) is None


def test_retry_after_seconds_and_http_dates() -> None:
    assert parse_retry_after("120", T0) == 120
    assert parse_retry_after("Thu, 01 Jan 2026 00:02:00 GMT", T0) == 120  # 2026-01-01 is a Thursday
    assert parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", T0) == 0  # in the past: at once
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after(None, T0) is None


# --- which channel gets which event -------------------------------------------------------------------

GROUPED = Event(
    type=ALERT_GROUPED,
    timestamp=T0,
    data={"opened": [{"alert_id": "a1"}], "resolved": [{"alert_id": "r1"}, {"alert_id": "r2"}]},
)


def test_a_channel_subscribed_to_grouped_gets_it_whole() -> None:
    assert event_for_channel(GROUPED, ["alert.grouped"]) == GROUPED


def test_a_channel_subscribed_to_opened_gets_only_the_opened_list() -> None:
    got = event_for_channel(GROUPED, ["alert.opened", "ingestion.stale"])
    assert got is not None and got.type == "alert.grouped"
    assert got.data == {"opened": [{"alert_id": "a1"}], "resolved": []}


def test_a_channel_subscribed_to_both_lists_gets_both() -> None:
    got = event_for_channel(GROUPED, ["alert.resolved", "alert.opened"])
    assert got is not None and got.data == GROUPED.data


def test_grouped_events_left_empty_are_skipped() -> None:
    only_opened = Event(type=ALERT_GROUPED, timestamp=T0, data={"opened": [{"alert_id": "a1"}], "resolved": []})
    assert event_for_channel(only_opened, ["alert.resolved"]) is None
    assert event_for_channel(GROUPED, ["alert.reminder", "ingestion.stale"]) is None


def test_plain_events_go_by_type_and_test_events_never_by_subscription() -> None:
    opened = Event(type="alert.opened", timestamp=T0, data={})
    assert event_for_channel(opened, ["alert.opened"]) == opened
    assert event_for_channel(opened, ["alert.resolved"]) is None
    assert event_for_channel(Event(type="channel.test", timestamp=T0), ["alert.opened", "channel.test"]) is None
