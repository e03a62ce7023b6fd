"""The dashboard's sign-in, django-axes side: who is counted and locked out, and what the audit log records.

django-axes counts failed sign-ins per username and per client address (``AXES_LOCKOUT_PARAMETERS``)
and refuses further tries for ``AXES_COOLOFF_TIME``. The pages (login form, lockout page) are in
``loop.dashboard``.

The audit log (docs/audit.md) gets ``session.login``, ``session.logout``, ``session.login_failed`` (the
username tried, never the password) and ``session.locked_out`` from Django's ``user_logged_in`` /
``user_logged_out`` / ``user_login_failed`` signals and axes' ``user_locked_out``, connected by
``connect_sign_in_audit`` (``AccountsConfig.ready``). Only sign-ins over HTTP are recorded: a request that
passed the middleware (it has a request id). The test client's ``login()``/``force_login()`` or a shell's
``login()`` build a bare request and sign nobody in over the wire. A try refused while its username or
address is locked out checks no password and is not recorded: the lockout's own entry says since when.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from loop.accounts.selectors import user_with_role_groups
from loop.audit.actions import Action
from loop.audit.services import ANONYMOUS, record_audit
from loop.request_ids import request_id_of

# Set on a request by LoginAttemptBackend when axes refused it (locked out): no password was checked.
_REFUSED_WHILE_LOCKED = "_audit_refused_while_locked_out"
# session.login_failed and session.locked_out come from two receivers whose order depends on which module
# connected first; these keep the entries in the order they happened (the failure, then the lockout).
_FAILURE_RECORDED = "_audit_login_failure_recorded"
_LOCKOUT_PENDING = "_audit_lockout_pending"
USERNAME_MAX_LENGTH = 150  # Django's; the form refuses longer ones before authenticating


class LoginAttemptBackend(AxesStandaloneBackend):
    """django-axes' backend, except for authentications without a request.

    A sign-in over HTTP always has one. Without one (the test client's ``login()``, a shell, a management
    command) there is no client to count, and axes would raise instead of letting the next backend answer.
    """

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        if request is not None:
            try:
                super().authenticate(request, *args, **kwargs)  # raises while locked out; never signs anyone in
            except AxesBackendPermissionDenied:
                setattr(request, _REFUSED_WHILE_LOCKED, True)
                raise


class AccountsBackend(ModelBackend):
    """Django's ModelBackend (passwords, permissions), except that a session's user is read on each request
    with their role groups in one query (``user_with_role_groups``): the role needs no second one."""

    def get_user(self, user_id: Any) -> Any | None:
        user = user_with_role_groups(user_id=user_id)
        return user if user is not None and self.user_can_authenticate(user) else None


def client_address(request: HttpRequest) -> str:
    """The address a sign-in is counted against: the one the API's rate limit uses (the socket's, or
    X-Forwarded-For only behind ``NUM_PROXIES`` trusted proxies), so a client cannot choose its own."""
    # Imported here: the app loads this module at start-up, and the offline command must not load DRF.
    from rest_framework.request import Request
    from rest_framework.throttling import BaseThrottle

    return BaseThrottle().get_ident(Request(request))


# --- the audit log's sign-in entries ----------------------------------------------------------------------


def _over_http(request: HttpRequest | None) -> bool:
    # The first middleware gives every served request an id; a bare HttpRequest() (the test client's login())
    # has none.
    return request is not None and request_id_of(request) != ""


def _tried(credentials: dict[str, Any] | None) -> str:
    # Django's user_login_failed passes the credentials with the password masked; only the username is kept.
    value = (credentials or {}).get("username")
    return "" if value is None else str(value)[:USERNAME_MAX_LENGTH]


def audit_logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None or user is None or not _over_http(request):
        return
    username = str(user.get_username())
    record_audit(
        request=request,
        action=Action.SESSION_LOGIN,
        target=username,
        detail={"path": request.path},
        actor=(username, "user"),
    )


def audit_logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    # user is None when nobody was signed in: nothing ended.
    if request is None or user is None or not _over_http(request):
        return
    username = str(user.get_username())
    record_audit(
        request=request,
        action=Action.SESSION_LOGOUT,
        target=username,
        detail={"path": request.path},
        actor=(username, "user"),
    )


def audit_login_failed(
    sender: Any, credentials: dict[str, Any] | None = None, request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """A refused sign-in: a wrong password, an unknown username, a deactivated user, all recorded alike."""
    if request is None or not _over_http(request) or getattr(request, _REFUSED_WHILE_LOCKED, False):
        return
    tried = _tried(credentials)
    record_audit(
        request=request,
        action=Action.SESSION_LOGIN_FAILED,
        target=tried,
        detail={"username": tried, "path": request.path},
        actor=(ANONYMOUS, ANONYMOUS),
    )
    setattr(request, _FAILURE_RECORDED, True)
    pending = getattr(request, _LOCKOUT_PENDING, None)
    if pending is not None:
        delattr(request, _LOCKOUT_PENDING)
        _record_lockout(request, pending)


def audit_locked_out(
    sender: Any, request: HttpRequest | None = None, username: str | None = None, **kwargs: Any
) -> None:
    """axes locked a username or an address: sent by the failure that reached ``AXES_FAILURE_LIMIT`` (recorded),
    and again by every try refused during the lockout (not recorded)."""
    if request is None or not _over_http(request) or getattr(request, _REFUSED_WHILE_LOCKED, False):
        return
    tried = "" if username is None else str(username)[:USERNAME_MAX_LENGTH]
    detail = {
        "username": tried,
        "path": request.path,
        "failures": getattr(request, "axes_failures_since_start", None),
    }
    if getattr(request, _FAILURE_RECORDED, False):
        _record_lockout(request, detail)
    else:
        setattr(request, _LOCKOUT_PENDING, detail)  # recorded right after the failure that caused it


def _record_lockout(request: HttpRequest, detail: dict[str, Any]) -> None:
    record_audit(
        request=request,
        action=Action.SESSION_LOCKED_OUT,
        target=detail["username"],
        detail=detail,
        actor=(ANONYMOUS, ANONYMOUS),
    )


def connect_sign_in_audit() -> None:
    """Connect the receivers above (once: each has a dispatch_uid)."""
    from axes.signals import user_locked_out
    from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

    user_logged_in.connect(audit_logged_in, dispatch_uid="loop.audit.session.login")
    user_logged_out.connect(audit_logged_out, dispatch_uid="loop.audit.session.logout")
    user_login_failed.connect(audit_login_failed, dispatch_uid="loop.audit.session.login_failed")
    user_locked_out.connect(audit_locked_out, dispatch_uid="loop.audit.session.locked_out")
