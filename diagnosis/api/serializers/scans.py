"""Scans and their results, reviews, withdrawals and archive copies; the worklist; reviewers' agreement with the AI."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ... import selectors
from ...models import (OutboundDelivery, PacsDelivery, Patient, Prediction, Review, Scan)
from ...validators import date_range_error
from .patients import OrganizationPatientField


class PredictionSerializer(serializers.ModelSerializer):
    model_version = serializers.CharField(source="model_version.name", read_only=True)
    probabilities = serializers.DictField(
        child=serializers.FloatField(), read_only=True, help_text="Probability of every class; they sum to 1."
    )
    confidence = serializers.FloatField(read_only=True, allow_null=True, help_text="The top class probability.")
    needs_review = serializers.SerializerMethodField(
        help_text="True when the result must not be read as a diagnosis: below the confidence threshold, "
        "out of scope, or failed."
    )
    needs_review_reason = serializers.SerializerMethodField()
    confidence_threshold = serializers.SerializerMethodField()
    heatmap_url = serializers.SerializerMethodField(
        help_text="PNG overlay (transparent where cold) of where the model looked for the predicted class; "
        "null until the result is done or when no map could be computed. Add ?class=NAME for another class."
    )

    class Meta:
        model = Prediction
        fields = [
            "id",
            "status",
            "label",
            "probabilities",
            "out_of_scope",
            "out_of_scope_reason",
            "confidence",
            "needs_review",
            "needs_review_reason",
            "confidence_threshold",
            "model_version",
            "failure_reason",
            "queued_at",
            "started_at",
            "finished_at",
            "inference_ms",
            "heatmap_url",
        ]
        read_only_fields = fields

    def get_needs_review(self, prediction: Prediction) -> bool:
        return selectors.prediction_uncertainty(prediction).needs_review

    def get_needs_review_reason(self, prediction: Prediction) -> str:
        return selectors.prediction_uncertainty(prediction).reason

    def get_confidence_threshold(self, prediction: Prediction) -> float:
        return selectors.confidence_threshold(prediction.model_version)

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_heatmap_url(self, prediction: Prediction) -> str | None:
        if prediction.status != Prediction.Status.DONE or not prediction.heatmap:
            return None
        return _absolute(self.context, reverse("api:scan-heatmap", kwargs={"pk": prediction.scan_id}))


def _absolute(context: dict[str, Any], url: str) -> str:
    request = context.get("request")
    return request.build_absolute_uri(url) if request else url


class ReviewSerializer(serializers.ModelSerializer):
    reviewed_by = serializers.CharField(source="reviewed_by.username", read_only=True)
    ai_label = serializers.CharField(source="prediction.label", read_only=True, help_text="The AI label reviewed.")

    class Meta:
        model = Review
        fields = ["id", "label", "comment", "agrees_with_ai", "ai_label", "prediction", "reviewed_by", "reviewed_at"]
        read_only_fields = fields


class ReviewCreateSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=64, help_text="The true class in the reviewer's judgement.")
    comment = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=True)
    prediction = serializers.IntegerField(
        required=False, source="prediction_id",
        help_text="The id of the AI result the reviewer judged. If a newer result has arrived since, the review is "
        "refused with 400, so that a confirmation never attaches to a result nobody saw.",
    )


class WithdrawalSerializer(serializers.Serializer):
    at = serializers.DateTimeField(source="withdrawn_at", read_only=True)
    by = serializers.CharField(source="withdrawn_by.username", read_only=True)
    reason = serializers.CharField(source="withdrawal_reason", read_only=True)


class WithdrawSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, help_text="Why the scan is withdrawn, e.g. \"uploaded for the wrong patient\".")


class RestoreSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, help_text="Why the withdrawal is undone, e.g. \"withdrawn by mistake\".")


def _archive(scan: Scan) -> dict[str, Any] | None:
    sent = selectors.pacs_sent_of(prediction=scan.latest_prediction)
    delivery, report = sent.get(PacsDelivery.Kind.CAPTURE), sent.get(PacsDelivery.Kind.REPORT)
    if delivery is None:
        return None
    return {**_sent(delivery), "reviewed": delivery.review_id is not None, "report": _sent(report) if report else None}


def _sent(delivery: PacsDelivery) -> dict[str, Any]:
    return {"status": delivery.status, "instance_uid": delivery.sop_instance_uid,
            "stored_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
            "error": delivery.last_error}


def _rejection(scan: Scan) -> dict[str, Any] | None:
    note = selectors.pacs_rejection_of(scan=scan)
    if note is None:
        return None
    return {"status": note.status, "instance_uid": note.sop_instance_uid,
            "rejected_instance_uids": [capture["instance"] for capture in note.rejected],
            "stored_at": note.delivered_at.isoformat() if note.delivered_at else None, "error": note.last_error}


class ScanArchiveRejectionSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=OutboundDelivery.Status.choices,
                                     help_text="delivered: the archive stored the note; failed: it did not (see error)")
    instance_uid = serializers.CharField(help_text="The SOPInstanceUID of the note (a Key Object Selection document)")
    rejected_instance_uids = serializers.ListField(
        child=serializers.CharField(), help_text="The AI result captures it rejects: those the archive was sent")
    stored_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(help_text="Why it is not stored (yet), as the archive answered; \"\" once stored")


class ScanArchiveReportSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=OutboundDelivery.Status.choices,
                                     help_text="delivered: the archive stored it; failed: it did not (see error)")
    instance_uid = serializers.CharField(help_text="The SOPInstanceUID the structured report was sent as")
    stored_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(help_text="Why it is not stored (yet), as the archive answered; \"\" once stored")


class ScanArchiveSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=OutboundDelivery.Status.choices,
                                     help_text="delivered: the archive stored it; failed: it did not (see error)")
    instance_uid = serializers.CharField(help_text="The SOPInstanceUID the result was sent as")
    reviewed = serializers.BooleanField(help_text="Whether the capture sent states the clinician's review of the result")
    stored_at = serializers.DateTimeField(allow_null=True)
    report = ScanArchiveReportSerializer(
        allow_null=True, help_text="The same result (and review) sent as a structured report (DICOM SR), where the "
                                   "organization sends those; null otherwise")
    error = serializers.CharField(help_text="Why it is not stored (yet), as the archive answered; \"\" once stored")


class DicomIdentifiersSerializer(serializers.Serializer):
    study_uid = serializers.CharField(help_text="StudyInstanceUID (0020,000D)")
    series_uid = serializers.CharField(help_text="SeriesInstanceUID (0020,000E)")
    instance_uid = serializers.CharField(help_text="SOPInstanceUID (0008,0018)")
    accession_number = serializers.CharField(help_text="AccessionNumber (0008,0050): the imaging order, as the RIS "
                                                       "numbers it")
    study_date = serializers.DateField(allow_null=True, help_text="StudyDate (0008,0020); null when the header had "
                                                                 "none or it could not be read")
    study_time = serializers.TimeField(allow_null=True, help_text="StudyTime (0008,0030), as the scanner wrote it")
    study_description = serializers.CharField(help_text="StudyDescription (0008,1030)")
    result_url = serializers.CharField(
        allow_null=True, help_text="The AI result as a DICOM Secondary Capture for the archive, in this study (409 "
                                   "until the diagnosis is done); null when the header named no study")
    report_url = serializers.CharField(
        allow_null=True, help_text="The AI result as a DICOM Structured Report (TID 1500, IHE AIR) for the archive, "
                                   "in this study (409 until the diagnosis is done); null when the header named no "
                                   "study or no instance UID")
    archive = ScanArchiveSerializer(
        allow_null=True, help_text="How the latest result (or the newest review of it) was sent to the organization's "
                                   "archive (PACS); null when it was not (no archive set, no study, or not done)")
    archive_rejection = ScanArchiveRejectionSerializer(
        allow_null=True, help_text="For a withdrawn scan, the rejection note (IHE IOCM, \"Rejected for Patient Safety "
                                   "Reasons\") sent to the archive for the AI results it was sent of it; null when the "
                                   "scan is not withdrawn or none was needed")


class ScanSerializer(serializers.ModelSerializer):
    patient = serializers.PrimaryKeyRelatedField(read_only=True)
    uploaded_by = serializers.CharField(source="uploaded_by.username", read_only=True)
    image_url = serializers.SerializerMethodField()
    report_url = serializers.SerializerMethodField(help_text="The PDF report of this scan.")
    fhir_url = serializers.SerializerMethodField(help_text="This scan's result as a FHIR R4 Bundle.")
    hl7_url = serializers.SerializerMethodField(help_text="This scan's result as an HL7 v2.5.1 ORU^R01 message.")
    prediction = serializers.SerializerMethodField(help_text="The latest prediction of this scan.")
    review = serializers.SerializerMethodField(help_text="The current (newest) review of this scan, or null.")
    withdrawn = serializers.SerializerMethodField(
        help_text="Null, or who withdrew the scan as entered in error, when and why: it is then kept for the record "
        "but takes no new diagnosis or review, and is out of the worklist.")
    refiled_from = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="Null, or the id of the withdrawn scan of another patient this slice was filed "
        "from (POST refile): this scan was diagnosed afresh, and no review moved with it.")
    refiled_as = serializers.SerializerMethodField(
        help_text="The ids of the scans this slice was filed as for other patients (POST refile), oldest first; "
        "at most one of them is not withdrawn.")
    dicom = serializers.SerializerMethodField(
        help_text="Null for a PNG or JPEG upload; for a DICOM slice, where it is in the hospital's archive (its "
        "UIDs, \"\" where its header had none), its study's accession number, date, time and description, and "
        "where its AI result is fetched as DICOM for the archive.")

    class Meta:
        model = Scan
        fields = [
            "id",
            "patient",
            "original_filename",
            "format",
            "width",
            "height",
            "sha256",
            "dicom",
            "uploaded_by",
            "uploaded_at",
            "image_url",
            "report_url",
            "fhir_url",
            "hl7_url",
            "prediction",
            "review",
            "withdrawn",
            "refiled_from",
            "refiled_as",
        ]
        read_only_fields = fields

    @extend_schema_field(WithdrawalSerializer(allow_null=True))
    def get_withdrawn(self, scan: Scan) -> dict[str, Any] | None:
        return WithdrawalSerializer(scan).data if scan.is_withdrawn else None

    @extend_schema_field(DicomIdentifiersSerializer(allow_null=True))
    def get_dicom(self, scan: Scan) -> dict[str, str] | None:
        if not (scan.dicom_study_uid or scan.dicom_series_uid or scan.dicom_instance_uid):
            return None
        return {"study_uid": scan.dicom_study_uid, "series_uid": scan.dicom_series_uid,
                "instance_uid": scan.dicom_instance_uid, "accession_number": scan.dicom_accession_number,
                "study_date": scan.dicom_study_date.isoformat() if scan.dicom_study_date else None,
                "study_time": scan.dicom_study_time.isoformat() if scan.dicom_study_time else None,
                "study_description": scan.dicom_study_description,
                "result_url": _absolute(self.context, reverse("api:scan-dicom", kwargs={"pk": scan.pk}))
                if scan.dicom_study_uid else None,
                "report_url": _absolute(self.context, reverse("api:scan-dicom-sr", kwargs={"pk": scan.pk}))
                if scan.dicom_study_uid and scan.dicom_series_uid and scan.dicom_instance_uid else None,
                "archive": _archive(scan) if scan.dicom_study_uid else None,
                "archive_rejection": _rejection(scan) if scan.dicom_study_uid else None}

    def get_refiled_as(self, scan: Scan) -> list[int]:
        return [copy.pk for copy in scan.refiled_copies.all()]

    def get_image_url(self, scan: Scan) -> str:
        return _absolute(self.context, reverse("api:scan-image", kwargs={"pk": scan.pk}))

    def get_report_url(self, scan: Scan) -> str:
        return _absolute(self.context, reverse("api:scan-report", kwargs={"pk": scan.pk}))

    def get_fhir_url(self, scan: Scan) -> str:
        return _absolute(self.context, reverse("api:scan-fhir", kwargs={"pk": scan.pk}))

    def get_hl7_url(self, scan: Scan) -> str:
        return _absolute(self.context, reverse("api:scan-hl7", kwargs={"pk": scan.pk}))

    @extend_schema_field(PredictionSerializer(allow_null=True))
    def get_prediction(self, scan: Scan) -> dict[str, Any] | None:
        prediction = scan.latest_prediction
        return PredictionSerializer(prediction, context=self.context).data if prediction else None

    @extend_schema_field(ReviewSerializer(allow_null=True))
    def get_review(self, scan: Scan) -> dict[str, Any] | None:
        review = scan.current_review
        return ReviewSerializer(review, context=self.context).data if review else None


class WorklistScanSerializer(ScanSerializer):
    patient_name = serializers.CharField(source="patient.name", read_only=True)
    patient_mrn = serializers.CharField(source="patient.mrn", read_only=True)
    urgency = serializers.IntegerField(
        read_only=True, help_text="0 needs review, 1 Tumor, 2 Stone, 3 Cyst, 4 Normal, 5 another label, 6 in progress."
    )
    needs_review = serializers.BooleanField(read_only=True)
    waiting_seconds = serializers.SerializerMethodField(help_text="Seconds since the upload.")
    opened_by = serializers.CharField(
        read_only=True, allow_null=True, help_text="Null, or the username of another member who opened the scan on the "
        "web in the last 10 minutes and may be reading it now (a system reading through the API is not counted).")
    opened_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text="When they opened it.")

    class Meta(ScanSerializer.Meta):
        fields = ["urgency", "needs_review", "waiting_seconds", "opened_by", "opened_at", "patient_name", "patient_mrn",
                  *ScanSerializer.Meta.fields]
        read_only_fields = fields

    def get_waiting_seconds(self, scan: Scan) -> int:
        return max(0, int((timezone.now() - scan.uploaded_at).total_seconds()))


class WorklistFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=list(selectors.WORKLIST_STATUSES), required=False)
    label = serializers.CharField(required=False, max_length=64)
    uploaded_from = serializers.DateField(required=False)
    uploaded_to = serializers.DateField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        error = date_range_error(start=attrs.get("uploaded_from"), end=attrs.get("uploaded_to"))
        if error:
            raise serializers.ValidationError({"uploaded_to": [error]})
        return attrs


class ScanCreateSerializer(serializers.Serializer):
    patient = OrganizationPatientField(queryset=Patient.objects.all(), help_text="Id of the patient.")
    # Not ImageField: the service checks the content itself and explains each refusal.
    image = serializers.FileField(allow_empty_file=True, help_text="A PNG, JPEG or DICOM (one slice, uncompressed or JPEG, JPEG-LS, JPEG 2000 or RLE compressed) CT slice.")


class RefileSerializer(serializers.Serializer):
    patient = OrganizationPatientField(queryset=Patient.objects.all(), help_text="Id of the patient the slice was meant for.")
    reason = serializers.CharField(
        max_length=200, required=False, default="",
        help_text="Why the scan is withdrawn, e.g. \"uploaded for the wrong patient\": needed unless it is withdrawn "
        "already, when its withdrawal says why.")


class ClassAgreementSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="the class the AI predicted")
    reviewed = serializers.IntegerField()
    agreed = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True, help_text="agreed / reviewed; null before any review")
    corrected_to = serializers.DictField(child=serializers.IntegerField(), help_text="what reviewers said instead")


class AgreementSerializer(serializers.Serializer):
    reviewed = serializers.IntegerField()
    agreed = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)
    classes = ClassAgreementSerializer(many=True)
