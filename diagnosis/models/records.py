"""Patients, their scans, the predictions made for them and clinicians' reviews, and who opened them.

Clinical records are protected from cascading deletes: removing an organization, a patient or a
model version that others still point at fails instead of silently erasing history.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone

from .accounts import Organization
from .operations import ModelVersion


class Patient(models.Model):
    class Sex(models.TextChoices):
        FEMALE = "F", "Female"
        MALE = "M", "Male"
        OTHER = "O", "Other"
        UNKNOWN = "U", "Unknown"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="patients")
    mrn = models.CharField("MRN", max_length=64, help_text="Medical record number, unique within the organization.")
    name = models.CharField(max_length=200)
    birth_date = models.DateField()
    sex = models.CharField(max_length=1, choices=Sex.choices, default=Sex.UNKNOWN)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # The patient does not want their slices used to train the model (consent for secondary use refused or
    # withdrawn): their reviewed slices stay out of every training export, while their care goes on as before.
    training_opt_out = models.BooleanField(
        "refused AI training", default=False,
        help_text="The patient's reviewed slices are never used to train the model.")
    # A second record of one person (registered twice): its scans moved to this one, and it stays, read-only,
    # so that its MRN, corrections and access log still answer for what was done under it.
    merged_into = models.ForeignKey("self", on_delete=models.PROTECT, related_name="merged_records",
                                    null=True, blank=True,
                                    help_text="The record of the same person this duplicate was merged into.")

    class Meta:
        ordering = ["name", "mrn"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "mrn"], name="patient_mrn_unique_per_organization"),
        ]
        indexes = [
            models.Index(fields=["organization", "name"], name="patient_org_name_idx"),
            # Registrations look for a record of the same birth date first (a person registered twice).
            models.Index(fields=["organization", "birth_date"], name="patient_org_birth_date_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (MRN {self.mrn})"


class PatientChange(models.Model):
    """One correction of a patient's details: who changed which fields from what to what.

    MRNs and names identify patients on reports; a change to them must be traceable.
    """

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="changes")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="patient_changes")
    changed_at = models.DateTimeField(default=timezone.now, editable=False)
    before = models.JSONField(help_text="The changed fields' values before the correction.")
    after = models.JSONField(help_text="The same fields' values after it.")

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.patient} changed by {self.changed_by} at {self.changed_at:%Y-%m-%d %H:%M}"

    @property
    def fields(self) -> list[tuple[str, object, object]]:
        """(label, before, after) for each changed field, in the form's order."""
        labels = {"mrn": "MRN", "name": "Name", "birth_date": "Birth date", "sex": "Sex",
                  "training_opt_out": "Slices used for AI training"}

        def shown(key: str, value: object) -> object:
            if key == "training_opt_out":
                return "no (the patient refused)" if value else "yes"
            return Patient.Sex(value).label if key == "sex" and value in Patient.Sex.values else value

        return [(labels[key], shown(key, self.before.get(key)), shown(key, self.after.get(key)))
                for key in labels if key in self.after]


class PatientMerge(models.Model):
    """One merge of a duplicate record into the record of the same person, and, when it was a mistake, its
    undoing: who, when, why, and which scans moved (the ones an undoing moves back)."""

    duplicate = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="merges_away")
    into = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="merges_in")
    merged_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    merged_at = models.DateTimeField(default=timezone.now)
    reason = models.CharField(max_length=200)
    scans = models.JSONField(default=list, help_text="Ids of the scans that moved to the surviving record.")
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                  null=True, blank=True)
    undo_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-merged_at", "-id"]

    def __str__(self) -> str:
        return f"Patient {self.duplicate_id} merged into patient {self.into_id} at {self.merged_at:%Y-%m-%d %H:%M}"


class PatientDistinct(models.Model):
    """An administrator's finding that two records alike in birth date and name are two people: the pair is not
    suggested for merging again."""

    first = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    second = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    marked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["first", "second"], name="patient_distinct_once"),
            # Stored one way round (the smaller id first), so that one pair has one row.
            models.CheckConstraint(condition=models.Q(first__lt=models.F("second")), name="patient_distinct_ordered"),
        ]

    def __str__(self) -> str:
        return f"Patients {self.first_id} and {self.second_id} are two people"


class PatientAccess(models.Model):
    """Someone opened a patient's record, a scan, its image or its report: who, what, when, how.

    A privacy officer's question is "who looked at this patient?"; corrections alone do not answer it.
    """

    class What(models.TextChoices):
        PATIENT = "patient", "Patient record"
        SCAN = "scan", "Scan and result"
        IMAGE = "image", "Scan image"
        REPORT = "report", "PDF report"
        FHIR = "fhir", "FHIR export"
        DICOM = "dicom", "DICOM export"
        HL7 = "hl7", "HL7 v2 result message"
        EXPORT = "export", "Whole record export"

    class Channel(models.TextChoices):
        WEB = "web", "Web"
        API = "api", "API"

    # Empty once the record was erased: the entry stays, for who opened what and when, and names its erasure.
    patient = models.ForeignKey(Patient, on_delete=models.SET_NULL, related_name="accesses", null=True, blank=True)
    scan = models.ForeignKey("Scan", on_delete=models.SET_NULL, related_name="accesses", null=True, blank=True)
    erasure = models.ForeignKey("diagnosis.PatientErasure", on_delete=models.PROTECT, related_name="accesses",
                                null=True, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="patient_accesses")
    what = models.CharField(max_length=16, choices=What.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["patient", "-at"], name="access_patient_at_idx")]
        verbose_name_plural = "patient accesses"

    def __str__(self) -> str:
        record = self.patient if self.patient_id else "an erased record"
        return f"{self.user} opened {self.get_what_display().lower()} of {record} at {self.at:%Y-%m-%d %H:%M}"


FORMAT_EXTENSIONS = {"PNG": "png", "JPEG": "jpg"}


def scan_upload_to(instance: Scan, filename: str) -> str:
    # The client's name is discarded on purpose: it could hold "../", odd characters or patient data.
    extension = FORMAT_EXTENSIONS.get(instance.format, "bin")
    return f"scans/{instance.patient.organization_id}/{uuid.uuid4().hex}.{extension}"


class Scan(models.Model):
    class Format(models.TextChoices):
        PNG = "PNG", "PNG"
        JPEG = "JPEG", "JPEG"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="scans")
    image = models.FileField(upload_to=scan_upload_to, max_length=255)
    sha256 = models.CharField("SHA-256", max_length=64, db_index=True)
    original_filename = models.CharField(max_length=255, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=8, choices=Format.choices)
    # The slice is stored as a PNG without its DICOM header; the PatientID it named is kept so that filing it
    # for another patient is held to the same rule as its upload was.
    dicom_patient_id = models.CharField("DICOM patient ID", max_length=64, blank=True,
                                        help_text="The PatientID of the DICOM header the slice came with; empty "
                                        "for PNG and JPEG uploads and for anonymised slices.")
    # Where the slice is in the hospital's archive, so that its result can be linked to the study there (FHIR).
    dicom_study_uid = models.CharField("DICOM study instance UID", max_length=64, blank=True,
                                       help_text="The StudyInstanceUID of a DICOM slice; empty for PNG and JPEG.")
    dicom_series_uid = models.CharField("DICOM series instance UID", max_length=64, blank=True)
    dicom_instance_uid = models.CharField("DICOM SOP instance UID", max_length=64, blank=True)
    dicom_accession_number = models.CharField("accession number", max_length=16, blank=True,
                                              help_text="The AccessionNumber of a DICOM slice: the order its study "
                                              "was made for, as the hospital's RIS numbers it.")
    dicom_sop_class_uid = models.CharField("DICOM SOP class UID", max_length=64, blank=True,
                                           help_text="What kind of DICOM image the slice was (CT Image Storage, ...), "
                                           "so that a result can name it as its source.")
    dicom_study_date = models.DateField("study date", null=True, blank=True,
                                        help_text="The StudyDate of a DICOM slice, as the scanner wrote it.")
    dicom_study_time = models.TimeField("study time", null=True, blank=True)
    dicom_study_description = models.CharField("study description", max_length=64, blank=True,
                                               help_text="The StudyDescription of a DICOM slice (what was examined).")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="scans")
    uploaded_at = models.DateTimeField(default=timezone.now, editable=False)
    # Entered in error (the wrong patient, the wrong image): kept, with its result and reviews, for the
    # record and the audit, but out of the worklist, the agreement figures and training.
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="scans_withdrawn",
                                     null=True, blank=True)
    withdrawal_reason = models.CharField(max_length=200, blank=True)
    # A slice uploaded for the wrong patient is filed for the right one as a new scan (its own diagnosis,
    # review and access log); the withdrawn scan stays with the patient it was uploaded for.
    refiled_from = models.ForeignKey("self", on_delete=models.PROTECT, related_name="refiled_copies",
                                     null=True, blank=True,
                                     help_text="The withdrawn scan of another patient this slice was filed from.")
    # Part of the UIDs of the result's DICOM captures (dicom_uids): after an archive may have rejected them (a
    # withdrawal undone, the patient's details changed), the scan's captures are new instances, which it takes.
    capture_generation = models.PositiveSmallIntegerField(
        default=0, editable=False, help_text="How many times the scan's captures were made anew.")

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        indexes = [
            models.Index(fields=["patient", "-uploaded_at"], name="scan_patient_uploaded_idx"),
        ]
        constraints = [
            # One slice is on record once per patient. The services check first and say which scan holds it;
            # this holds when two sends of one slice (an archive's retry, a double-clicked form) cross.
            models.UniqueConstraint(fields=["patient", "sha256"], condition=models.Q(withdrawn_at__isnull=True),
                                    name="scan_slice_once_per_patient"),
            # The archive's identity of a slice: the same instance with other pixels (re-encoded, windowed
            # otherwise) is the same slice.
            models.UniqueConstraint(fields=["patient", "dicom_instance_uid"],
                                    condition=models.Q(withdrawn_at__isnull=True) & ~models.Q(dicom_instance_uid=""),
                                    name="scan_instance_once_per_patient"),
        ]

    def __str__(self) -> str:
        return f"Scan {self.pk} of {self.patient}"

    @property
    def is_withdrawn(self) -> bool:
        return self.withdrawn_at is not None

    @property
    def latest_prediction(self) -> Prediction | None:
        # Uses a prefetch of `predictions` when the selector made one (ordering is newest first).
        return next(iter(self.predictions.all()), None)

    @property
    def current_review(self) -> Review | None:
        # The newest review counts; uses a prefetch of `reviews` when there is one (newest first).
        return next(iter(self.reviews.all()), None)


def heatmap_upload_to(instance: Prediction, filename: str) -> str:
    # Beside the scan's image, named after it and the prediction; nothing comes from a client.
    scan_name = Path(instance.scan.image.name)
    return (scan_name.parent / f"{scan_name.stem}-p{instance.pk}-heatmap.png").as_posix()


class ScanWithdrawal(models.Model):
    """One withdrawal of a scan and, when it was a mistake, its undoing: the record both leave. The scan's
    own withdrawn_* fields say only whether it is withdrawn now."""

    scan = models.ForeignKey(Scan, on_delete=models.CASCADE, related_name="withdrawals")
    withdrawn_at = models.DateTimeField(default=timezone.now)
    withdrawn_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=200)
    restored_at = models.DateTimeField(null=True, blank=True)
    restored_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                    null=True, blank=True)
    restore_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-withdrawn_at", "-id"]

    def __str__(self) -> str:
        return f"Withdrawal of scan {self.scan_id} at {self.withdrawn_at:%Y-%m-%d %H:%M}"


class Prediction(models.Model):
    """One run of a model on a scan. A scan may be diagnosed again later; the newest run counts."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    FINAL_STATUSES = frozenset({Status.DONE, Status.FAILED})

    scan = models.ForeignKey(Scan, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    label = models.CharField(max_length=64, blank=True)
    probabilities = models.JSONField(default=dict, blank=True)
    out_of_scope = models.BooleanField(
        default=False, help_text="The image looks unlike the CT slices the model was trained on."
    )
    out_of_scope_reason = models.CharField(max_length=200, blank=True)
    failure_reason = models.TextField(blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Deliveries that started it: retries after a passing error, and after a worker died."
    )
    resent_at = models.DateTimeField(
        null=True, blank=True, help_text="When the sweep for lost diagnoses last sent its task again."
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    inference_ms = models.PositiveIntegerField(null=True, blank=True)
    confidence = models.FloatField(
        null=True, blank=True, help_text="The top class probability; below the confidence threshold a result needs review."
    )
    heatmap = models.FileField(
        upload_to=heatmap_upload_to, max_length=255, blank=True,
        help_text="Grad-CAM overlay (PNG with transparency) of where the model looked for the predicted class.",
    )

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [
            models.Index(fields=["scan", "-queued_at"], name="prediction_scan_queued_idx"),
            models.Index(fields=["status"], name="prediction_status_idx"),
        ]

    def __str__(self) -> str:
        return f"Prediction {self.pk} ({self.status}) of scan {self.scan_id}"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES


def class_heatmap_upload_to(instance: ClassHeatmap, filename: str) -> str:
    scan_name = Path(instance.prediction.scan.image.name)
    return (scan_name.parent / f"{scan_name.stem}-p{instance.prediction_id}-heatmap-{instance.pk}.png").as_posix()


class ClassHeatmap(models.Model):
    """Grad-CAM of a prediction for a class other than the predicted one, computed when someone asks.

    The worker computes the predicted class's map with the diagnosis (Prediction.heatmap); a map
    for another class ("where would Tumor be?") is computed once on request by the worker, which has
    the model loaded, and kept.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    prediction = models.ForeignKey(Prediction, on_delete=models.CASCADE, related_name="class_heatmaps")
    class_name = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    image = models.FileField(upload_to=class_heatmap_upload_to, max_length=255, blank=True)
    failure_reason = models.TextField(blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["prediction", "class_name"]
        constraints = [
            models.UniqueConstraint(fields=["prediction", "class_name"], name="one_heatmap_per_prediction_class"),
        ]

    def __str__(self) -> str:
        return f"Heat map of {self.class_name} for prediction {self.prediction_id} ({self.status})"


class Review(models.Model):
    """A clinician's reading of a scan: the AI result it judged and the label the clinician gives.

    A scan may be reviewed again; the newest review is the current one. Reviews are clinical
    records, so the prediction they judged cannot be deleted under them.
    """

    scan = models.ForeignKey(Scan, on_delete=models.CASCADE, related_name="reviews")
    prediction = models.ForeignKey(Prediction, on_delete=models.PROTECT, related_name="reviews")
    label = models.CharField(max_length=64, help_text="The class the reviewer judges the slice to show.")
    agrees_with_ai = models.BooleanField(
        null=True, help_text="Whether the reviewer's label is the AI's label; empty when the AI gave none (it failed)."
    )
    comment = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews")
    reviewed_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-reviewed_at", "-id"]
        indexes = [
            models.Index(fields=["scan", "-reviewed_at"], name="review_scan_reviewed_idx"),
        ]

    def __str__(self) -> str:
        verdict = {True: "agrees", False: "corrects to", None: "reads without AI result"}[self.agrees_with_ai]
        return f"Review of scan {self.scan_id}: {verdict} {self.label}"
