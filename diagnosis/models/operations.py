"""The models that serve predictions, the workers that run them, the notifications they send, and the alerts
raised when a model does worse on an organization's patients than its card promised, or is sent more images
unlike its training data than its card expects."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ModelVersion(models.Model):
    """A trained classifier on disk, identified by its SHA-256; exactly one is active at a time."""

    name = models.CharField(max_length=100, unique=True)
    path = models.CharField(
        max_length=500,
        help_text="The .keras file; relative paths are relative to the project directory.",
    )
    sha256 = models.CharField("SHA-256", max_length=64)
    class_names = models.JSONField(default=list)
    metrics = models.JSONField(default=dict, blank=True)
    card = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    is_active = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=Q(is_active=True),
                name="only_one_active_model_version",
                violation_error_message="Only one model version can be active.",
            ),
        ]

    def __str__(self) -> str:
        return self.name + (" (active)" if self.is_active else "")


# Extension by detected content, never by the client's file name.


class PerformanceAlert(models.Model):
    """A stretch of time during which a model version, on an organization's reviewed slices, fell below its card
    on some share (selectors.performance): raised by the review that tipped it, cleared by the one that brought
    it back. At most one is open per organization and version."""

    organization = models.ForeignKey("diagnosis.Organization", on_delete=models.CASCADE, related_name="performance_alerts")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="performance_alerts")
    raised_at = models.DateTimeField(default=timezone.now)
    measures = models.JSONField(default=list, help_text="The names of the shares below the card, as last seen.")
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "model_version"], condition=Q(cleared_at__isnull=True),
                                    name="one_open_performance_alert"),
        ]

    def __str__(self) -> str:
        return f"{self.model_version} below its card since {self.raised_at:%Y-%m-%d %H:%M}"


class InputsAlert(models.Model):
    """A stretch of time during which the active model version's out-of-scope share in an organization's newest
    weeks was above what its card expects of slices like its training data (selectors.performance.InputsInUse):
    raised and cleared by the scheduled judgement (services.inputs_alerts_judge), since time passing alone moves
    the weeks counted. At most one is open per organization and version."""

    class Ended(models.TextChoices):
        USUAL = "usual", "Back within what its card expects"
        TOO_FEW = "too_few", "Too few recent results to judge"
        NOT_ACTIVE = "not_active", "No longer the active version"

    organization = models.ForeignKey("diagnosis.Organization", on_delete=models.CASCADE, related_name="inputs_alerts")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="inputs_alerts")
    raised_at = models.DateTimeField(default=timezone.now)
    out_of_scope = models.PositiveIntegerField(help_text="Out-of-scope results in the weeks counted, as last judged.")
    diagnosed = models.PositiveIntegerField(help_text="Finished results in the weeks counted, as last judged.")
    cleared_at = models.DateTimeField(null=True, blank=True)
    ended = models.CharField(max_length=16, choices=Ended.choices, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "model_version"], condition=Q(cleared_at__isnull=True),
                                    name="one_open_inputs_alert"),
        ]

    def __str__(self) -> str:
        return f"{self.model_version}: unusual uploads since {self.raised_at:%Y-%m-%d %H:%M}"


class WorkerHeartbeat(models.Model):
    """When a background worker last showed it was alive (its scheduled sweep ran), for /healthz."""

    name = models.CharField(max_length=64, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} seen {self.seen_at:%Y-%m-%d %H:%M:%S}"


class OutboundDelivery(models.Model):
    """Something sent to an organization's system by a Celery task that retries: where it went and how it went."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    url = models.CharField(max_length=500)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)
    resent_at = models.DateTimeField(null=True, blank=True)  # by the sweep for tasks the broker lost
    # An administrator sent a failed one again (the receiver was down for longer than the retries):
    # its attempts and its day before giving up count from then.
    sent_again_at = models.DateTimeField(null=True, blank=True)
    sent_again_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")

    class Meta:
        abstract = True


class WebhookDelivery(OutboundDelivery):
    """One notification to an organization's system: what was sent where, and whether it arrived."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)  # receivers drop repeats by it
    organization = models.ForeignKey("diagnosis.Organization", on_delete=models.CASCADE, related_name="webhook_deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="webhook_org_created_idx")]

    def __str__(self) -> str:
        return f"{self.event} to {self.url} ({self.status})"


class Hl7Delivery(OutboundDelivery):
    """One change of a scan's result sent to the organization's record system as an HL7 v2 ORU^R01 message over
    MLLP (services.hl7_feed). The message is built as it leaves, from the scan as it is then, so a retry never sends
    a state the scan has moved on from; it is kept as sent, with the receiver's acknowledgement."""

    organization = models.ForeignKey("diagnosis.Organization", on_delete=models.CASCADE, related_name="hl7_deliveries")
    scan = models.ForeignKey("diagnosis.Scan", on_delete=models.CASCADE, related_name="hl7_deliveries")
    event = models.CharField(max_length=40, help_text="What changed: the notification event of the same change.")
    control_id = models.CharField("message control id", max_length=20, blank=True)
    message = models.TextField(blank=True, help_text="The message as last sent (ER7).")
    ack_code = models.CharField("acknowledgement code", max_length=2, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="hl7_org_created_idx")]

    def __str__(self) -> str:
        return f"HL7 {self.event} of scan {self.scan_id} to {self.url} ({self.status})"


class PacsDelivery(OutboundDelivery):
    """One AI result sent to the organization's archive (PACS) as a DICOM capture, or as a structured report where
    the organization sends those too (DICOMweb STOW-RS or C-STORE): which result, as which instance, and whether the
    archive stored it. Or a rejection note (IHE IOCM) that asks the archive to hide the captures (and reports) it was
    sent of a scan: withdrawn as entered in error, replaced by new ones when what they say of the patient changed
    (details corrected, records merged), or of a patient whose data was erased (that note outlives the scan, so it
    keeps the study as the captures were filed in it, ``filed_in``)."""

    class Kind(models.TextChoices):
        CAPTURE = "capture", "AI result"
        REPORT = "report", "AI result report (SR)"
        REJECTION = "rejection", "Rejection note"

    # The kinds that carry a result, each in its own form: a capture, and the structured report where it is sent.
    RESULTS = (Kind.CAPTURE, Kind.REPORT)

    organization = models.ForeignKey("diagnosis.Organization", on_delete=models.CASCADE, related_name="pacs_deliveries")
    # Empty only for the note of an erasure, made as the scan was deleted.
    scan = models.ForeignKey("diagnosis.Scan", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="pacs_deliveries")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CAPTURE)
    # The result a capture shows; empty for a rejection note.
    prediction = models.ForeignKey("diagnosis.Prediction", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="pacs_deliveries")
    # The clinician's reading the capture shows; empty: the AI result alone.
    review = models.ForeignKey("diagnosis.Review", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="pacs_deliveries")
    generation = models.PositiveSmallIntegerField(default=0, help_text="The scan's capture generation when queued.")
    sop_instance_uid = models.CharField("instance UID", max_length=64, blank=True)
    # A rejection note's withdrawal (none: the captures were replaced), why it rejects (its Key Object Description),
    # and what: the captures of the scan's generation sent to the archive, as [{"series": UID, "instance": UID}].
    withdrawal = models.ForeignKey("diagnosis.ScanWithdrawal", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="pacs_deliveries")
    description = models.TextField(blank=True)
    rejected = models.JSONField(default=list, blank=True)
    # The patient as a capture named them when it left (PatientName, PatientID, PatientBirthDate, PatientSex), and
    # as a rejection note names them: where the captures it rejects are filed, though the record changed since.
    filed_as = models.JSONField(default=list, blank=True)
    # The note of an erasure: the erasure, and the study the captures it rejects were filed in, as they were sent
    # (dicom_rejection.FiledStudy), since the scan that said so is deleted. Emptied, with ``filed_as``, once the
    # archive stored the note: kidneyweb keeps nothing of the patient then.
    erasure = models.ForeignKey("diagnosis.PatientErasure", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="pacs_rejections")
    filed_in = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="pacs_org_created_idx")]
        # One capture (and one report) per result and per review of it, so one finishing twice (a repeated task) is
        # sent once; one rejection note per generation of them. Each again after a restoral or a replacement, as new
        # instances.
        constraints = [
            models.UniqueConstraint(fields=["prediction", "generation", "kind"],
                                    condition=Q(review=None, kind__in=["capture", "report"]), name="pacs_result_once"),
            models.UniqueConstraint(fields=["review", "generation", "kind"], name="pacs_review_once"),
            models.UniqueConstraint(fields=["scan", "generation"], condition=Q(kind="rejection"),
                                    name="pacs_rejection_once"),
            models.CheckConstraint(condition=Q(kind__in=["capture", "report"], prediction__isnull=False)
                                   | Q(kind="rejection", prediction__isnull=True), name="pacs_delivery_has_subject"),
            models.CheckConstraint(condition=Q(scan__isnull=False) | Q(kind="rejection", erasure__isnull=False),
                                   name="pacs_delivery_of_a_scan"),
        ]

    def __str__(self) -> str:
        subject = f"scan {self.scan_id}" if self.scan_id else f"an erased record (erasure {self.erasure_id})"
        return f"{self.get_kind_display().lower()} of {subject} to {self.url} ({self.status})"


class DicomStoreRefusal(models.Model):
    """An instance the hospital's archive sent (DICOMweb store) that was refused, kept so that an administrator sees
    what the archive was told: often a patient to register before the archive sends it again. Resolved once the
    same instance is stored."""

    organization = models.ForeignKey("diagnosis.Organization", on_delete=models.CASCADE,
                                     related_name="dicom_store_refusals")
    refused_at = models.DateTimeField(default=timezone.now, editable=False)
    sent_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    sop_instance_uid = models.CharField(max_length=64, blank=True)
    patient_id = models.CharField(max_length=64, blank=True, help_text="As the instance's header named it.")
    failure_code = models.PositiveIntegerField()
    reason = models.CharField(max_length=300)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_as = models.ForeignKey("diagnosis.Scan", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")

    class Meta:
        ordering = ["-refused_at", "-id"]
        indexes = [models.Index(fields=["organization", "-refused_at"], name="dicom_refusal_org_idx"),
                   models.Index(fields=["organization", "sop_instance_uid"], name="dicom_refusal_uid_idx")]

    def __str__(self) -> str:
        return f"{self.sop_instance_uid or 'an instance'} refused {self.refused_at:%Y-%m-%d %H:%M}"
