"""A patient's whole-record export that the worker builds (POST /api/v1/patients/{id}/exports/): where it stands,
and its ZIP once ready."""

from __future__ import annotations

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from ... import record_export, selectors, services
from ...models import PatientAccess, RecordExport
from ..exceptions import Conflict, Gone
from ..permissions import HasMembership, MayExportRecords
from ..renderers import ZipRenderer
from ..serializers import RecordExportSerializer


@extend_schema(description="A whole-record export asked for with POST /api/v1/patients/{id}/exports/: poll it until "
               "status is done (then GET download_url) or failed (error says why). Administrators only.")
class RecordExportViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated, HasMembership, MayExportRecords]
    serializer_class = RecordExportSerializer
    queryset = RecordExport.objects.none()  # for the schema; get_object looks it up within the organization
    lookup_value_regex = r"[0-9]+"

    def get_object(self) -> RecordExport:
        export = selectors.record_export_get(user=self.request.user, pk=int(self.kwargs["pk"]))
        if export is None:
            raise Http404("No such export in your organization.")
        return export

    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY,
                   409: OpenApiResponse(description="Still being built: poll the export."),
                   410: OpenApiResponse(description="Failed, or its file was deleted after its time: ask again.")},
        description="The ZIP, while the export's status is done. Recorded in the patient's access log.",
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, ZipRenderer])
    def download(self, request: Request, pk: str | None = None) -> FileResponse:
        export = self.get_object()
        try:
            handle = services.record_export_open(export=export, user=request.user,
                                                 channel=PatientAccess.Channel.API)
        except services.RecordExportUnavailable as exc:
            raise (Gone if exc.gone else Conflict)(detail=exc.message) from exc
        return record_export.zip_download(handle, filename=services.record_export_filename(export))
