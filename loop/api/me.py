"""Who the caller is and what they may do (GET /me/): what the dashboard reads to hide the controls a
caller may not use.

Minimal version of the sign-in branch (accounts-signin): it knows Django's session, API_TOKEN and
API_READ_TOKEN. The accounts branch (H1) has the full one (keys too) with the same answer: keep that one.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from loop.accounts.capabilities import ALL, ROLE_CAPABILITIES, Capability, Principal, Role
from loop.accounts.selectors import role_of

# The markers ApiTokenAuthentication leaves in request.auth (this file goes when H1's /me/ lands).
from loop.api.access import _READ_TOKEN_OK, _TOKEN_OK, ApiTokenAuthentication, TokenProblem
from loop.api.common import NO_TOKEN


class MeSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="A username, or token:API_TOKEN / token:API_READ_TOKEN, or open.")
    kind = serializers.ChoiceField(choices=["user", "key", "token", "open"])
    role = serializers.ChoiceField(choices=[r.value for r in Role], allow_null=True)
    capabilities = serializers.ListField(child=serializers.ChoiceField(choices=[c.value for c in Capability]))


def _capability_list(principal: Principal) -> list[str]:
    return [c.value for c in Capability if principal.can(c)]  # in the enum's order, read first


def caller(request: Request) -> tuple[Principal, Role | None]:
    """The caller of this request; NotAuthenticated when access is enforced and nobody is known."""
    user = request.user
    if user is not None and user.is_authenticated:
        role = role_of(user)
        capabilities = ROLE_CAPABILITIES[role] if role else frozenset()
        return Principal(kind="user", name=user.get_username(), capabilities=capabilities, user_id=user.pk), role
    if isinstance(request.auth, TokenProblem):
        raise NotAuthenticated(request.auth.message)
    if request.auth == _TOKEN_OK:
        return Principal(kind="token", name="token:API_TOKEN", capabilities=ALL), Role.ADMIN
    if request.auth == _READ_TOKEN_OK:
        return Principal(kind="token", name="token:API_READ_TOKEN", capabilities=frozenset({Capability.READ})), None
    if settings.AUTH_REQUIRED:
        raise NotAuthenticated("Sign in, or send 'Authorization: Bearer <key>'.")
    return Principal(kind="open", name="open", capabilities=ALL), None


class MeView(APIView):
    # Anyone may ask who they are; the answer is 401 only when access is enforced and nobody is known.
    required_capabilities: ClassVar[dict[str, Capability | None]] = {"GET": None}
    # The session first (a signed-in dashboard), then the bearer tokens.
    authentication_classes = [SessionAuthentication, ApiTokenAuthentication]
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request: Request) -> str:
        # A 401 names the bearer scheme (the session's authenticator has none: DRF would answer 403).
        return ApiTokenAuthentication().authenticate_header(request)

    @extend_schema(
        operation_id="me",
        summary="Who the caller is and what they may do",
        description=(
            "The signed-in user (session) or the token of the request: its name, kind, role and capabilities "
            "(read, ingest, operate, admin). Without AUTH_REQUIRED nobody signs in: the 'open' caller may do "
            "everything."
        ),
        responses={200: MeSerializer, 401: NO_TOKEN},
    )
    def get(self, request: Request) -> Response:
        principal, role = caller(request)
        body = {
            "name": principal.name,
            "kind": principal.kind,
            "role": role.value if role else None,
            "capabilities": _capability_list(principal),
        }
        return Response(MeSerializer(body).data)
