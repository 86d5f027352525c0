"""The organization's result notifications (webhooks), for the integrator of a hospital system: set the
address and get its secret, send a test, list what was sent and how it went, send a failed one again.
Administrators only, as on the Members page."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from ... import selectors, services
from ...models import Organization, WebhookDelivery
from ..permissions import HasMembership, MayManageNotifications
from ..serializers import (
    NotificationEventsSerializer,
    NotificationSerializer,
    NotificationSettingsSerializer,
    NotificationSettingsWithSecretSerializer,
)

REFUSED = OpenApiResponse(description="Refused, with the reason: no address set, not a failed notification.")


@extend_schema_view(
    list=extend_schema(summary="The organization's result notifications",
                       description="Newest first, with how each delivery went."),
    retrieve=extend_schema(summary="One result notification", description="With the body that was sent."),
)
class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated, HasMembership, MayManageNotifications]
    serializer_class = NotificationSerializer
    lookup_value_regex = r"\d+"

    @property
    def organization(self) -> Organization:
        return selectors.organization_of(self.request.user)

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        return selectors.webhook_deliveries(organization=self.organization).select_related("sent_again_by")

    def get_object(self) -> WebhookDelivery:
        delivery = selectors.webhook_delivery_get(organization=self.organization, pk=int(self.kwargs["pk"]))
        if delivery is None:
            raise NotFound("Your organization has no notification with that id.")
        return delivery

    @extend_schema(methods=["GET"], summary="Where notifications go, and which", responses={200: NotificationSettingsSerializer})
    @extend_schema(methods=["PUT"], summary="Set where notifications go", request=NotificationSettingsSerializer,
                   responses={200: NotificationSettingsWithSecretSerializer, 400: REFUSED},
                   description="An https address gets a new signing secret, answered only here (no-store); give it "
                   "to the receiving system. An empty url turns notifications off. Recorded as on the Members page.")
    @extend_schema(methods=["PATCH"], summary="Choose which events are sent", request=NotificationEventsSerializer,
                   responses={200: NotificationSettingsSerializer, 400: REFUSED},
                   description="The address and its secret stay.")
    @action(detail=False, methods=["get", "put", "patch"], url_path="settings", url_name="settings")
    def address(self, request: Request) -> Response:
        if request.method == "PATCH":
            serializer = NotificationEventsSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            services.webhook_events_set(organization=self.organization, events=serializer.validated_data["events"],
                                        by=request.user)
        elif request.method == "PUT":
            serializer = NotificationSettingsSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            with transaction.atomic():
                secret = services.webhook_set(organization=self.organization, by=request.user,
                                              url=serializer.validated_data["url"])
                if "events" in serializer.validated_data:
                    services.webhook_events_set(organization=self.organization, by=request.user,
                                                events=serializer.validated_data["events"])
        organization = self.organization
        organization.refresh_from_db(fields=["webhook_url", "webhook_events"])  # the services saved their own copy
        body = {"url": organization.webhook_url, "events": organization.webhook_events}
        if request.method != "PUT":
            return Response(body)
        response = Response({**body, "secret": secret})
        response["Cache-Control"] = "private, no-store"  # holds the secret
        return response

    @extend_schema(summary="Send a test notification", request=None,
                   responses={202: NotificationSerializer, 400: REFUSED},
                   description="Queues the event ping, signed like the others, to check the receiver.")
    @action(detail=False, methods=["post"])
    def test(self, request: Request) -> Response:
        delivery = services.webhook_ping(organization=self.organization, by=request.user)
        return Response(NotificationSerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Send a failed notification again", request=None,
                   responses={202: NotificationSerializer, 400: REFUSED},
                   description="As it was, with the same delivery id, to the address set now, with a fresh round of tries.")
    @action(detail=True, methods=["post"], url_path="send-again")
    def send_again(self, request: Request, pk: str | None = None) -> Response:
        delivery = services.webhook_send_again(delivery=self.get_object(), by=request.user)
        return Response(NotificationSerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


__all__ = ["NotificationViewSet"]
