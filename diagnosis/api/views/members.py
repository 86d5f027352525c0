"""The organization's members, for a hospital's identity system: add joiners, change roles, deactivate
leavers, hand out temporary passwords. Administrators only, and every change is recorded as on the
Members page."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from ... import selectors, services
from ...models import Membership, Organization
from ..permissions import HasMembership, MayManageMembers
from ..serializers import (
    AccessLogEntrySerializer,
    AccessLogFilterSerializer,
    MemberCreateSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    MemberWithPasswordSerializer,
    StaffChangeSerializer,
)

REFUSED = OpenApiResponse(description="Refused, with the reason: yourself, the last active administrator, a taken username.")


def _shown_once(response: Response) -> Response:
    response["Cache-Control"] = "private, no-store"  # holds a password
    return response


@extend_schema_view(
    list=extend_schema(summary="The organization's members",
                       description="Everyone who can log in for your organization, by username."),
    retrieve=extend_schema(summary="One member"),
)
class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated, HasMembership, MayManageMembers]
    serializer_class = MemberSerializer
    lookup_value_regex = r"\d+"

    @property
    def organization(self) -> Organization:
        return selectors.organization_of(self.request.user)

    def get_queryset(self) -> QuerySet[Membership]:
        return selectors.organization_members(organization=self.organization)

    def get_object(self) -> Membership:
        membership = selectors.organization_member_get(organization=self.organization, user_id=int(self.kwargs["pk"]))
        if membership is None:
            raise NotFound("No member of your organization has that id.")
        return membership

    def _fresh(self, user_id: int) -> dict:
        return MemberSerializer(selectors.organization_member_get(organization=self.organization, user_id=user_id)).data

    @extend_schema(summary="Add a member", request=MemberCreateSerializer,
                   responses={201: MemberWithPasswordSerializer, 400: REFUSED},
                   description="The new member gets a temporary password, answered only here. It opens nothing "
                   "but choosing their own password at their first login. Where members log in through the "
                   "hospital's sign-on only (KIDNEYWEB_PASSWORD_LOGIN off), they get none: null.")
    def create(self, request: Request) -> Response:
        serializer = MemberCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, password = services.member_create(organization=self.organization, by=request.user,
                                                **serializer.validated_data)
        return _shown_once(Response({"member": self._fresh(user.pk), "temporary_password": password or None},
                                    status=status.HTTP_201_CREATED))

    @extend_schema(summary="Change a member's role or deactivate them", request=MemberUpdateSerializer,
                   responses={200: MemberSerializer, 400: REFUSED},
                   description="Send role, is_active or both; all of it is applied or none. A deactivated member "
                   "can no longer log in, their sessions and API token stop working, and their reviews, uploads "
                   "and the access log keep their name.")
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        member = self.get_object().user
        serializer = MemberUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.member_update(organization=self.organization, member=member, by=request.user,
                               **serializer.validated_data)
        return Response(self._fresh(member.pk))

    @extend_schema(summary="Set a temporary password", request=None,
                   responses={200: MemberWithPasswordSerializer, 400: REFUSED},
                   description="For a forgotten password: the member's sessions end and a login lock is lifted; "
                   "the password is answered only here.")
    @action(detail=True, methods=["post"], url_path="temporary-password")
    def temporary_password(self, request: Request, pk: str | None = None) -> Response:
        member = self.get_object().user
        password = services.member_password_reset(organization=self.organization, member=member, by=request.user)
        return _shown_once(Response({"member": self._fresh(member.pk), "temporary_password": password}))

    @extend_schema(summary="Lift a login lock", request=None, responses={200: MemberSerializer})
    @action(detail=True, methods=["post"])
    def unlock(self, request: Request, pk: str | None = None) -> Response:
        member = self.get_object().user
        services.member_unlock(organization=self.organization, member=member, by=request.user)
        return Response(self._fresh(member.pk))

    @extend_schema(summary="Reset two-factor authentication", request=None,
                   responses={200: MemberSerializer, 400: REFUSED},
                   description="For a lost phone: the authenticator and the recovery codes are removed; the member "
                   "sets up a new one at their next login where the organization requires it.")
    @action(detail=True, methods=["post"], url_path="two-factor-reset")
    def two_factor_reset(self, request: Request, pk: str | None = None) -> Response:
        member = self.get_object().user
        services.member_two_factor_reset(organization=self.organization, member=member, by=request.user)
        return Response(self._fresh(member.pk))

    @extend_schema(summary="Every change to the members and settings", parameters=[AccessLogFilterSerializer],
                   operation_id="api_v1_members_all_changes_list",
                   responses={200: StaffChangeSerializer(many=True), 400: REFUSED},
                   description="For an access review: who changed what about which member's account, or which "
                   "organization setting, from day `since` to day `until` (both included; either may be left out), "
                   "oldest first. A change with `by` null was made on the server's command line, or by the "
                   "hospital's directory (SCIM) as its detail says.")
    @action(detail=False, methods=["get"], url_path="changes")
    def all_changes(self, request: Request) -> Response:
        filters = AccessLogFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        changes = selectors.staff_changes_between(organization=self.organization, **filters.validated_data)
        page = self.paginate_queryset(changes)
        return self.get_paginated_response(StaffChangeSerializer(page, many=True).data)

    @extend_schema(summary="Changes made to a member's account", responses={200: StaffChangeSerializer(many=True)},
                   description="Who changed what about the member's account, and when, newest first.")
    @action(detail=True, methods=["get"])
    def changes(self, request: Request, pk: str | None = None) -> Response:
        member = self.get_object()
        page = self.paginate_queryset(selectors.staff_changes(organization=self.organization, member_id=member.user_id))
        return self.get_paginated_response(StaffChangeSerializer(page, many=True).data)

    @extend_schema(summary="What a member opened", responses={200: AccessLogEntrySerializer(many=True)},
                   description="The organization's patient records, scans, images and reports the member opened, "
                   "newest first: the access log seen from the user's side.")
    @action(detail=True, methods=["get"])
    def accesses(self, request: Request, pk: str | None = None) -> Response:
        member = self.get_object()
        page = self.paginate_queryset(selectors.member_accesses(organization=self.organization, member_id=member.user_id))
        return self.get_paginated_response(AccessLogEntrySerializer(page, many=True).data)


__all__ = ["MemberViewSet"]
