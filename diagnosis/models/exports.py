"""A patient's whole record exported as one ZIP (a subject access request, a move to another hospital), built by a
worker: a record of thousands of slices takes minutes, longer than a web request may last."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


def record_export_upload_to(instance: "RecordExport", filename: str) -> str:
    # A random name: the file is patient data, and its name must not say whose.
    return f"exports/{uuid.uuid4().hex}.zip"


class RecordExport(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Being built"
        DONE = "done", "Ready"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    # Asked for and not built yet: queued, or being built.
    PENDING = (Status.QUEUED, Status.RUNNING)

    organization = models.ForeignKey("diagnosis.Organization", on_delete=models.CASCADE,
                                     related_name="record_exports")
    # Deleted with the record when it is erased (its file with the erasure's).
    patient = models.ForeignKey("diagnosis.Patient", on_delete=models.CASCADE, related_name="record_exports")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now, editable=False)
    # The site's address as the request came in: the PDF reports and FHIR Bundles link to it.
    base_url = models.CharField(max_length=300)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    file = models.FileField(upload_to=record_export_upload_to, blank=True)
    size = models.PositiveBigIntegerField(default=0, help_text="Bytes of the ZIP.")
    scans = models.PositiveIntegerField(default=0, help_text="Scans in it (withdrawn ones are left out).")
    error = models.CharField(max_length=300, blank=True)
    # When the file is deleted (a copy of patient data kept no longer than it takes to hand it over).
    expires_at = models.DateTimeField(null=True, blank=True)
    # When the sweep queued it again after the broker lost its task.
    resent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["patient", "-requested_at"], name="record_export_patient_idx"),
                   models.Index(fields=["status", "expires_at"], name="record_export_expiry_idx")]

    def __str__(self) -> str:
        return f"Export {self.pk} of patient {self.patient_id} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status in self.PENDING
