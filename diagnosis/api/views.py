from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from .. import selectors, services
from ..models import Patient, Scan
from .serializers import PatientCreateSerializer, PatientSerializer, ScanCreateSerializer, ScanSerializer


# Room for the multipart boundaries and the other fields around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("search", str, description="Part of the patient's name or MRN.")],
    ),
)
class PatientViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PatientSerializer

    def get_queryset(self) -> QuerySet[Patient]:
        search = self.request.query_params.get("search") if self.action == "list" else None
        return selectors.patient_list(user=self.request.user, search=search)

    @extend_schema(request=PatientCreateSerializer, responses={201: PatientSerializer})
    def create(self, request: Request) -> Response:
        serializer = PatientCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient = services.patient_create(
            organization=selectors.organization_of(request.user), **serializer.validated_data
        )
        return Response(PatientSerializer(patient).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("patient", int, description="Only the scans of this patient.")],
    ),
)
class ScanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ScanSerializer

    def get_queryset(self) -> QuerySet[Scan]:
        patient = None
        if self.action == "list" and "patient" in self.request.query_params:
            raw = self.request.query_params["patient"]
            try:
                patient = int(raw)
            except ValueError:
                raise ValidationError({"patient": [f"{raw!r} is not a patient id."]}) from None
        return selectors.scan_list(user=self.request.user, patient=patient)

    @extend_schema(
        request={"multipart/form-data": ScanCreateSerializer},
        responses={201: ScanSerializer, 503: OpenApiResponse(description="No diagnosis model is active.")},
        description="Upload a PNG or JPEG slice; it is diagnosed asynchronously. Poll the scan for `prediction`.",
    )
    def create(self, request: Request) -> Response:
        self._refuse_oversized_body(request)
        serializer = ScanCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        scan = services.scan_create(
            patient=serializer.validated_data["patient"],
            file=serializer.validated_data["image"],
            uploaded_by=request.user,
        )
        scan = selectors.scan_get(user=request.user, pk=scan.pk)
        return Response(
            ScanSerializer(scan, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )

    @staticmethod
    def _refuse_oversized_body(request: Request) -> None:
        """Refuse from the declared length, before Django spools a huge body to disk; the upload
        service checks the file itself in any case."""
        limit = settings.KIDNEYWEB_MAX_UPLOAD_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return
        if declared > limit + MULTIPART_OVERHEAD_BYTES:
            raise ValidationError({"image": [f"The upload is larger than the {limit / (1024 * 1024):.1f} MB limit."]})

    @extend_schema(
        request=None,
        responses={202: ScanSerializer, 503: OpenApiResponse(description="No diagnosis model is active.")},
        description="Queue a new diagnosis of the scan with the active model.",
    )
    @action(detail=True, methods=["post"])
    def predict(self, request: Request, pk: str | None = None) -> Response:
        scan = self.get_object()
        services.prediction_create(scan=scan)
        scan = selectors.scan_get(user=request.user, pk=scan.pk)
        return Response(ScanSerializer(scan, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        responses={(200, "image/*"): OpenApiTypes.BINARY},
        description="The stored image, as uploaded.",
    )
    @action(detail=True, methods=["get"])
    def image(self, request: Request, pk: str | None = None) -> FileResponse:
        scan = self.get_object()
        try:
            handle = scan.image.open("rb")
        except OSError:
            raise NotFound("The stored image is missing.") from None
        return FileResponse(handle, content_type=f"image/{scan.format.lower()}")
