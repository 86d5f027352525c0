"""The record of a patient's data erased (consent withdrawn, the end of a pilot): who erased what, when and why.

The patient's rows, scans, images, results and reviews are deleted; this record keeps nothing that names the
person. It answers an auditor ("was the erasure done, by whom?"), keeps the access log's entries of the record
accountable, and lets a hospital system that asks for a former record by its id hear that it was erased.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.utils import timezone


@dataclass(frozen=True)
class ArchiveNotes:
    """How the archive was asked to delete the erased captures it was sent: notes, and results they name."""

    total: int
    stored: int
    failed: int
    results: int
    # When kidneyweb stopped asking (an administrator, or KIDNEYWEB_ERASURE_ARCHIVE_DAYS after the erasure) and
    # forgot the patient's details the unstored notes kept; who ("" when it was the time limit).
    given_up_at: datetime.datetime | None = None
    given_up_by: str = ""


class PatientErasure(models.Model):
    organization = models.ForeignKey("diagnosis.Organization", on_delete=models.PROTECT, related_name="erasures")
    # The record's id (ids are never reused), and those of records merged into it, erased with it.
    patient_id = models.PositiveBigIntegerField("former patient id", unique=True)
    merged_ids = models.JSONField(default=list, blank=True,
                                  help_text="Ids of the records merged into it, erased with it.")
    erased_at = models.DateTimeField(default=timezone.now, editable=False)
    # The account may be gone where the erasure was carried into a restored backup made before it was created;
    # its name stays.
    erased_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True,
                                  blank=True)
    erased_by_name = models.CharField("erased by", max_length=150)
    reason = models.CharField(max_length=200)
    scans = models.PositiveIntegerField(default=0, help_text="Scans deleted, with their results and reviews.")
    reviews = models.PositiveIntegerField(default=0)
    # Results the hospital's archive had stored: it is asked to delete them (pacs_rejections), and the notification
    # names them by UID.
    archive_results = models.PositiveIntegerField(default=0)
    # Storage names (random; nothing of the patient) still to delete once the erasure is committed, and when
    # that was done (the list is emptied then): the worker deletes them, and its sweep tries again for any left.
    files = models.JSONField(default=list, blank=True)
    files_removed_at = models.DateTimeField(null=True, blank=True)
    # Asking the archive stopped before it stored every note: the notes' copy of the patient's details is
    # forgotten then, and the archive may keep those results (pacs_rejections.pacs_erasure_give_up).
    archive_given_up_at = models.DateTimeField(null=True, blank=True)
    archive_given_up_by = models.CharField(max_length=150, blank=True,
                                           help_text="Who stopped asking; empty: the time limit did.")

    class Meta:
        ordering = ["-erased_at", "-id"]
        indexes = [models.Index(fields=["organization", "-erased_at"], name="erasure_org_erased_idx")]

    def __str__(self) -> str:
        return f"Record {self.patient_id} erased {self.erased_at:%Y-%m-%d %H:%M}"

    @property
    def archive_notes(self) -> ArchiveNotes:
        """From ``pacs_rejections`` (prefetched by ``selectors.erasures``)."""
        notes = list(self.pacs_rejections.all())
        return ArchiveNotes(total=len(notes), stored=sum(note.status == "delivered" for note in notes),
                            failed=sum(note.status == "failed" for note in notes),
                            results=sum(len(note.rejected) for note in notes),
                            given_up_at=self.archive_given_up_at, given_up_by=self.archive_given_up_by)
