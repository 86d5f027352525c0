"""The organization's archive (PACS), for its integrator: where AI results are stored and as whom, what was sent and
how the archive answered, sending results it did not store again. Administrators only, as on the Members page."""

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
from ...models import Organization, PacsDelivery
from ...sealed import Unreadable
from ..permissions import HasMembership, MayManageArchive
from ..serializers import (ArchiveCheckSerializer, ArchiveClientCertificateSerializer, ArchiveDeliverySerializer,
                           ArchiveOAuthSerializer, ArchiveSentSerializer, ArchiveSettingsSerializer,
                           ArchiveSinceSerializer)

REFUSED = OpenApiResponse(description="Refused, with the reason: a bad address, a user without a password, no archive "
                                      "set, not a result the archive refused.")


def _settings(organization: Organization) -> dict:
    summary = selectors.archive_client_certificate(organization=organization)
    return {"url": organization.pacs_url, "username": organization.pacs_username,
            "password_set": _kept(organization.pacs_password), "send_reports": organization.pacs_send_reports,
            "oauth": _oauth(organization),
            "client_certificate": ArchiveClientCertificateSerializer(summary).data if summary else None}


def _oauth(organization: Organization) -> dict | None:
    if not organization.pacs_token_url:
        return None
    return {"token_url": organization.pacs_token_url, "client_id": organization.pacs_client_id,
            "scope": organization.pacs_scope, "secret_set": _kept(organization.pacs_client_secret)}


def _kept(credential: str) -> bool:
    # One this server's keys do not open still is kept (and reads as ""): sends say why they fail.
    return bool(credential) or isinstance(credential, Unreadable)


@extend_schema_view(
    list=extend_schema(summary="The AI results sent to the archive",
                       description="Newest first, with how the archive answered each."),
    retrieve=extend_schema(summary="One AI result sent to the archive"),
)
class ArchiveViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated, HasMembership, MayManageArchive]
    serializer_class = ArchiveDeliverySerializer
    lookup_value_regex = r"\d+"

    @property
    def organization(self) -> Organization:
        return selectors.organization_of(self.request.user)

    def get_queryset(self) -> QuerySet[PacsDelivery]:
        return selectors.pacs_deliveries(organization=self.organization)

    def get_object(self) -> PacsDelivery:
        delivery = selectors.pacs_delivery_get(organization=self.organization, pk=int(self.kwargs["pk"]))
        if delivery is None:
            raise NotFound("Your organization sent no result to the archive with that id.")
        return delivery

    @extend_schema(methods=["GET"], summary="Where AI results are stored", responses={200: ArchiveSettingsSerializer})
    @extend_schema(methods=["PUT"], summary="Set where AI results are stored", request=ArchiveSettingsSerializer,
                   responses={200: ArchiveSettingsSerializer, 400: REFUSED},
                   description="Each finished result of a DICOM slice is then stored in the archive as a DICOM "
                   "capture. An empty url turns it off. Recorded as on the Members page.")
    @action(detail=False, methods=["get", "put"], url_path="settings", url_name="settings")
    def archive_settings(self, request: Request) -> Response:
        if request.method == "PUT":
            serializer = ArchiveSettingsSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            organization = services.pacs_set(organization=self.organization, by=request.user,
                                             **serializer.validated_data)
            response = Response(_settings(organization))
            response["Cache-Control"] = "private, no-store"
            return response
        return Response(_settings(self.organization))

    @extend_schema(methods=["PUT"], summary="Authenticate to the archive with OAuth 2.0",
                   request=ArchiveOAuthSerializer,
                   responses={200: ArchiveOAuthSerializer, 400: REFUSED},
                   description="For a DICOMweb archive behind an authorization server: kidneyweb gets access tokens "
                   "with these client credentials (RFC 6749 4.4) and sends them as bearer tokens instead of the user "
                   "name and password. Recorded as on the Members page.")
    @extend_schema(methods=["DELETE"], summary="Stop using OAuth 2.0 with the archive", request=None,
                   responses={204: None})
    @action(detail=False, methods=["put", "delete"], url_path="oauth", url_name="oauth")
    def oauth(self, request: Request) -> Response:
        if request.method == "DELETE":
            services.pacs_oauth_set(organization=self.organization, token_url="", by=request.user)
            return Response(status=status.HTTP_204_NO_CONTENT)
        serializer = ArchiveOAuthSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = services.pacs_oauth_set(organization=self.organization, by=request.user,
                                               **serializer.validated_data)
        response = Response(_oauth(organization))
        response["Cache-Control"] = "private, no-store"
        return response

    @extend_schema(methods=["PUT"], summary="Present a TLS client certificate to the archive",
                   request=ArchiveClientCertificateSerializer,
                   responses={200: ArchiveClientCertificateSerializer, 400: REFUSED},
                   description="For an archive that admits only certificates of the hospital's CA (mutual TLS), over "
                   "dicoms:// and https:// alike. Refused when the key does not belong to the certificate, it has "
                   "a passphrase, or the certificate is not valid now or not for clients. Recorded as on the Members "
                   "page.")
    @extend_schema(methods=["DELETE"], summary="Stop presenting a client certificate", request=None,
                   responses={204: None})
    @action(detail=False, methods=["put", "delete"], url_path="client-certificate", url_name="client-certificate")
    def client_certificate(self, request: Request) -> Response:
        if request.method == "DELETE":
            services.pacs_client_certificate_set(organization=self.organization, certificate="", key="",
                                                 by=request.user)
            return Response(status=status.HTTP_204_NO_CONTENT)
        serializer = ArchiveClientCertificateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = services.pacs_client_certificate_set(organization=self.organization, by=request.user,
                                                            **serializer.validated_data)
        summary = selectors.archive_client_certificate(organization=organization)
        return Response(ArchiveClientCertificateSerializer(summary).data)

    @extend_schema(summary="Check the connection to the archive", request=None,
                   responses={200: ArchiveCheckSerializer, 400: REFUSED},
                   description="Asks the archive for one study (DICOMweb QIDO-RS) as kidneyweb's user: 200 when the "
                   "address and the credentials work, 400 with what the archive answered otherwise.")
    @action(detail=False, methods=["post"])
    def check(self, request: Request) -> Response:
        return Response({"detail": services.pacs_check(organization=self.organization)})

    @extend_schema(summary="Send a result the archive did not store again", request=None,
                   responses={202: ArchiveDeliverySerializer, 400: REFUSED},
                   description="The same instance, to the archive set now, with a fresh round of tries.")
    @action(detail=True, methods=["post"], url_path="send-again")
    def send_again(self, request: Request, pk: str | None = None) -> Response:
        delivery = services.pacs_send_again(delivery=self.get_object(), by=request.user)
        return Response(ArchiveDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Send earlier results to the archive", request=ArchiveSinceSerializer,
                   responses={202: ArchiveSentSerializer, 400: REFUSED},
                   description="The results of DICOM slices that finished on or after `since` and were never sent "
                   "(they finished before the archive was set): each scan's current capture, at most 5000 at once.")
    @action(detail=False, methods=["post"], url_path="send-since")
    def send_since(self, request: Request) -> Response:
        serializer = ArchiveSinceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sent = services.pacs_send_since(organization=self.organization, by=request.user,
                                        since=serializer.validated_data["since"])
        return Response({"sent": sent}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Send every result the archive did not store again", request=None,
                   responses={202: ArchiveSentSerializer, 400: REFUSED},
                   description="After an outage: every result and rejection note not stored, but results of withdrawn "
                   "scans and results (or reviews) something newer replaced.")
    @action(detail=False, methods=["post"], url_path="send-failed-again")
    def send_failed_again(self, request: Request) -> Response:
        sent = services.pacs_send_failed_again(organization=self.organization, by=request.user)
        return Response({"sent": sent}, status=status.HTTP_202_ACCEPTED)


__all__ = ["ArchiveViewSet"]
