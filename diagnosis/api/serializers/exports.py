"""A patient's whole-record export, built by the worker: where it stands and where to download it."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from ...models import RecordExport


class RecordExportSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(
        choices=RecordExport.Status.choices, read_only=True,
        help_text="queued, running (being built), done (download it), failed (error says why; ask again), "
                  "expired (its file was deleted KIDNEYWEB_RECORD_EXPORT_KEEP_HOURS after it was built; ask again).")
    requested_by = serializers.SerializerMethodField()
    scans = serializers.IntegerField(read_only=True, help_text="Scans in it, once built (withdrawn ones are left out).")
    size = serializers.IntegerField(read_only=True, help_text="Bytes of the ZIP, once built.")
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True,
                                           help_text="When its file is deleted; null until it is built.")
    url = serializers.SerializerMethodField(help_text="This export: poll it until status is done or failed.")
    download_url = serializers.SerializerMethodField(
        help_text="The ZIP (application/zip), while status is done; null otherwise. Each download is recorded in "
                  "the patient's access log.")

    class Meta:
        model = RecordExport
        fields = ["id", "patient", "status", "requested_at", "requested_by", "started_at", "finished_at", "scans",
                  "size", "error", "expires_at", "url", "download_url"]
        read_only_fields = fields

    def get_requested_by(self, export: RecordExport) -> str:
        return export.requested_by.get_username()

    def get_url(self, export: RecordExport) -> str:
        return reverse("api:record-export-detail", args=[export.pk])

    def get_download_url(self, export: RecordExport) -> str | None:
        if export.status != RecordExport.Status.DONE:
            return None
        return reverse("api:record-export-download", args=[export.pk])
