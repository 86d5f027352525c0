"""DICOMweb STOW-RS: a hospital's archive (PACS, VNA or router) sends CT instances as it sends them to any DICOM
store, and each is filed for the patient its header names (services.dicom_instances_store)."""

from __future__ import annotations

import re

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ... import services
from ...services.dicom_store import DICOM
from ..multipart import MultipartError, content_type_parameters, split_related
from ..renderers import DicomJSONRenderer

# PS3.5 9.1: components of digits, no leading zero but a lone 0, joined by dots, at most 64 characters.
UID = re.compile(r"(?=.{1,64}$)(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"


def _element(vr: str, *values) -> dict:
    return {"vr": vr, "Value": list(values)} if values and values != ("",) else {"vr": vr}


def error_comment(reason: str, limit: int = 64) -> str:
    """The reason as ErrorComment holds it: an LO, at most 64 characters, which a strict reader refuses to parse
    past. Cut at a word with "..."; the whole reason is kept with the refusal for the administrators."""
    if len(reason) <= limit:
        return reason
    cut = reason[: limit - 3]
    if reason[limit - 3] != " " and " " in cut:  # not already at a word's end
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,:;") + "..."


def _answer(outcomes: list[services.StoredInstance], base_url: str) -> dict:
    """The store's answer in DICOM's JSON model: the instances filed (each with its scan's API address) in
    ReferencedSOPSequence, the refused in FailedSOPSequence with their status code and, in ErrorComment, why."""
    referenced, failed = [], []
    for outcome in outcomes:
        item = {"00081150": _element("UI", outcome.sop_class_uid), "00081155": _element("UI", outcome.sop_instance_uid)}
        if outcome.scan is not None:
            item["00081190"] = _element("UR", base_url + reverse("api:scan-detail", kwargs={"pk": outcome.scan.pk}))
            referenced.append(item)
        else:
            item["00081197"] = _element("US", outcome.failure_code)
            item["00000902"] = _element("LO", error_comment(outcome.failure))
            failed.append(item)
    answer: dict = {}
    if failed:
        answer["00081198"] = {"vr": "SQ", "Value": failed}
    if referenced:
        answer["00081199"] = {"vr": "SQ", "Value": referenced}
    return answer


@extend_schema(
    summary="Store DICOM instances (DICOMweb STOW-RS)",
    request={"multipart/related": OpenApiTypes.BINARY},
    responses={
        (200, DicomJSONRenderer.media_type): OpenApiResponse(
            OpenApiTypes.OBJECT, description="Every instance was filed (or had been): ReferencedSOPSequence (0008,1199) "
            "names each with its scan's API address in RetrieveURL (0008,1190)."),
        (202, DicomJSONRenderer.media_type): OpenApiResponse(
            OpenApiTypes.OBJECT, description="Some were refused: FailedSOPSequence (0008,1198) gives each one's "
            "FailureReason (0008,1197) and, in ErrorComment (0000,0902), why, cut to its 64 characters."),
        (409, DicomJSONRenderer.media_type): OpenApiResponse(OpenApiTypes.OBJECT, description="Every instance was refused."),
        400: OpenApiResponse(description="The body is not a multipart/related message, or holds too many parts."),
        413: OpenApiResponse(description="The body is larger than KIDNEYWEB_DICOMWEB_MAX_BYTES."),
        415: OpenApiResponse(description="Not multipart/related with type application/dicom."),
        503: OpenApiResponse(description="No diagnosis model is active: send the instances again later."),
    },
    description="For a hospital's archive: POST the instances of one or more CT studies as `multipart/related; "
    "type=\"application/dicom\"`, one DICOM Part 10 instance per part, as a DICOMweb STOW-RS client does. Each is "
    "filed, as a scan, for the patient of the organization whose MRN its header's PatientID (0010,0020) names "
    "(case, spaces and leading zeros of an all-digit ID aside; a merged record's MRN files it for the record it went "
    "into), and diagnosed like any upload. An instance already stored for that patient is answered with its scan, "
    "so a retry is harmless. One that is refused (no such patient or several, not a CT slice) does not undo the "
    "others. Only instances are stored, as windowed PNG slices: no DICOM is kept or served back.",
)
class DicomStoreView(APIView):
    renderer_classes = [DicomJSONRenderer, JSONRenderer]
    parser_classes: list = []  # the body is read as it came; Django and DRF parse only forms and JSON

    def post(self, request: Request, study_uid: str = "") -> Response:
        if study_uid and not UID.fullmatch(study_uid):
            raise exceptions.ParseError(f"{study_uid[:80]!r} is not a DICOM UID (digits in groups joined by dots, at "
                                        "most 64 characters): send the instances to the study's Study Instance UID.")
        media_type, params = content_type_parameters(request.META.get("CONTENT_TYPE", ""))
        if media_type != "multipart/related" or params.get("type", DICOM).lower() != DICOM:
            raise exceptions.UnsupportedMediaType(
                media_type or "(none)", detail='Send the instances as multipart/related; type="application/dicom", '
                                               "one DICOM Part 10 instance per part.")
        if not params.get("boundary"):
            raise exceptions.ParseError("The Content-Type names no boundary.")
        limit = settings.KIDNEYWEB_DICOMWEB_MAX_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        too_large = PayloadTooLarge(f"The body is larger than the {limit / (1024 * 1024):.0f} MB limit: send the "
                                    "instances in several requests.")
        if declared > limit:
            raise too_large
        # The stream, not .body: Django caps that at DATA_UPLOAD_MAX_MEMORY_SIZE. None for an empty body.
        body = request.stream.read(limit + 1) if request.stream is not None else b""
        if len(body) > limit:
            raise too_large
        try:
            parts = split_related(body, params["boundary"])
        except MultipartError as exc:
            raise exceptions.ParseError(str(exc)) from None
        if not parts:
            raise exceptions.ParseError("The body holds no instance.")
        if len(parts) > settings.DATA_UPLOAD_MAX_NUMBER_FILES:
            raise exceptions.ParseError(f"{len(parts)} instances in one request; the limit is "
                                        f"{settings.DATA_UPLOAD_MAX_NUMBER_FILES}: send them in several requests.")
        outcomes = services.dicom_instances_store(instances=[(part.content_type, part.data) for part in parts],
                                                  uploaded_by=request.user, study_instance_uid=study_uid)
        stored = sum(outcome.scan is not None for outcome in outcomes)
        code = (status.HTTP_200_OK if stored == len(outcomes) else
                status.HTTP_409_CONFLICT if stored == 0 else status.HTTP_202_ACCEPTED)
        return Response(_answer(outcomes, request.build_absolute_uri("/").rstrip("/")), status=code)


class DicomStudyStoreView(DicomStoreView):
    # The schema on the method: drf-spectacular refuses an operation_id given to a view class.
    @extend_schema(
        summary="Store DICOM instances into one study (DICOMweb STOW-RS)",
        operation_id="v1_dicomweb_studies_study_create",
        request={"multipart/related": OpenApiTypes.BINARY},
        responses={
            (200, DicomJSONRenderer.media_type): OpenApiResponse(OpenApiTypes.OBJECT, description="Every instance was "
                                                                 "filed (or had been)."),
            (202, DicomJSONRenderer.media_type): OpenApiResponse(
                OpenApiTypes.OBJECT, description="Some were refused; one of another study with FailureReason C409."),
            (409, DicomJSONRenderer.media_type): OpenApiResponse(OpenApiTypes.OBJECT,
                                                                 description="Every instance was refused."),
            400: OpenApiResponse(description="The study UID is not a DICOM UID, or the body is not what its "
                                             "Content-Type says."),
            413: OpenApiResponse(description="The body is larger than KIDNEYWEB_DICOMWEB_MAX_BYTES."),
            415: OpenApiResponse(description="Not multipart/related with type application/dicom."),
            503: OpenApiResponse(description="No diagnosis model is active: send the instances again later."),
        },
        description="As `POST /api/v1/dicomweb/studies`, for a sender that stores into a named study (as "
        "`dicomweb-client`'s `store_instances(..., study_instance_uid=...)` and some routers do): an instance whose "
        "StudyInstanceUID (0020,000D) is another study's is refused with FailureReason C409, the others are filed.",
    )
    def post(self, request: Request, study_uid: str = "") -> Response:
        return super().post(request, study_uid)
