"""SCIM 2.0 for the hospital's directory (RFC 7644), at /scim/v2/: Entra ID's or Okta's provisioning adds, updates
and closes the organization's members (services.scim does the work). Only the organization's SCIM token opens it,
and every answer, an error included, is SCIM's JSON (``application/scim+json``). Users only: roles come with each
user (``roles``), not as groups."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ... import services
from ...models import Membership, ScimToken
from ...services.scim import ScimConflict
from ..authentication import ScimTokenAuthentication
from ..serializers.scim import (ERROR_SCHEMA, LIST_SCHEMA, USER_SCHEMA, ScimInvalid, person_from_patch,
                                person_from_resource, user_resource)

MAX_RESULTS = 200
_FILTER = r'^\s*(userName|externalId)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$'


class ScimRenderer(JSONRenderer):
    media_type = "application/scim+json"


class ScimParser(JSONParser):
    media_type = "application/scim+json"


class HasScimToken(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ScimToken)


def _error(status_code: int, detail: str, scim_type: str = "") -> Response:
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status_code), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return Response(body, status=status_code, content_type="application/scim+json")


def _scim_exception(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ScimInvalid):
        return _error(400, str(exc), exc.scim_type)
    if isinstance(exc, ScimConflict):
        return _error(409, str(exc), "uniqueness")
    if isinstance(exc, ValidationError):
        return _error(400, " ".join(exc.messages), "invalidValue")
    if isinstance(exc, exceptions.ParseError):
        return _error(400, f"The body is not JSON: {exc.detail}", "invalidSyntax")
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        response = _error(401, str(exc.detail) if isinstance(exc, exceptions.AuthenticationFailed) else
                          "Send the organization's SCIM token as 'Authorization: Bearer <token>'.")
        response["WWW-Authenticate"] = 'Bearer realm="kidneyweb SCIM"'
        return response
    if isinstance(exc, exceptions.PermissionDenied):
        return _error(403, "Only the organization's SCIM token opens SCIM.")
    if isinstance(exc, exceptions.NotFound):
        return _error(404, str(exc.detail))
    if isinstance(exc, exceptions.APIException):
        return _error(exc.status_code, str(exc.detail))
    return None


@extend_schema(exclude=True)  # SCIM's own standard (RFC 7644) describes it; README names what kidneyweb keeps
class ScimView(APIView):
    authentication_classes = [ScimTokenAuthentication]
    permission_classes = [HasScimToken]
    renderer_classes = [ScimRenderer, JSONRenderer]
    parser_classes = [ScimParser, JSONParser]

    def get_exception_handler(self):
        return _scim_exception

    @property
    def organization(self):
        return self.request.auth.organization

    def _members(self) -> QuerySet[Membership]:
        return (Membership.objects.select_related("user", "organization")
                .filter(organization=self.organization, scim_removed_at__isnull=True).order_by("user_id"))

    def _member(self, pk: str) -> Membership:
        # An id is a user's primary key; anything else (or one too long for the column) names nobody.
        membership = self._members().filter(user_id=int(pk) if pk.isdigit() and len(pk) < 16 else -1).first()
        if membership is None:
            raise exceptions.NotFound(f"No user {pk} in {self.organization.name}.")
        return membership

    def _resource(self, membership: Membership) -> dict[str, Any]:
        location = self.request.build_absolute_uri(reverse("scim-user", args=[membership.user_id]))
        return user_resource(membership, location=location)


class ScimUsersView(ScimView):
    def get(self, request: Request) -> Response:
        members = self._members()
        wanted = request.query_params.get("filter")
        if wanted:
            match = re.match(_FILTER, wanted)
            if match is None:
                raise ScimInvalid('Only userName eq "..." and externalId eq "..." filters are supported.',
                                  "invalidFilter")
            value = match[2].replace('\\"', '"').replace("\\\\", "\\")
            members = (members.filter(user__username__iexact=value) if match[1] == "userName"
                       else members.filter(scim_external_id=value))
        try:
            start = max(int(request.query_params.get("startIndex", 1)), 1)
            count = min(max(int(request.query_params.get("count", 100)), 0), MAX_RESULTS)
        except ValueError:
            raise ScimInvalid("startIndex and count must be whole numbers.") from None
        total = members.count()
        page = list(members[start - 1:start - 1 + count])
        return Response({"schemas": [LIST_SCHEMA], "totalResults": total, "startIndex": start,
                         "itemsPerPage": len(page), "Resources": [self._resource(each) for each in page]})

    def post(self, request: Request) -> Response:
        membership = services.scim_user_create(organization=self.organization,
                                               person=person_from_resource(request.data))
        resource = self._resource(membership)
        return Response(resource, status=status.HTTP_201_CREATED, headers={"Location": resource["meta"]["location"]})


class ScimUserView(ScimView):
    def get(self, request: Request, pk: str) -> Response:
        return Response(self._resource(self._member(pk)))

    def put(self, request: Request, pk: str) -> Response:
        membership = services.scim_user_update(membership=self._member(pk), person=person_from_resource(request.data))
        return Response(self._resource(membership))

    def patch(self, request: Request, pk: str) -> Response:
        membership = services.scim_user_update(membership=self._member(pk), person=person_from_patch(request.data))
        return Response(self._resource(membership))

    def delete(self, request: Request, pk: str) -> Response:
        services.scim_user_remove(membership=self._member(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScimServiceProviderConfigView(ScimView):
    def get(self, request: Request) -> Response:
        return Response({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": True},
            "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": True, "maxResults": MAX_RESULTS},
            "changePassword": {"supported": False},
            "sort": {"supported": False},
            "etag": {"supported": False},
            "authenticationSchemes": [{"type": "oauthbearertoken", "name": "Bearer token", "primary": True,
                                       "description": "The organization's SCIM token, issued on the Members page."}],
        })


class ScimResourceTypesView(ScimView):
    def get(self, request: Request) -> Response:
        user_type = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], "id": "User",
                     "name": "User", "endpoint": "/Users", "schema": USER_SCHEMA,
                     "description": "A member of the organization"}
        return Response({"schemas": [LIST_SCHEMA], "totalResults": 1, "startIndex": 1, "itemsPerPage": 1,
                         "Resources": [user_type]})
