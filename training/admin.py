from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from diagnosis import selectors as diagnosis_selectors
from diagnosis.admin import ModelVersionAdmin as DiagnosisModelVersionAdmin
from diagnosis.models import ModelVersion, Organization

from . import params as run_params
from . import services
from .forms import TrainingRunForm
from .models import LockedTestEvaluation, LockedTestEvaluationFailure, LockedTestSet, ModelPromotion, TrainingRun


class TrainingRunAddForm(forms.ModelForm):
    """The add form starts a run through the service: the same checks as the UI and the API."""

    preset = TrainingRunForm.base_fields["preset"]
    epochs = TrainingRunForm.base_fields["epochs"]
    learning_rate = TrainingRunForm.base_fields["learning_rate"]
    batch_size = TrainingRunForm.base_fields["batch_size"]
    image_size = TrainingRunForm.base_fields["image_size"]
    architecture = forms.CharField(required=False, help_text="resnet_small, resnet50 or vgg16; blank: params.yaml")
    members = TrainingRunForm.base_fields["members"]
    organization = forms.ModelChoiceField(
        queryset=Organization.objects.all(), required=False,
        help_text="Whose reviewed scans to use (for the reviewed and both data choices); "
        "defaults to your own organization.",
    )

    class Meta:
        model = TrainingRun
        fields = ["data"]

    # Set by TrainingRunAdmin.get_form: reviewed scans default to the requesting user's organization.
    request_user: Any = None

    def overrides(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in run_params.EXPOSED
                if self.cleaned_data.get(name) not in (None, "")}

    def organization(self) -> Organization | None:
        return self.cleaned_data.get("organization") or diagnosis_selectors.organization_of(self.request_user)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors and cleaned.get("data") != TrainingRun.Data.DEVELOPER and self.organization() is None:
            self.add_error("organization", "Choose whose reviewed scans to use: your account has no organization.")
        if not self.errors:
            try:
                run_params.resolve(preset=cleaned["preset"], overrides=self.overrides())
            except run_params.ParamsError as exc:
                raise ValidationError(str(exc)) from None
            current = TrainingRun.objects.filter(is_current=True).first()
            if current is not None:
                raise ValidationError(services.TrainingRunConflict(current).message)
        return cleaned


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "stage", "epoch", "epochs", "data", "preset", "requested_by", "created_at",
                    "model_version"]
    list_filter = ["status", "data"]
    actions = ["cancel"]
    readonly_fields = [f.name for f in TrainingRun._meta.fields]

    def get_form(self, request: HttpRequest, obj: TrainingRun | None = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = type("TrainingRunAddFormFor", (TrainingRunAddForm,), {"request_user": request.user})
            kwargs["fields"] = ["data", "preset", "organization", "epochs", "learning_rate", "batch_size",
                                "image_size", "architecture"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: TrainingRun | None = None) -> list[str]:
        return self.readonly_fields if obj is not None else []

    def get_fieldsets(self, request: HttpRequest, obj: TrainingRun | None = None):
        if obj is None:
            return [(None, {"fields": ["data", "preset", "organization", "epochs", "learning_rate", "batch_size",
                                       "image_size", "architecture"]})]
        return super().get_fieldsets(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: TrainingRun | None = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: TrainingRun, form: TrainingRunAddForm, change: bool) -> None:
        run = services.training_run_start(
            requested_by=request.user, data=form.cleaned_data["data"], preset=form.cleaned_data["preset"],
            overrides=form.overrides(), organization=form.organization(),
        )
        obj.pk = run.pk
        obj.refresh_from_db()

    @admin.action(description="Cancel the selected training runs")
    def cancel(self, request: HttpRequest, queryset: QuerySet[TrainingRun]) -> None:
        for run in queryset:
            try:
                services.training_run_cancel(run=run)
            except services.TrainingRunFinished as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.message_user(request, f"Cancellation of run {run.pk} requested.", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ModelPromotion)
class ModelPromotionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "from_version", "to_version", "performed_by", "gate_passed",
                    "gate_overridden", "reason"]
    list_filter = ["kind", "gate_overridden"]


@admin.register(LockedTestSet)
class LockedTestSetAdmin(ReadOnlyAdmin):
    list_display = ["sha256", "data_dir", "images_per_class", "created_at"]
    exclude = ["records"]


@admin.register(LockedTestEvaluation)
class LockedTestEvaluationAdmin(ReadOnlyAdmin):
    list_display = ["model_version", "test_set", "created_at", "seconds"]
    exclude = ["probabilities"]


@admin.register(LockedTestEvaluationFailure)
class LockedTestEvaluationFailureAdmin(ReadOnlyAdmin):
    list_display = ["model_version", "failed_at", "reason"]


# The foundation's "activate" action stays for the deployment's operators, but goes into the audit trail.
admin.site.unregister(ModelVersion)


@admin.register(ModelVersion)
class ModelVersionAdmin(DiagnosisModelVersionAdmin):
    @admin.action(description="Activate the selected model version (no promotion gate; recorded in the audit trail)")
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model version to activate.", messages.ERROR)
            return
        version = queryset.get()
        services.model_version_admin_activate(model_version=version, user=request.user)
        self.message_user(request, f"{version.name} is now the active model version.", messages.SUCCESS)
