"""The dashboard's sign-in, django-axes side: who is counted and locked out.

django-axes counts failed sign-ins per username and per client address (``AXES_LOCKOUT_PARAMETERS``)
and refuses further tries for ``AXES_COOLOFF_TIME``. The pages (login form, lockout page) are in
``loop.dashboard``.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from loop.accounts.selectors import user_with_role_groups


class LoginAttemptBackend(AxesStandaloneBackend):
    """django-axes' backend, except for authentications without a request.

    A sign-in over HTTP always has one. Without one (the test client's ``login()``, a shell, a management
    command) there is no client to count, and axes would raise instead of letting the next backend answer.
    """

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        if request is not None:
            super().authenticate(request, *args, **kwargs)  # raises while locked out; never signs anyone in


class AccountsBackend(ModelBackend):
    """Django's ModelBackend (passwords, permissions), except that a session's user is read on each request
    with their role groups in one query (``user_with_role_groups``): the role needs no second one."""

    def get_user(self, user_id: Any) -> Any | None:
        user = user_with_role_groups(user_id=user_id)
        return user if user is not None and self.user_can_authenticate(user) else None


def client_address(request: HttpRequest) -> str:
    """The address a sign-in is counted against: the one the API's rate limit uses (the socket's, or
    X-Forwarded-For only behind ``NUM_PROXIES`` trusted proxies), so a client cannot choose its own."""
    return BaseThrottle().get_ident(Request(request))
