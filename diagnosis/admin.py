from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import services
from .auth import AdminLoginForm
from .models import (
    ApiToken, Authenticator, DicomStoreRefusal, InputsAlert, LoginFailure, Membership, ModelVersion, Organization,
    Patient, PatientAccess, PatientChange, PatientDistinct, PatientErasure, PatientMerge, PerformanceAlert, Prediction,
    Hl7Delivery, Review, Scan, ScanWithdrawal, ScimToken, StaffChange, WebhookDelivery,
)


# The admin's own login page counts failed passwords like the app's.
admin.site.login_form = AdminLoginForm

# django-otp's TOTP devices keep their secret in clear: members' authenticators are Authenticators (sealed), set up
# on the Account page, so the admin offers no way to make the other kind.
if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    # Set on the Members page, which checks them, makes a new secret with each address and records the change; the
    # secret and the archive's password are never shown again.
    readonly_fields = ["webhook_url", "pacs_url", "pacs_username"]
    exclude = ["webhook_secret", "pacs_password"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "password_change_required", "created_at"]
    list_filter = ["role", "organization", "password_change_required"]
    search_fields = ["user__username", "organization__name"]
    autocomplete_fields = ["user", "organization"]


class PatientChangeInline(admin.TabularInline):
    model = PatientChange
    extra = 0
    can_delete = False
    fields = ["changed_at", "changed_by", "before", "after"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["name", "mrn", "organization", "birth_date", "sex", "created_at"]
    list_filter = ["organization", "sex"]
    search_fields = ["name", "mrn"]
    autocomplete_fields = ["organization"]
    inlines = [PatientChangeInline]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        # Corrections and merges go through the patient page or the API, which record who did what and move
        # the scans with a merge.
        if obj is not None:
            return ["organization", "mrn", "name", "birth_date", "sex", "merged_into", "training_opt_out"]
        return []

    def get_exclude(self, request: HttpRequest, obj=None) -> list[str]:
        return ["merged_into"] if obj is None else []

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # A patient's data goes through the erasure on the patient's page (or the API), which deletes the scans and
        # their files with it and records who erased it.
        return False


class AuditLogAdmin(admin.ModelAdmin):
    """An audit log, read-only: an entry that could be edited or deleted would prove nothing."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(PatientMerge)
class PatientMergeAdmin(AuditLogAdmin):
    list_display = ["merged_at", "duplicate", "into", "merged_by", "reason", "undone_at"]
    list_filter = ["into__organization"]
    search_fields = ["duplicate__mrn", "into__mrn", "duplicate__name", "into__name"]
    list_select_related = ["duplicate", "into", "merged_by"]


@admin.register(PatientErasure)
class PatientErasureAdmin(AuditLogAdmin):
    """Patient records erased (consent withdrawn, the end of a pilot): who erased how much, when and why."""

    list_display = ["erased_at", "organization", "patient_id", "erased_by_name", "reason", "scans", "reviews",
                    "archive_results", "files_removed_at"]
    list_filter = ["organization"]
    date_hierarchy = "erased_at"
    exclude = ["files"]
    list_select_related = ["organization"]


@admin.register(PerformanceAlert)
class PerformanceAlertAdmin(AuditLogAdmin):
    list_display = ["raised_at", "organization", "model_version", "measures", "cleared_at"]
    list_filter = ["organization", "model_version"]
    list_select_related = ["organization", "model_version"]


@admin.register(InputsAlert)
class InputsAlertAdmin(AuditLogAdmin):
    list_display = ["raised_at", "organization", "model_version", "out_of_scope", "diagnosed", "cleared_at", "ended"]
    list_filter = ["organization", "model_version", "ended"]
    list_select_related = ["organization", "model_version"]


@admin.register(PatientDistinct)
class PatientDistinctAdmin(AuditLogAdmin):
    list_display = ["marked_at", "first", "second", "marked_by"]
    list_select_related = ["first", "second", "marked_by"]


@admin.register(PatientAccess)
class PatientAccessAdmin(AuditLogAdmin):
    list_display = ["at", "user", "patient", "what", "scan", "channel", "erasure"]
    list_filter = ["what", "channel", "patient__organization"]
    search_fields = ["patient__name", "patient__mrn", "user__username"]
    date_hierarchy = "at"
    list_select_related = ["user", "patient", "scan"]


@admin.register(ScanWithdrawal)
class ScanWithdrawalAdmin(AuditLogAdmin):
    """Scans withdrawn as entered in error, and withdrawals undone, with who, when and why."""

    list_display = ["withdrawn_at", "scan", "withdrawn_by", "reason", "restored_at", "restored_by", "restore_reason"]
    date_hierarchy = "withdrawn_at"
    list_select_related = ["scan", "withdrawn_by", "restored_by"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AuditLogAdmin):
    """Result notifications sent to organizations' systems, and how each went."""

    list_display = ["created_at", "organization", "event", "status", "attempts", "response_status", "last_error"]
    list_filter = ["status", "event", "organization"]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]


@admin.register(Hl7Delivery)
class Hl7DeliveryAdmin(AuditLogAdmin):
    """Results sent to organizations' record systems as HL7 v2 messages, and their acknowledgements. The message as
    sent names the patient, so it is left out here."""

    list_display = ["created_at", "organization", "scan", "event", "status", "attempts", "ack_code", "last_error"]
    list_filter = ["status", "event", "organization"]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]
    exclude = ["message"]


@admin.register(DicomStoreRefusal)
class DicomStoreRefusalAdmin(AuditLogAdmin):
    """Slices the hospitals' archives sent (DICOMweb store) that were refused, and whether they were stored since."""

    list_display = ["refused_at", "organization", "patient_id", "reason", "resolved_at"]
    list_filter = ["organization"]
    search_fields = ["patient_id", "sop_instance_uid"]
    date_hierarchy = "refused_at"
    list_select_related = ["organization"]


@admin.register(StaffChange)
class StaffChangeAdmin(AuditLogAdmin):
    """Account changes made by organization administrators on the Members page."""

    list_display = ["at", "by", "action", "member", "detail", "organization"]
    list_filter = ["action", "organization"]
    search_fields = ["member__username", "by__username"]
    date_hierarchy = "at"
    list_select_related = ["by", "member", "organization"]


@admin.register(Authenticator)
class AuthenticatorAdmin(AuditLogAdmin):
    """Who has an authenticator app, since when, last used when. Set up by the member on the Account page (a site
    superuser too) and reset on the Members page or by `manage.py two_factor_reset`, where the reset is recorded;
    its secret is sealed and never shown here."""

    list_display = ["user", "confirmed", "created_at", "last_used_at", "throttling_failure_count"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    exclude = ["secret"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Who holds an API token, since when, last used when. Issued on the Members page or by create_api_client,
    where it is shown once; only its digest is here, so it is listed, never shown or made here. Deleting one
    revokes it."""

    list_display = ["user", "prefix", "created", "last_used_at"]
    search_fields = ["user__username", "prefix"]
    list_select_related = ["user"]
    readonly_fields = ["user", "prefix", "created", "last_used_at"]
    exclude = ["digest"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(ScimToken)
class ScimTokenAdmin(admin.ModelAdmin):
    """Which organizations' members the hospital's directory provisions (SCIM), with whose token, since when, last
    used when. Made on the Members page and shown there once; only its digest is here. Deleting one revokes it."""

    list_display = ["organization", "prefix", "created", "created_by", "last_used_at"]
    list_select_related = ["organization", "created_by"]
    readonly_fields = ["organization", "prefix", "created", "created_by", "last_used_at"]
    exclude = ["digest"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(LoginFailure)
class LoginFailureAdmin(admin.ModelAdmin):
    """Failed logins; deleting a username's entries lifts its lock before the window ends."""

    list_display = ["username", "at"]
    search_fields = ["username"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class PredictionInline(admin.TabularInline):
    model = Prediction
    extra = 0
    can_delete = False
    fields = ["status", "label", "model_version", "queued_at", "finished_at", "inference_ms", "failure_reason"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Scan)
class ScanAdmin(admin.ModelAdmin):
    # Scans enter through the upload service (validation, queueing); the admin only inspects them.
    list_display = ["id", "patient", "format", "width", "height", "uploaded_by", "uploaded_at"]
    list_filter = ["format", "patient__organization"]
    search_fields = ["patient__name", "patient__mrn", "sha256", "original_filename", "dicom_study_uid",
                     "dicom_accession_number"]
    readonly_fields = [
        "patient", "image", "sha256", "original_filename", "width", "height", "format", "dicom_patient_id",
        "dicom_study_uid", "dicom_series_uid", "dicom_instance_uid", "dicom_accession_number", "uploaded_by",
        "uploaded_at",
        # Withdrawal and filing go through their services, which keep the history and notify.
        "withdrawn_at", "withdrawn_by", "withdrawal_reason", "refiled_from",
    ]
    inlines = [PredictionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["id", "scan", "status", "label", "model_version", "queued_at", "finished_at", "inference_ms"]
    list_filter = ["status", "model_version", "label"]
    search_fields = ["scan__patient__name", "scan__patient__mrn"]
    readonly_fields = [f.name for f in Prediction._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    # Versions are registered by `manage.py register_model` (it hashes the file and reads its card).
    list_display = ["name", "is_active", "sha256", "path", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "sha256"]
    readonly_fields = ["name", "path", "sha256", "class_names", "metrics", "card", "created_at", "is_active"]
    actions = ["activate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Activate the selected model version")
    def activate(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model version to activate.", messages.ERROR)
            return
        version = services.model_version_activate(model_version=queryset.get())
        self.message_user(request, f"{version.name} is now the active model version.", messages.SUCCESS)


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    # Reviews are made by clinicians on the scan page or through the API; the admin only inspects them.
    list_display = ["id", "scan", "label", "agrees_with_ai", "reviewed_by", "reviewed_at"]
    list_filter = ["agrees_with_ai", "label", "scan__patient__organization"]
    search_fields = ["scan__patient__name", "scan__patient__mrn", "reviewed_by__username", "comment"]
    readonly_fields = [f.name for f in Review._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
