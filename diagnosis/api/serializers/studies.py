"""A patient's DICOM studies summed up (selectors.patient_studies), as the patient's page shows them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from ...selectors import StudySummary


class LookFirstSerializer(serializers.Serializer):
    scan = serializers.IntegerField()
    url = serializers.CharField(help_text="the scan in the API")
    label = serializers.CharField()
    confidence = serializers.FloatField()


class StudySummarySerializer(serializers.Serializer):
    study_uid = serializers.CharField(help_text="StudyInstanceUID")
    accession_number = serializers.CharField()
    study_date = serializers.DateField(allow_null=True, help_text="as the scanner's header gave it")
    study_time = serializers.TimeField(allow_null=True)
    description = serializers.CharField(help_text="StudyDescription")
    first_uploaded = serializers.DateTimeField(help_text="when its first slice was stored here")
    slices = serializers.IntegerField(help_text="its slices on record (withdrawn ones left out)")
    ai_labels = serializers.SerializerMethodField(help_text="slices per label the model vouches for, most serious "
                                                            "first")
    needs_review = serializers.IntegerField(help_text="slices whose diagnosis failed, is out of scope or uncertain")
    in_progress = serializers.IntegerField(help_text="slices still queued or being diagnosed")
    reviewed = serializers.IntegerField()
    review_labels = serializers.SerializerMethodField(help_text="slices per label of their current review, most "
                                                                "serious first")
    look_first = serializers.SerializerMethodField(
        help_text="the slice the AI read with its most serious label other than Normal, most confidently; null when "
                  "none")

    # The (label, count) pairs as an object, in their order (most serious first), which JSON objects keep.
    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_ai_labels(self, study: StudySummary) -> dict[str, int]:
        return dict(study.ai_labels)

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_review_labels(self, study: StudySummary) -> dict[str, int]:
        return dict(study.review_labels)

    @extend_schema_field(LookFirstSerializer(allow_null=True))
    def get_look_first(self, study: StudySummary) -> dict[str, Any] | None:
        scan = study.most_serious
        if scan is None:
            return None
        prediction = scan.latest_prediction
        return {"scan": scan.pk, "url": reverse("api:scan-detail", kwargs={"pk": scan.pk},
                                                request=self.context.get("request")),
                "label": prediction.label, "confidence": prediction.confidence}
