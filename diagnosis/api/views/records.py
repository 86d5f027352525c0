"""Patients, the worklist, reviewer agreement and the access log: what clinicians and hospital systems read and
write (scans are ``scans``)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, mixins, status, views, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from ... import record_export, selectors, services
from ...models import Patient, PatientAccess, Scan
from ..exceptions import Conflict, Gone
from ..permissions import (HasMembership, IsOrganizationAdministrator, MayErasePatients, MayExportRecords,
                           MayMergePatients, MayReadAccessLog)
from ..renderers import ZipRenderer
from ..serializers import (
    AccessLogEntrySerializer,
    AccessLogFilterSerializer,
    AgreementSerializer,
    PatientAccessSerializer,
    PatientCreateSerializer,
    PatientCreatedSerializer,
    PatientEraseSerializer,
    PatientErasureSerializer,
    PatientMergeCreateSerializer,
    PatientMergeSerializer,
    PatientMergeUndoSerializer,
    PatientSerializer,
    PatientUpdateSerializer,
    RecordExportSerializer,
    StudySummarySerializer,
    TrainingUseSerializer,
    WorklistFilterSerializer,
    WorklistScanSerializer,
)


IF_MATCH = OpenApiParameter(
    "If-Match", str, location=OpenApiParameter.HEADER, required=False,
    description="The patient's ETag as read (GET answers with it): refused with 412 if the details changed since.",
)

ETAG = OpenApiParameter(
    "ETag", str, location=OpenApiParameter.HEADER, response=[200, 412],
    description="The version of the patient's details: send it back in If-Match when correcting them.",
)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("search", str, description="Part of the patient's name or MRN."),
                    OpenApiParameter("mrn", str, description="One whole MRN: the patient a hospital system "
                                     "knows by it, or an empty list if none is registered yet.")],
    ),
)
class PatientViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PatientSerializer

    def get_queryset(self) -> QuerySet[Patient]:
        if self.action != "list":
            return selectors.patient_list(user=self.request.user, include_merged=True)
        return selectors.patient_list(user=self.request.user, search=self.request.query_params.get("search"),
                                      mrn=self.request.query_params.get("mrn"))

    @extend_schema(request=PatientCreateSerializer, responses={201: PatientCreatedSerializer},
                   description="Register a patient. The answer names records that may be the same person "
                   "(`possible_duplicates`): a registration desk checks them, since a second record splits a "
                   "person's scans.")
    def create(self, request: Request) -> Response:
        serializer = PatientCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient = services.patient_create(
            organization=selectors.organization_of(request.user), **serializer.validated_data
        )
        return Response(PatientCreatedSerializer(patient).data, status=status.HTTP_201_CREATED)

    def get_object(self) -> Patient:
        try:
            return super().get_object()
        except Http404:
            # A hospital system asking for a record it knew hears that it was erased, not that it never was.
            erasure = selectors.patient_erasure_of(user=self.request.user, pk=_int_or_none(self.kwargs.get("pk")))
            if erasure is None:
                raise
            raise Gone(detail=services.erased_message(erasure)) from None

    @staticmethod
    def _with_etag(response: Response, patient: Patient) -> Response:
        response["ETag"] = f'"{selectors.patient_version(patient=patient)}"'
        return response

    @extend_schema(parameters=[ETAG], responses={
        200: PatientSerializer,
        410: OpenApiResponse(description="The record was erased: `detail` says when, by whom and why."),
    })
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        patient = self.get_object()
        services.patient_access_record(user=request.user, patient=patient, what=PatientAccess.What.PATIENT,
                                       channel=PatientAccess.Channel.API)
        return self._with_etag(Response(PatientSerializer(patient).data), patient)

    @extend_schema(responses={200: StudySummarySerializer(many=True)},
                   description="The patient's DICOM studies, newest first (by study date, else by first upload), each "
                   "summed up as on the patient's page: its slices counted once each by their newest diagnosis (a "
                   "label the model vouches for, needing review, or in progress) and by their current review, and the "
                   "slice to look at first. Withdrawn slices and PNG or JPEG uploads are left out.")
    @action(detail=True, methods=["get"], pagination_class=None)  # a patient has few studies: one answer
    def studies(self, request: Request, pk: str | None = None) -> Response:
        patient = self.get_object()
        services.patient_access_record(user=request.user, patient=patient, what=PatientAccess.What.PATIENT,
                                       channel=PatientAccess.Channel.API)
        studies = selectors.patient_studies(scans=selectors.scan_list(user=request.user, patient=patient))
        return Response(StudySummarySerializer(studies, many=True, context={"request": request}).data)

    @extend_schema(responses={200: PatientAccessSerializer(many=True)},
                   description="Who opened this patient's record, scans, images or reports, on the web or through "
                   "the API, newest first (one entry a minute for the same opening). Administrators only.")
    @action(detail=True, methods=["get"], permission_classes=[IsAuthenticated, HasMembership, MayReadAccessLog])
    def accesses(self, request: Request, pk: str | None = None) -> Response:
        page = self.paginate_queryset(selectors.patient_accesses(patient=self.get_object()))
        return self.get_paginated_response(PatientAccessSerializer(page, many=True).data)

    @extend_schema(
        request=PatientMergeCreateSerializer,
        responses={201: PatientMergeSerializer,
                   400: OpenApiResponse(description="Not mergeable, with the reason; nothing changed."),
                   403: OpenApiResponse(description="Not an administrator.")},
        description="Merge this record into `into`, another record of the same person (registered twice): this "
        "record's scans, with their results and reviews, move there, and this record stays, read-only, with "
        "`merged_into` set. Refused when the birth dates differ, when the sexes differ (neither unknown), when the "
        "same slice is on both records, or when either is merged already. A `patient.merged` notification names "
        "the scans that moved. Administrators only.",
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, HasMembership, MayMergePatients])
    def merge(self, request: Request, pk: str | None = None) -> Response:
        patient = self.get_object()
        serializer = PatientMergeCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        merge = services.patient_merge(duplicate=patient, user=request.user, **serializer.validated_data)
        return Response(PatientMergeSerializer(merge).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=PatientMergeUndoSerializer,
        responses={200: PatientMergeSerializer,
                   400: OpenApiResponse(description="Not merged, or the record it went into was merged on since."),
                   403: OpenApiResponse(description="Not an administrator.")},
        description="Undo the merge of this record (two people after all): the scans the merge moved come back, "
        "scans uploaded to the other record since stay there. A `patient.unmerged` notification names the scans "
        "that came back. Administrators only.",
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, HasMembership, MayMergePatients])
    def unmerge(self, request: Request, pk: str | None = None) -> Response:
        patient = self.get_object()
        serializer = PatientMergeUndoSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        merge = services.patient_merge_undo(duplicate=patient, user=request.user, **serializer.validated_data)
        return Response(PatientMergeSerializer(merge).data)

    @extend_schema(
        request=TrainingUseSerializer, responses={200: PatientSerializer},
        description="Record whether the patient lets their reviewed slices train the model (consent for secondary "
        "use given, refused or withdrawn); any member. Refused patients' slices stay out of every training export "
        "from then on (a training already running keeps what it took). Kept with the record's corrections. 400 for "
        "a record merged into another: set it there.",
    )
    @action(detail=True, methods=["post"], url_path="training-use")
    def training_use(self, request: Request, pk: str | None = None) -> Response:
        patient = self.get_object()
        serializer = TrainingUseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient = services.patient_training_use_set(patient=patient, user=request.user,
                                                    allowed=serializer.validated_data["allowed"])
        return Response(PatientSerializer(patient).data)

    @extend_schema(
        responses={(200, "application/zip"): OpenApiTypes.BINARY,
                   403: OpenApiResponse(description="Not an administrator."),
                   409: OpenApiResponse(description="Over 250 scans: ask for it with POST exports/.")},
        description="The patient's whole record as one ZIP, for a subject access request or a move to another "
        "hospital: patient.json (details, corrections, former MRNs, merges), access-log.csv (who opened it when), "
        "and per scan scan.json (every AI result and review), the slice as stored, the heat map, the PDF report "
        "and the FHIR R4 Bundle. Scans withdrawn as entered in error are left out (they may show another person); "
        "README.txt counts them. Recorded in the access log. Administrators only. Built in the request, for a "
        "record of up to 250 scans (409 beyond: ask for it with POST exports/, which any record may).",
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, ZipRenderer],
            permission_classes=[IsAuthenticated, HasMembership, MayExportRecords])
    def export(self, request: Request, pk: str | None = None) -> FileResponse:
        patient = self.get_object()
        try:
            response = record_export.patient_record_response(patient=patient, user=request.user,
                                                             base_url=request.build_absolute_uri("/"))
        except record_export.TooLargeForOneRequest as exc:
            raise Conflict(detail=f"{exc} POST /api/v1/patients/{patient.pk}/exports/ and download the ZIP when it "
                                  "is ready.") from exc
        services.patient_access_record(user=request.user, patient=patient, what=PatientAccess.What.EXPORT,
                                       channel=PatientAccess.Channel.API)
        return response

    @extend_schema(
        request=None,
        responses={202: RecordExportSerializer, 403: OpenApiResponse(description="Not an administrator.")},
        description="Ask for the patient's whole record as one ZIP (as GET export/ answers it), built by the worker "
        "for a record of any size: 202 with the export; poll its url until status is done, then GET its "
        "download_url. Asking again while your export of this record is being built answers that one. The file is "
        "deleted a day after it is built (KIDNEYWEB_RECORD_EXPORT_KEEP_HOURS). Administrators only.",
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, HasMembership, MayExportRecords])
    def exports(self, request: Request, pk: str | None = None) -> Response:
        patient = self.get_object()
        export = services.record_export_request(patient=patient, user=request.user,
                                                base_url=request.build_absolute_uri("/"))
        return Response(RecordExportSerializer(export).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=PatientEraseSerializer,
        responses={200: PatientErasureSerializer,
                   400: OpenApiResponse(description="Not erased: a record merged into another, or the MRN did not "
                                        "match; nothing changed."),
                   403: OpenApiResponse(description="Not an administrator.")},
        description="Erase this record for good (consent withdrawn, the end of a pilot), with the records merged "
        "into it: their details, corrections, scans, images, results, heat maps and reviews are deleted. Send the "
        "record's MRN as confirmation. What stays names nobody: the erasure (answered here, and listed at "
        "/api/v1/erasures/) and the access log's entries, which name it. This record answers 410 from now on. The "
        "archive, where one is set, is sent a note (IHE IOCM) asking it to delete the result captures it was sent; "
        "a `patient.erased` notification names the scans deleted and the UIDs of those captures, for an archive "
        "without IOCM. Administrators only.",
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, HasMembership, MayErasePatients])
    def erase(self, request: Request, pk: str | None = None) -> Response:
        patient = self.get_object()
        serializer = PatientEraseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        erasure = services.patient_erase(patient=patient, user=request.user, reason=serializer.validated_data["reason"],
                                         confirm_mrn=serializer.validated_data["mrn"])
        return Response(PatientErasureSerializer(erasure).data)

    @extend_schema(responses={200: PatientMergeSerializer(many=True)},
                   description="Merges of this record into another and of others into it, undone ones included, "
                   "newest first, paginated.")
    @action(detail=True, methods=["get"])
    def merges(self, request: Request, pk: str | None = None) -> Response:
        page = self.paginate_queryset(selectors.patient_merges(patient=self.get_object()))
        return self.get_paginated_response(PatientMergeSerializer(page, many=True).data)

    @extend_schema(request=PatientUpdateSerializer,
                   parameters=[IF_MATCH, ETAG],
                   responses={200: PatientSerializer,
                              412: OpenApiResponse(description="If-Match named details that have changed since.")},
                   description="Correct a patient's details; PATCH sends only the fields that change. Send the "
                   "ETag of the patient as read in If-Match, and a correction saved by someone else meanwhile "
                   "refuses this one with 412 instead of being overwritten.")
    def update(self, request: Request, *args: Any, partial: bool = False, **kwargs: Any) -> Response:
        patient = self.get_object()
        serializer = PatientUpdateSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        if_match = (request.headers.get("If-Match") or "").strip()
        expected = None if if_match in ("", "*") else if_match.removeprefix("W/").strip('"')
        try:
            # Fields not sent keep their stored values, read under the service's lock.
            patient = services.patient_update(patient=patient, changed_by=request.user, expected_version=expected,
                                              **serializer.validated_data)
        except services.PatientChangedMeanwhile as exc:
            response = Response({"detail": str(exc)}, status=status.HTTP_412_PRECONDITION_FAILED)
            return self._with_etag(response, exc.current)
        return self._with_etag(Response(PatientSerializer(patient).data), patient)

    @extend_schema(request=PatientUpdateSerializer(partial=True), parameters=[IF_MATCH, ETAG],
                   responses={200: PatientSerializer,
                              412: OpenApiResponse(description="If-Match named details that have changed since.")},
                   description="Correct some of a patient's details; fields not sent keep their stored values. "
                   "With If-Match, a correction saved by someone else meanwhile refuses this one with 412.")
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, partial=True, **kwargs)


class WorklistPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


@extend_schema_view(
    get=extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=list(selectors.WORKLIST_STATUSES),
                             description="needs_review, result (a confident AI result) or pending."),
            OpenApiParameter("label", str, description="Only finished results with this AI label."),
            OpenApiParameter("uploaded_from", OpenApiTypes.DATE, description="Uploaded on or after (YYYY-MM-DD)."),
            OpenApiParameter("uploaded_to", OpenApiTypes.DATE, description="Uploaded on or before (YYYY-MM-DD)."),
        ],
        description="The organization's unreviewed scans in triage order: results that need review first, "
        "then Tumor, Stone, Cyst, Normal, then those still being diagnosed; oldest first within each.",
    ),
)
class WorklistView(generics.ListAPIView):
    serializer_class = WorklistScanSerializer
    pagination_class = WorklistPagination

    def get_queryset(self) -> QuerySet[Scan]:
        filters = WorklistFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.worklist(user=self.request.user, **filters.validated_data)


@extend_schema(
    summary="Reviewer agreement with the AI, per class the AI said",
    description=(
        "For the caller's organization: for each class the AI predicted, how many scans were reviewed, how many "
        "reviews agreed and what reviewers said instead (the current review of each scan counts). "
        "Administrators only."
    ),
    responses={200: AgreementSerializer},
)
class AgreementView(generics.GenericAPIView):
    permission_classes = [IsAuthenticated, HasMembership, IsOrganizationAdministrator]
    serializer_class = AgreementSerializer

    def get(self, request: Request) -> Response:
        summary = selectors.agreement_summary(organization=selectors.organization_of(request.user))
        return Response(self.get_serializer(summary).data)


@extend_schema(
    summary="The organization's access log",
    description=(
        "Every opening of the organization's patient records, scans, images and reports (web or API), oldest "
        "first, for the days asked (both included; none: all), paginated: for an audit or a security "
        "information system pulling it. Administrators only."
    ),
    parameters=[AccessLogFilterSerializer],
)
class AccessLogView(generics.ListAPIView):
    permission_classes = [IsAuthenticated, HasMembership, MayReadAccessLog]
    serializer_class = AccessLogEntrySerializer

    def get_queryset(self) -> QuerySet[PatientAccess]:
        filters = AccessLogFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.organization_accesses(organization=selectors.organization_of(self.request.user),
                                               **filters.validated_data)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@extend_schema(description="The organization's erased patient records, newest first: who erased how much, when "
               "and why. Nothing here names a patient. Administrators only.")
class ErasureListView(generics.ListAPIView):
    permission_classes = [IsAuthenticated, HasMembership, MayErasePatients]
    serializer_class = PatientErasureSerializer

    def get_queryset(self):
        return selectors.erasures(organization=selectors.organization_of(self.request.user))


class ErasureGiveUpArchiveView(views.APIView):
    permission_classes = [IsAuthenticated, HasMembership, MayErasePatients]

    @extend_schema(
        request=None, responses={200: PatientErasureSerializer},
        summary="Stop asking the archive to delete an erased record's results",
        description="For an erasure whose notes the archive did not store (`archive_notes.failed`): kidneyweb stops "
        "asking, and forgets the patient's name, ID, birth date, sex and study those notes kept to name the results. "
        "The archive may then keep the results: delete them there by hand. Done by itself "
        "KIDNEYWEB_ERASURE_ARCHIVE_DAYS (30) days after the erasure. 400 with the reason when every note was stored, "
        "one is still being sent, or it was given up already. Administrators only.")
    def post(self, request: Request, pk: int) -> Response:
        erasure = selectors.erasure_get(organization=selectors.organization_of(request.user), pk=pk)
        if erasure is None:
            raise Http404("No such erasure.")
        services.pacs_erasure_give_up(erasure=erasure, by=request.user)
        return Response(PatientErasureSerializer(selectors.erasures(organization=erasure.organization).get(
            pk=erasure.pk)).data)
