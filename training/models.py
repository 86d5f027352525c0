"""Training runs, the locked test series, model evaluations on them and the promotion audit trail.

Model versions themselves are diagnosis.ModelVersion; this app adds how each was made (TrainingRun),
how it scores on the locked test series (LockedTestEvaluation) and who made it active (ModelPromotion).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from diagnosis.models import ModelVersion, Organization


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Data(models.TextChoices):
        DEVELOPER = "developer", "Developer data set"
        REVIEWED = "reviewed", "Reviewed scans of the organization"
        BOTH = "both", "Both (reviewed scans added to training)"

    CURRENT_STATUSES = (Status.QUEUED, Status.RUNNING)
    FINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # True exactly while queued or running (a check constraint ties it to status): the partial unique
    # constraint on it is what allows one run at a time per deployment, even under concurrent requests.
    is_current = models.BooleanField(default=True, editable=False)
    data = models.CharField(max_length=16, choices=Data.choices, default=Data.DEVELOPER)
    preset = models.CharField(max_length=32, default="standard")
    overrides = models.JSONField(default=dict, blank=True, help_text="The params.yaml values the administrator changed.")
    params = models.JSONField(default=dict, blank=True, help_text="The full parameters the run trains with.")
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs",
        help_text="Whose reviewed scans the run may use.",
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="training_runs")

    stage = models.CharField(max_length=32, blank=True)
    epoch = models.PositiveIntegerField(default=0)
    epochs = models.PositiveIntegerField(default=0)
    history = models.JSONField(default=list, blank=True, help_text="One entry per finished epoch.")
    metrics = models.JSONField(default=dict, blank=True)
    eta_seconds = models.PositiveIntegerField(null=True, blank=True)
    log = models.TextField(blank=True)
    failure_reason = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker_node = models.CharField(max_length=255, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)

    mlflow_run_id = models.CharField(max_length=64, blank=True)
    data_manifest_sha256 = models.CharField(max_length=64, blank=True)
    locked_test_set = models.ForeignKey(
        "LockedTestSet", null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    training_image_hashes = models.JSONField(
        default=list, blank=True, editable=False,
        help_text="Pixel hashes of the images the model trained or stopped early on: the gate leaves any "
        "of them out of the test images it compares on.",
    )
    model_version = models.OneToOneField(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="training_run"
    )
    gate = models.JSONField(
        default=dict, blank=True, help_text="The promotion gate's verdict against the model active when the run ended."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_current"],
                condition=Q(is_current=True),
                name="one_current_training_run",
                violation_error_message="Only one training run can be queued or running at a time.",
            ),
            models.CheckConstraint(
                condition=Q(is_current=True, status__in=["queued", "running"])
                | Q(is_current=False, status__in=["succeeded", "failed", "cancelled"]),
                name="training_run_is_current_matches_status",
            ),
        ]

    def __str__(self) -> str:
        return f"Training run {self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES

    @property
    def elapsed_seconds(self) -> int | None:
        if not self.started_at:
            return None
        end = self.finished_at or timezone.now()
        return max(0, round((end - self.started_at).total_seconds()))


class LockedTestSet(models.Model):
    """The test series of the developer data set, as mlcore's ingest splits it with the deployment's
    fixed split parameters. No run trains or stops early on them; every model is compared on them."""

    sha256 = models.CharField("SHA-256", max_length=64, unique=True, help_text="Of its records (path, label, series).")
    fingerprint = models.CharField(
        max_length=64, db_index=True, help_text="Of the data folder's listing and the split parameters it came from."
    )
    data_dir = models.CharField(max_length=500)
    split = models.JSONField(default=dict)
    records = models.JSONField(default=list, help_text="path (relative to data_dir), label, series, pixel hash.")
    images_per_class = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Locked test set {self.sha256[:12]} ({len(self.records)} images)"


class LockedTestEvaluation(models.Model):
    """One model's calibrated probabilities for every image of a locked test set, as served."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="locked_test_evaluations")
    test_set = models.ForeignKey(LockedTestSet, on_delete=models.CASCADE, related_name="evaluations")
    class_names = models.JSONField(default=list)
    probabilities = models.JSONField(default=list, help_text="One row per record of the test set, in its order.")
    scores = models.JSONField(default=dict, help_text="On the test set less the images in seen.")
    seen = models.JSONField(
        default=list, blank=True, editable=False,
        help_text="Indices of test records the model trained or stopped early on by its own card's split "
                  "(a model split otherwise than params.yaml): the gate leaves them out.",
    )
    seconds = models.FloatField(default=0.0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "test_set"], name="one_evaluation_per_model_and_test_set"),
        ]

    def __str__(self) -> str:
        return f"{self.model_version.name} on {self.test_set}"


class LockedTestEvaluationFailure(models.Model):
    """Why a version's last evaluation on the locked test series failed: the gate says so, rather than
    that an evaluation is queued, until an evaluation of it succeeds."""

    model_version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE,
                                         related_name="locked_test_evaluation_failure")
    reason = models.TextField()
    failed_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return f"{self.model_version.name}: {self.reason[:80]}"


class ModelPromotion(models.Model):
    """The audit trail: every change of the active model version made through this app."""

    class Kind(models.TextChoices):
        PROMOTE = "promote", "Promotion"
        ROLLBACK = "rollback", "Rollback"
        ADMIN_ACTIVATE = "admin_activate", "Activation from the Django admin"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    from_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The version active before (none if none was).",
    )
    to_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotions")
    performed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="model_promotions")
    reason = models.TextField(blank=True)
    gate = models.JSONField(default=dict, blank=True, help_text="The gate's verdict at the time.")
    gate_passed = models.BooleanField(null=True, help_text="Empty when the gate does not apply (rollback).")
    gate_overridden = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        before = self.from_version.name if self.from_version else "none"
        return f"{self.get_kind_display()}: {before} → {self.to_version.name}"
