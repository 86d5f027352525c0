"""Patients and their records: details, merges, erasures, the use of their slices for training and the access log."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers

from ... import selectors
from ...models import (Patient, PatientAccess, PatientErasure, PatientMerge)
from ...validators import date_range_error


class PatientSerializer(serializers.ModelSerializer):
    merged_into = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True,
        help_text="Null for a record in use. Otherwise the id of the record of the same person this one was merged "
        "into: the patient's scans are there, and this record takes no upload or correction.")

    training_opt_out = serializers.BooleanField(
        read_only=True, help_text="The patient refused that their slices train the model: their reviewed slices "
        "stay out of training exports. Set with POST .../training-use/.")

    class Meta:
        model = Patient
        fields = ["id", "mrn", "name", "birth_date", "sex", "created_at", "merged_into", "training_opt_out"]
        read_only_fields = fields


class PatientCreatedSerializer(PatientSerializer):
    possible_duplicates = serializers.SerializerMethodField(
        help_text="Ids of records in use with the same birth date and a similar name: perhaps this person, "
        "registered before. The patient is registered all the same; an administrator can merge two records of "
        "one person.")

    class Meta(PatientSerializer.Meta):
        fields = [*PatientSerializer.Meta.fields, "possible_duplicates"]
        read_only_fields = fields

    def get_possible_duplicates(self, patient: Patient) -> list[int]:
        return [other.pk for other in selectors.patient_possible_duplicates(
            organization_id=patient.organization_id, name=patient.name, birth_date=patient.birth_date,
            exclude=patient)]


class PatientMergeSerializer(serializers.ModelSerializer):
    merged_by = serializers.CharField(source="merged_by.get_username", read_only=True)
    undone_by = serializers.CharField(source="undone_by.get_username", read_only=True, allow_null=True)
    scans = serializers.ListField(child=serializers.IntegerField(), read_only=True,
                                  help_text="Ids of the scans that moved to the record that stays.")

    class Meta:
        model = PatientMerge
        fields = ["id", "duplicate", "into", "scans", "merged_by", "merged_at", "reason", "undone_at", "undone_by",
                  "undo_reason"]
        read_only_fields = fields


class PatientMergeUndoSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, help_text="Why the merge is undone, e.g. \"two people with the "
                                   "same name and birth date\".")


class PatientAccessSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.get_username", read_only=True)
    patient = serializers.PrimaryKeyRelatedField(
        read_only=True, help_text="The record opened: this patient's, or a record since merged into it.")

    class Meta:
        model = PatientAccess
        fields = ["at", "user", "patient", "what", "scan", "channel"]


class AccessLogEntrySerializer(PatientAccessSerializer):
    patient = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The record opened; null once it was erased (see `erasure`).")
    patient_mrn = serializers.CharField(source="patient.mrn", read_only=True, allow_null=True)
    scan = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    erasure = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The erasure of the record opened, if it was erased since.")

    class Meta(PatientAccessSerializer.Meta):
        fields = ["id", "at", "user", "patient", "patient_mrn", "what", "scan", "channel", "erasure"]


class ErasureArchiveNotesSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Notes (IHE IOCM, \"Data Retention Policy Expired\") asking the "
                                     "archive to delete the AI result captures it was sent: one per scan and patient "
                                     "details they were filed under; 0 when it was sent none, or no archive was set.")
    stored = serializers.IntegerField(help_text="Of those, the ones the archive stored.")
    failed = serializers.IntegerField(help_text="Of those, the ones it did not: send them again (archive/), or give "
                                      "up (erasures/{id}/give-up-archive/).")
    results = serializers.IntegerField(help_text="AI result captures the notes name.")
    given_up_at = serializers.DateTimeField(allow_null=True, help_text="When kidneyweb stopped asking for the notes "
                                            "not stored, and forgot the patient's details they kept (null: it did "
                                            "not). The archive may keep those results.")
    given_up_by = serializers.CharField(help_text="Who gave up; empty when the time limit "
                                        "(KIDNEYWEB_ERASURE_ARCHIVE_DAYS after the erasure) did, or nobody did.")


class PatientErasureSerializer(serializers.ModelSerializer):
    patient = serializers.IntegerField(source="patient_id", read_only=True, help_text="The former record's id.")
    merged = serializers.ListField(source="merged_ids", child=serializers.IntegerField(), read_only=True,
                                   help_text="Ids of the records merged into it, erased with it.")
    erased_by = serializers.CharField(source="erased_by_name", read_only=True)
    files_removed = serializers.SerializerMethodField(help_text="Whether the images are deleted from storage yet.")
    archive_notes = ErasureArchiveNotesSerializer(read_only=True)

    class Meta:
        model = PatientErasure
        fields = ["id", "patient", "merged", "erased_at", "erased_by", "reason", "scans", "reviews", "archive_results",
                  "archive_notes", "files_removed"]

    def get_files_removed(self, erasure: PatientErasure) -> bool:
        return erasure.files_removed_at is not None


class TrainingUseSerializer(serializers.Serializer):
    allowed = serializers.BooleanField(help_text="false: the patient refuses (or withdrew consent) that their "
                                       "reviewed slices train the model; true: they allow it again.")


class PatientEraseSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, help_text="Why the record is erased, e.g. \"consent withdrawn on "
                                   "2026-12-01\". It is kept after the erasure: do not name the patient.")
    mrn = serializers.CharField(max_length=64, help_text="The record's MRN, as confirmation.")


class AccessLogFilterSerializer(serializers.Serializer):
    since = serializers.DateField(required=False, help_text="First day, included.")
    until = serializers.DateField(required=False, help_text="Last day, included.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        error = date_range_error(start=attrs.get("since"), end=attrs.get("until"))
        if error:
            raise serializers.ValidationError({"until": [error]})
        return attrs


class PatientCreateSerializer(serializers.Serializer):
    mrn = serializers.CharField(max_length=64, help_text="Medical record number, unique within your organization.")
    name = serializers.CharField(max_length=200)
    birth_date = serializers.DateField()
    sex = serializers.ChoiceField(choices=Patient.Sex.choices, default=Patient.Sex.UNKNOWN)


class PatientUpdateSerializer(PatientCreateSerializer):
    # No default on a correction: a PUT without sex keeps the stored one instead of resetting it to unknown.
    sex = serializers.ChoiceField(choices=Patient.Sex.choices, required=False,
                                  help_text="Left out: the stored value stays.")


class OrganizationPatientField(serializers.PrimaryKeyRelatedField):
    """Accepts only patients of the requesting user's organization; others read as nonexistent."""

    default_error_messages = {
        "does_not_exist": "No patient with id {pk_value} in your organization.",
    }

    def get_queryset(self) -> QuerySet[Patient]:
        return selectors.patient_list(user=self.context["request"].user, include_merged=True)


class PatientMergeCreateSerializer(serializers.Serializer):
    into = OrganizationPatientField(queryset=Patient.objects.all(),
                                    help_text="Id of the record of the same person that stays: the scans move there.")
    reason = serializers.CharField(max_length=200, help_text="Why, e.g. \"registered twice, in the emergency "
                                   "department\".")
