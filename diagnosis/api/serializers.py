from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import selectors
from ..models import Patient, Prediction, Scan


class PatientSerializer(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = ["id", "mrn", "name", "birth_date", "sex", "created_at"]
        read_only_fields = fields


class PatientCreateSerializer(serializers.Serializer):
    mrn = serializers.CharField(max_length=64, help_text="Medical record number, unique within your organization.")
    name = serializers.CharField(max_length=200)
    birth_date = serializers.DateField()
    sex = serializers.ChoiceField(choices=Patient.Sex.choices, default=Patient.Sex.UNKNOWN)


class PredictionSerializer(serializers.ModelSerializer):
    model_version = serializers.CharField(source="model_version.name", read_only=True)
    probabilities = serializers.DictField(
        child=serializers.FloatField(), read_only=True, help_text="Probability of every class; they sum to 1."
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
            "model_version",
            "failure_reason",
            "queued_at",
            "started_at",
            "finished_at",
            "inference_ms",
        ]
        read_only_fields = fields


class ScanSerializer(serializers.ModelSerializer):
    patient = serializers.PrimaryKeyRelatedField(read_only=True)
    uploaded_by = serializers.CharField(source="uploaded_by.username", read_only=True)
    image_url = serializers.SerializerMethodField()
    prediction = serializers.SerializerMethodField(help_text="The latest prediction of this scan.")

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
            "uploaded_by",
            "uploaded_at",
            "image_url",
            "prediction",
        ]
        read_only_fields = fields

    def get_image_url(self, scan: Scan) -> str:
        url = reverse("api:scan-image", kwargs={"pk": scan.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    @extend_schema_field(PredictionSerializer(allow_null=True))
    def get_prediction(self, scan: Scan) -> dict[str, Any] | None:
        prediction = scan.latest_prediction
        return PredictionSerializer(prediction, context=self.context).data if prediction else None


class OrganizationPatientField(serializers.PrimaryKeyRelatedField):
    """Accepts only patients of the requesting user's organization; others read as nonexistent."""

    default_error_messages = {
        "does_not_exist": "No patient with id {pk_value} in your organization.",
    }

    def get_queryset(self) -> QuerySet[Patient]:
        return selectors.patient_list(user=self.context["request"].user)


class ScanCreateSerializer(serializers.Serializer):
    patient = OrganizationPatientField(queryset=Patient.objects.all(), help_text="Id of the patient.")
    # Not ImageField: the service checks the content itself and explains each refusal.
    image = serializers.FileField(allow_empty_file=True, help_text="A PNG or JPEG CT slice.")
