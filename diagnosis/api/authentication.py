"""API tokens checked against their stored digests (models.ApiToken), sent as ``Authorization: Token <key>``
or, for clients that only speak OAuth-style headers, ``Authorization: Bearer <key>``."""

from __future__ import annotations

import datetime

from django.contrib.auth.models import AnonymousUser
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, TokenAuthentication
from rest_framework.request import Request

from ..models import ApiToken, ScimToken

# "Last used" tells an administrator whether a hospital system still uses its token; minutes are enough for
# that, and a write per request is not.
LAST_USED_GRANULARITY = datetime.timedelta(minutes=5)


def _touch(token: ApiToken | ScimToken, now: datetime.datetime) -> None:
    """Record when the token was last used, at most every LAST_USED_GRANULARITY. Conditional, so that concurrent
    requests write once; the request itself does not wait on a lock."""
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_GRANULARITY:
        type(token).objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_GRANULARITY)
        ).update(last_used_at=now)


class ApiTokenAuthentication(TokenAuthentication):
    keyword = "Token"
    keywords = ("token", "bearer")

    def authenticate(self, request: Request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme = header.split(" ", 1)[0].lower()
        if scheme not in self.keywords:
            return None
        parts = header.split()
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                f"Send the API token as 'Authorization: {parts[0]} <token>', one value without spaces.")
        return self.authenticate_credentials(parts[1])

    def authenticate_credentials(self, key: str):
        token = (ApiToken.objects.select_related("user__membership__organization")
                 .filter(digest=ApiToken.digest_of(key)).first())
        if token is None:
            raise exceptions.AuthenticationFailed(
                "Invalid token: it was never issued, or it was replaced or revoked. Ask an administrator of your "
                "organization for a new one.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's member is deactivated: its token is refused.")
        now = timezone.now()
        membership = getattr(token.user, "membership", None)
        organization = membership.organization if membership is not None else None
        expires = token.expires_at(organization.api_token_days) if organization is not None else None
        if expires is not None and expires <= now:
            raise exceptions.AuthenticationFailed(
                f"The token expired on {expires:%Y-%m-%d} ({organization.name}'s API tokens work for "
                f"{organization.api_token_days} days after they are issued): ask an administrator of your "
                "organization for a new one.")
        _touch(token, now)
        return token.user, token


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "tokenAuth"
    priority = 1  # over drf-spectacular's own scheme for TokenAuthentication's subclasses

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <key>` or `Bearer <key>`: a member's API token, issued by an administrator of "
                           "the organization on the Members page and shown once.",
        }


class ScimTokenAuthentication(BaseAuthentication):
    """The hospital directory's SCIM token (models.ScimToken), sent as ``Authorization: Bearer <key>``. It speaks for
    the organization, not for a member: the request's user stays anonymous and ``request.auth`` is the token."""

    def authenticate(self, request: Request):
        scheme, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        token = (ScimToken.objects.select_related("organization")
                 .filter(digest=ScimToken.digest_of(key.strip())).first())
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid SCIM token: it was never issued, or it was replaced or "
                                                  "revoked. An administrator issues one on the Members page.")
        _touch(token, timezone.now())
        return AnonymousUser(), token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="kidneyweb SCIM"'
