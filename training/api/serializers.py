from __future__ import annotations

from typing import Any

from rest_framework import serializers

from diagnosis.models import ModelVersion

from .. import params as run_params
from ..models import ModelPromotion, TrainingRun


class TrainingRunCreateSerializer(serializers.Serializer):
    data = serializers.ChoiceField(choices=TrainingRun.Data.choices, default=TrainingRun.Data.DEVELOPER)
    preset = serializers.ChoiceField(choices=list(run_params.PRESETS), default="standard")
    params = serializers.DictField(
        required=False, default=dict,
        help_text="params.yaml `train` values to change, e.g. {\"epochs\": 5, \"learning_rate\": 0.001}. "
        f"Allowed: {', '.join(sorted(run_params.ALLOWED))}; the split is locked.",
    )


class TrainingRunSerializer(serializers.ModelSerializer):
    # Null until the run has registered a model, started, or when started without an organization.
    model_version = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    model_version_name = serializers.CharField(source="model_version.name", read_only=True, default=None,
                                               allow_null=True)
    requested_by = serializers.CharField(source="requested_by.get_username", read_only=True)
    organization = serializers.CharField(source="organization.name", read_only=True, default=None, allow_null=True)
    elapsed_seconds = serializers.IntegerField(read_only=True, allow_null=True)
    params = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id", "status", "stage", "epoch", "epochs", "metrics", "history", "elapsed_seconds", "eta_seconds",
            "data", "preset", "overrides", "params", "organization", "requested_by", "cancel_requested",
            "failure_reason", "model_version", "model_version_name", "gate", "data_manifest_sha256",
            "mlflow_run_id", "created_at", "started_at", "finished_at", "heartbeat_at", "worker_node",
        ]
        read_only_fields = fields

    def get_params(self, run: TrainingRun) -> dict[str, Any]:
        return (run.params or {}).get("train", {})


def locked_test_summary(version: ModelVersion) -> dict[str, Any] | None:
    evaluation = getattr(version, "current_locked_test_evaluation", None)
    if evaluation is None:
        return None
    return {key: evaluation.scores.get(key) for key in
            ("images", "accuracy", "macro_f1", "expected_calibration_error", "recall")}


class ModelVersionSerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(source="is_active", read_only=True)
    training_run = serializers.SerializerMethodField()
    locked_test = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = ["id", "name", "active", "metrics", "locked_test", "sha256", "path", "class_names", "created_at",
                  "training_run"]
        read_only_fields = fields

    def get_training_run(self, version: ModelVersion) -> int | None:
        run = getattr(version, "training_run", None)
        return run.pk if run is not None else None

    def get_locked_test(self, version: ModelVersion) -> dict[str, Any] | None:
        return locked_test_summary(version)


class PromoteSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000,
                                   help_text="A written reason; required to promote a version the gate refuses.")


class ModelPromotionSerializer(serializers.ModelSerializer):
    from_version = serializers.CharField(source="from_version.name", read_only=True, default=None)
    to_version = serializers.CharField(source="to_version.name", read_only=True)
    performed_by = serializers.CharField(source="performed_by.get_username", read_only=True)

    class Meta:
        model = ModelPromotion
        fields = ["id", "kind", "from_version", "to_version", "performed_by", "reason", "gate_passed",
                  "gate_overridden", "created_at"]
        read_only_fields = fields
