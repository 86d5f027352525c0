"""The organization's record system, for its integrator: where results are sent as HL7 v2 messages (MLLP), what was
sent and how the record system acknowledged it, sending a message it did not take again. Administrators only, as on
the Members page."""

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
from ...models import Hl7Delivery, Organization
from ..permissions import HasMembership, MayManageRecordSystem
from ..serializers import ArchiveSentSerializer
from ..serializers.record_system import (RecordSystemDeliverySerializer, RecordSystemSettingsSerializer,
                                         RecordSystemSinceSerializer)

REFUSED = OpenApiResponse(description="Refused, with the reason: a bad or unencrypted address, a receiving "
                                      "application or facility HL7 cannot carry, no address set, not a message the "
                                      "record system did not take.")


def _settings(organization: Organization) -> dict:
    return {"address": organization.hl7_address, "receiving_application": organization.hl7_receiving_application,
            "receiving_facility": organization.hl7_receiving_facility}


@extend_schema_view(
    list=extend_schema(summary="The HL7 messages sent to the record system",
                       description="Newest first, with how the record system acknowledged each."),
    retrieve=extend_schema(summary="One HL7 message sent to the record system"),
)
class RecordSystemViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated, HasMembership, MayManageRecordSystem]
    serializer_class = RecordSystemDeliverySerializer
    lookup_value_regex = r"\d+"

    @property
    def organization(self) -> Organization:
        return selectors.organization_of(self.request.user)

    def get_queryset(self) -> QuerySet[Hl7Delivery]:
        return selectors.hl7_deliveries(organization=self.organization)

    def get_object(self) -> Hl7Delivery:
        delivery = selectors.hl7_delivery_get(organization=self.organization, pk=int(self.kwargs["pk"]))
        if delivery is None:
            raise NotFound("Your organization sent no HL7 message to the record system with that id.")
        return delivery

    @extend_schema(methods=["GET"], summary="Where results are sent as HL7 v2",
                   responses={200: RecordSystemSettingsSerializer})
    @extend_schema(methods=["PUT"], summary="Set where results are sent as HL7 v2",
                   request=RecordSystemSettingsSerializer,
                   responses={200: RecordSystemSettingsSerializer, 400: REFUSED},
                   description="Each finished or failed diagnosis, review, withdrawal and restoral is then sent as an "
                   "ORU^R01 message (as scans/{id}/hl7/ gives it) over MLLP. An empty address turns it off. Recorded "
                   "as on the Members page.")
    @action(detail=False, methods=["get", "put"], url_path="settings", url_name="settings")
    def record_system_settings(self, request: Request) -> Response:
        if request.method == "PUT":
            serializer = RecordSystemSettingsSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            return Response(_settings(services.hl7_feed_set(organization=self.organization, by=request.user,
                                                            **serializer.validated_data)))
        return Response(_settings(self.organization))

    @extend_schema(summary="Send a message the record system did not take again", request=None,
                   responses={202: RecordSystemDeliverySerializer, 400: REFUSED},
                   description="The scan's result as it is now, to the address set now, with a fresh round of tries.")
    @action(detail=True, methods=["post"], url_path="send-again")
    def send_again(self, request: Request, pk: str | None = None) -> Response:
        delivery = services.hl7_send_again(delivery=self.get_object(), by=request.user)
        return Response(RecordSystemDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Send every result the record system did not take again", request=None,
                   responses={202: ArchiveSentSerializer, 400: REFUSED},
                   description="After an outage: each scan whose newest message was not taken is sent again, as it "
                   "stands now (one message per scan says all that its failed ones said).")
    @action(detail=False, methods=["post"], url_path="send-failed-again")
    def send_failed_again(self, request: Request) -> Response:
        sent = services.hl7_send_failed_again(organization=self.organization, by=request.user)
        return Response({"sent": sent}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Send earlier results to the record system", request=RecordSystemSinceSerializer,
                   responses={202: ArchiveSentSerializer, 400: REFUSED},
                   description="The results of scans diagnosed on or after `since` of which the record system was sent "
                   "nothing (they finished before its address was set), each as it stands now (event "
                   "`earlier.result`); withdrawn scans are left out; at most 5000 at once.")
    @action(detail=False, methods=["post"], url_path="send-since")
    def send_since(self, request: Request) -> Response:
        serializer = RecordSystemSinceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sent = services.hl7_send_since(organization=self.organization, by=request.user,
                                       since=serializer.validated_data["since"])
        return Response({"sent": sent}, status=status.HTTP_202_ACCEPTED)


__all__ = ["RecordSystemViewSet"]
