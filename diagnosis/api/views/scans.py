"""Scans: upload, results, review, withdrawal and filing for the right patient, and what a scan is fetched as
(its image, heat map, PDF report and FHIR bundle)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from ... import dicom_export, dicom_report, fhir, hl7, reports, selectors, services
from ...models import PatientAccess, Scan
from ..exceptions import Conflict
from ..renderers import DicomRenderer, FHIRRenderer, HL7Renderer, JPEGRenderer, PDFRenderer, PNGRenderer
from ..serializers import (
    RefileSerializer,
    RestoreSerializer,
    ReviewCreateSerializer,
    ReviewSerializer,
    ScanCreateSerializer,
    ScanSerializer,
    WithdrawSerializer,
)

# Room for the multipart boundaries and the other fields around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("patient", int, description="Only the scans of this patient."),
                    OpenApiParameter("withdrawn", bool, description="true: only withdrawn scans; false: none of them. "
                                     "Absent: all.")],
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
        withdrawn = None
        if self.action == "list" and "withdrawn" in self.request.query_params:
            raw = self.request.query_params["withdrawn"].lower()
            if raw not in ("true", "false"):
                raise ValidationError({"withdrawn": [f"{raw!r} is neither true nor false."]})
            withdrawn = raw == "true"
        return selectors.scan_list(user=self.request.user, patient=patient, withdrawn=withdrawn)

    def _log_access(self, scan: Scan, what: str) -> None:
        services.patient_access_record(user=self.request.user, patient=scan.patient, scan=scan, what=what,
                                       channel=PatientAccess.Channel.API)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        scan = self.get_object()
        self._log_access(scan, PatientAccess.What.SCAN)
        return Response(self.get_serializer(scan).data)

    @extend_schema(
        request={"multipart/form-data": ScanCreateSerializer},
        responses={201: ScanSerializer,
                   400: OpenApiResponse(description="Refused: the body names the field (`image`, `patient`) and why, "
                                        "e.g. not an image, too large, or already stored for this patient as scan N."),
                   503: OpenApiResponse(description="No diagnosis model is active.")},
        description="Upload a PNG, JPEG or DICOM slice (a DICOM slice is windowed and stored as PNG, without its header); "
                    "it is diagnosed asynchronously. Poll the scan for `prediction`.",
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
        responses={202: ScanSerializer, 400: OpenApiResponse(description="The scan was withdrawn as entered in error."),
                   409: OpenApiResponse(description="A diagnosis of the scan is already pending."),
                   503: OpenApiResponse(description="No diagnosis model is active.")},
        description="Queue a new diagnosis of the scan with the active model. Refused with 409 while the scan's "
        "newest diagnosis is queued or running, unless it was queued more than 10 minutes ago.",
    )
    @action(detail=True, methods=["post"])
    def predict(self, request: Request, pk: str | None = None) -> Response:
        scan = self.get_object()
        services.prediction_create(scan=scan)
        scan = selectors.scan_get(user=request.user, pk=scan.pk)
        return Response(ScanSerializer(scan, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=WithdrawSerializer,
        responses={200: ScanSerializer, 400: OpenApiResponse(description="No reason, or already withdrawn."),
                   403: OpenApiResponse(description="Neither the uploader nor an administrator.")},
        description="Withdraw the scan as entered in error (the wrong patient, the wrong image), with the reason. "
        "Nothing is deleted: the scan keeps its image, results and reviews, and leaves the worklist, the "
        "reviewer-agreement figures and training; a pending diagnosis is failed. Only the clinician who uploaded "
        "it or an administrator may.",
    )
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: str | None = None) -> Response:
        return self._withdrawal_step(request, WithdrawSerializer, services.scan_withdraw)

    def _withdrawal_step(self, request: Request, serializer_class, service) -> Response:
        scan = self.get_object()
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        service(scan=scan, user=request.user, reason=serializer.validated_data["reason"])
        scan = selectors.scan_get(user=request.user, pk=scan.pk)
        return Response(ScanSerializer(scan, context={"request": request}).data)

    @extend_schema(
        request=RestoreSerializer,
        responses={200: ScanSerializer,
                   400: OpenApiResponse(description="No reason, not withdrawn, or the same slice uploaded again since."),
                   403: OpenApiResponse(description="Neither the uploader nor an administrator.")},
        description="Undo a withdrawal made by mistake, with the reason: the scan returns to the worklist, the "
        "reviewer-agreement figures and training. Refused while the same slice, uploaded again for the patient, "
        "is on record. A diagnosis the withdrawal failed stays failed; POST predict for a new one.",
    )
    @action(detail=True, methods=["post"])
    def restore(self, request: Request, pk: str | None = None) -> Response:
        return self._withdrawal_step(request, RestoreSerializer, services.scan_restore)

    @extend_schema(
        request=RefileSerializer,
        responses={201: ScanSerializer,
                   400: OpenApiResponse(description="No reason for a scan not yet withdrawn, the scan's own patient, a "
                                        "patient who already has the slice, or a filing of this scan that stands."),
                   403: OpenApiResponse(description="Neither the uploader nor an administrator."),
                   503: OpenApiResponse(description="No diagnosis model is active.")},
        description="File the slice of a scan uploaded for the wrong patient for the right one: the answer is a new "
        "scan of that patient (`refiled_from` names this one), queued for diagnosis; no review moves with it. A scan "
        "not yet withdrawn is withdrawn with the reason in the same step (its `scan.withdrawn` notification names the "
        "new scan in `refiled_as`). Nothing changes when it is refused. Only the clinician who uploaded it or an "
        "administrator may.",
    )
    @action(detail=True, methods=["post"])
    def refile(self, request: Request, pk: str | None = None) -> Response:
        scan = self.get_object()
        serializer = RefileSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        copy = services.scan_refile(scan=scan, user=request.user, **serializer.validated_data)
        copy = selectors.scan_get(user=request.user, pk=copy.pk)
        return Response(ScanSerializer(copy, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={(200, "image/*"): OpenApiTypes.BINARY},
        description="The stored image, as uploaded.",
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, PNGRenderer, JPEGRenderer])
    def image(self, request: Request, pk: str | None = None) -> FileResponse:
        scan = self.get_object()
        try:
            handle = scan.image.open("rb")
        except OSError:
            raise NotFound("The stored image is missing.") from None
        services.scan_image_access_record(user=request.user, scan=scan, channel=PatientAccess.Channel.API)
        return FileResponse(handle, content_type=f"image/{scan.format.lower()}")

    @extend_schema(
        request=ReviewCreateSerializer,
        responses={201: ReviewSerializer, 400: OpenApiResponse(description="Unknown label, or nothing to review yet.")},
        description="Accept the AI label (send it back) or correct it (send the true class), with an optional "
        "comment. The AI result stays as it was; the newest review is the scan's current one.",
    )
    @action(detail=True, methods=["post"])
    def review(self, request: Request, pk: str | None = None) -> Response:
        scan = self.get_object()
        serializer = ReviewCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        review = services.review_create(scan=scan, user=request.user, **serializer.validated_data)
        return Response(ReviewSerializer(review, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={(200, "application/pdf"): OpenApiTypes.BINARY},
        description="The PDF report of the scan: patient, slice with heat map, AI result, review.",
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, PDFRenderer])
    def report(self, request: Request, pk: str | None = None) -> HttpResponse:
        scan = self.get_object()
        response = HttpResponse(reports.scan_report_pdf(scan=scan, user=request.user), content_type="application/pdf")
        self._log_access(scan, PatientAccess.What.REPORT)
        response["Content-Disposition"] = f'attachment; filename="scan-{scan.pk}-report.pdf"'
        response["Cache-Control"] = "private, no-store"
        return response

    @extend_schema(
        responses={(200, fhir.FHIR_JSON): OpenApiTypes.OBJECT, (200, "application/json"): OpenApiTypes.OBJECT},
        description="The scan's result as a FHIR R4 Bundle (type collection) for the patient's record: a "
        "DiagnosticReport first (status registered, preliminary for an AI result nobody has reviewed, final or "
        "amended after a review, cancelled for a failed diagnosis nobody has read, entered-in-error once "
        "withdrawn), then the Patient (MRN as identifier), the slice (Media), the model (Device) and the AI and "
        "clinician Observations. The report's identifier is the scan's address, and the bundle's full URLs "
        "stay the same, so a system that files it again updates what it filed before.",
    )
    @action(detail=True, methods=["get"], renderer_classes=[FHIRRenderer, JSONRenderer])
    def fhir(self, request: Request, pk: str | None = None) -> Response:
        scan = self.get_object()
        bundle = fhir.scan_fhir_bundle(scan=scan, base_url=request.build_absolute_uri("/"))
        self._log_access(scan, PatientAccess.What.FHIR)
        return Response(bundle, headers={"Cache-Control": "private, no-store"})

    @extend_schema(
        responses={(200, hl7.HL7_MEDIA_TYPE): OpenApiTypes.STR},
        description="The scan's result as an HL7 v2.5.1 ORU^R01 message (ER7, UTF-8, segments ended by a carriage "
        "return), for an interface engine or record system that takes results so: PID (MRN with the organization "
        "as assigning authority, name, birth date, sex), ORC and OBR (the scan as filler order number, the accession "
        "number in OBR-18, the reviewer in OBR-32), the decision-support notice as NTE, then OBX: the conclusion "
        "(TX), the AI's class (CWE, SNOMED CT with kidneyweb's class as alternate code; 82334004 Indeterminate for an "
        "image out of the model's scope), its probability for each class (NM), the clinician's reading (CWE, the "
        "reviewer in OBX-16), the study's UID (HD, 110180) and the PDF report's address (RP). Result status (OBR-25, "
        "OBX-11): I while the diagnosis runs, P for an AI result nobody has reviewed, F after a review, C after a "
        "later one, X for a failed diagnosis nobody has read; once withdrawn as entered in error, OBR-25 C with every "
        "OBX W. MSH-10 is a digest of the content: the same state gives the same message, any change a new one.",
    )
    @action(detail=True, methods=["get"], renderer_classes=[HL7Renderer, JSONRenderer])
    def hl7(self, request: Request, pk: str | None = None) -> HttpResponse:
        scan = self.get_object()
        message = hl7.scan_result_message(scan=scan, base_url=request.build_absolute_uri("/"))
        self._log_access(scan, PatientAccess.What.HL7)
        response = HttpResponse(message, content_type=f"{hl7.HL7_MEDIA_TYPE}; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="scan-{scan.pk}-result.hl7"'
        response["Cache-Control"] = "private, no-store"
        return response

    @extend_schema(
        responses={(200, "application/dicom"): OpenApiTypes.BINARY,
                   409: OpenApiResponse(description="No result for the archive: the scan was withdrawn, came "
                                                    "without a DICOM study, or its diagnosis failed or is not finished.")},
        description="The scan's newest AI result as a DICOM Secondary Capture (application/dicom, Part 10) for the "
        "hospital's archive: the slice with its heat map under a band that states the result, the clinician's "
        "current review of it (when there is one), the model and that it is decision support, in the slice's study "
        "(StudyInstanceUID, AccessionNumber), in a series of the model's results (SeriesNumber 9901), under the "
        "patient's MRN, name, birth date and sex as kept here. Its UIDs are made from the study, the slice, the model, "
        "the result and the review, so fetching it again gives the same instance, and a review gives a new one. "
        "Only for slices that came as DICOM.",
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, DicomRenderer])
    def dicom(self, request: Request, pk: str | None = None) -> HttpResponse:
        scan = self.get_object()
        try:
            capture = dicom_export.scan_result_capture(scan=scan)
        except dicom_export.NotExportable as exc:
            raise Conflict(detail=str(exc)) from None
        except OSError:
            raise NotFound("The stored image is missing.") from None
        return self._dicom_file(scan, capture, f"scan-{scan.pk}-ai-result.dcm")

    @extend_schema(
        responses={(200, "application/dicom"): OpenApiTypes.BINARY,
                   409: OpenApiResponse(description="No report for the archive: the scan was withdrawn, came "
                                                    "without a DICOM study or without its instance UID, or its "
                                                    "diagnosis failed or is not finished.")},
        description="The scan's newest AI result as a DICOM Structured Report (Comprehensive SR, TID 1500 "
        "Measurement Report; application/dicom, Part 10), the form IHE's AI Results profile (AIR) gives AI "
        "findings: the class found (121071 Finding, coded in SNOMED CT as the FHIR export codes it: 281900007 No "
        "abnormality detected, 722223000 Cyst of kidney, 95570007 Kidney stone, 126880001 Neoplasm of kidney; "
        "82334004 Indeterminate for an image out of the model's scope) with the kidney as finding site, "
        "with its probability (122157 Probability), the model as algorithm and device observer, and the slice it "
        "was read from. The clinician's current review, when there is one, adds a second finding group (\"Clinician's "
        "reading\"), the clinician as person observer, and makes the report verified and final; without one it is "
        "unverified and preliminary. In the slice's study, in a series of the model's reports (SeriesNumber 9903), "
        "under the patient's identity as kept here. Its UIDs are made as the capture's are: fetching it again gives "
        "the same instance, and a review gives a new one.",
    )
    @action(detail=True, methods=["get"], url_path="dicom-sr", renderer_classes=[JSONRenderer, DicomRenderer])
    def dicom_sr(self, request: Request, pk: str | None = None) -> HttpResponse:
        scan = self.get_object()
        try:
            report = dicom_report.scan_result_report(scan=scan)
        except dicom_export.NotExportable as exc:
            raise Conflict(detail=str(exc)) from None
        return self._dicom_file(scan, report, f"scan-{scan.pk}-ai-result-sr.dcm")

    def _dicom_file(self, scan: Scan, content: bytes, filename: str) -> HttpResponse:
        self._log_access(scan, PatientAccess.What.DICOM)
        response = HttpResponse(content, content_type="application/dicom")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "private, no-store"
        return response

    @extend_schema(
        parameters=[OpenApiParameter("class", str, description="Class to explain; the predicted one by default.")],
        responses={
            (200, "image/png"): OpenApiTypes.BINARY,
            202: OpenApiResponse(description="Being computed; ask again in a few seconds."),
            400: OpenApiResponse(description="Unknown class, or the diagnosis is not finished."),
            503: OpenApiResponse(description="The map could not be computed; asking again after a minute retries."),
        },
        description="Grad-CAM overlay (RGBA PNG, transparent where cold) of the latest result. The predicted "
        "class's map is made with the diagnosis; another class's is computed on the first request.",
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, PNGRenderer])
    def heatmap(self, request: Request, pk: str | None = None) -> HttpResponse:
        scan = self.get_object()
        answer = services.heatmap_get_or_request(
            prediction=scan.latest_prediction, class_name=request.query_params.get("class") or None
        )
        if answer.status == "ready":
            try:
                handle = answer.file.open("rb")
            except OSError:
                raise NotFound("The stored heat map is missing.") from None
            services.scan_image_access_record(user=request.user, scan=scan, channel=PatientAccess.Channel.API)
            response = FileResponse(handle, content_type="image/png")
            response["Cache-Control"] = "private, no-store"
            return response
        body = {"class": answer.class_name, "status": answer.status, "detail": answer.detail}
        if answer.status == "queued":
            return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Retry-After": "2"})
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "60"})
