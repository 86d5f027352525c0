"""Writes. Views, serializers, commands and tasks call these and only translate their results.

One module per area; everything is re-exported here, so callers write ``services.scan_create(...)``.
"""

from .access import patient_access_record, scan_image_access_record
from .heatmaps import (
    HeatmapAnswer,
    class_heatmap_fail,
    class_heatmap_request,
    class_heatmap_run,
    heatmap_get_or_request,
)
from .model_versions import model_version_activate, model_version_register
from .organizations import api_token_rotate, member_get_or_create, organization_get_or_create
from .heartbeats import worker_heartbeat_record
from .logins import login_failure_record, login_failures_clear, login_wait_seconds
from .patients import PatientChangedMeanwhile, patient_create, patient_update
from .reviews import review_create, reviewed_scans_export
from .staff import (
    member_api_token_issue,
    member_api_token_revoke,
    member_create,
    member_deactivate,
    member_password_changed,
    member_password_reset,
    member_reactivate,
    member_role_set,
    member_two_factor_reset,
    member_unlock,
    member_update,
    organization_two_factor_require,
)
from .two_factor import (
    recovery_codes_renew,
    two_factor_check,
    two_factor_disable,
    two_factor_recover,
    two_factor_setup_confirm,
    two_factor_setup_start,
)
from .webhooks import (
    WebhookNotDelivered,
    diagnosis_finished_notify,
    review_saved_notify,
    scan_restored_notify,
    scan_withdrawn_notify,
    webhook_deliver,
    webhook_events_set,
    webhook_ping,
    webhook_send_again,
    webhook_set,
    webhooks_resend_lost,
)
from .withdrawals import check_not_withdrawn, scan_restore, scan_withdraw, withdrawn_message
from .refiling import scan_refile
from .scans import (
    MAX_ATTEMPTS,
    MAX_FAILURE_REASON,
    DiagnosisPending,
    NoActiveModelVersion,
    RERUN_WHILE_PENDING_AFTER,
    ScanImageUnavailable,
    prediction_create,
    predictions_resend_lost,
    prediction_fail,
    prediction_run,
    scan_create,
)

__all__ = [
    "HeatmapAnswer",
    "MAX_ATTEMPTS",
    "MAX_FAILURE_REASON",
    "DiagnosisPending",
    "NoActiveModelVersion",
    "RERUN_WHILE_PENDING_AFTER",
    "ScanImageUnavailable",
    "api_token_rotate",
    "class_heatmap_fail",
    "class_heatmap_request",
    "class_heatmap_run",
    "heatmap_get_or_request",
    "member_api_token_issue",
    "member_api_token_revoke",
    "member_create",
    "member_deactivate",
    "member_get_or_create",
    "member_password_changed",
    "member_password_reset",
    "member_reactivate",
    "member_role_set",
    "member_two_factor_reset",
    "member_unlock",
    "member_update",
    "organization_two_factor_require",
    "recovery_codes_renew",
    "two_factor_check",
    "two_factor_disable",
    "two_factor_recover",
    "two_factor_setup_confirm",
    "two_factor_setup_start",
    "model_version_activate",
    "model_version_register",
    "organization_get_or_create",
    "login_failure_record",
    "login_failures_clear",
    "login_wait_seconds",
    "patient_access_record",
    "patient_create",
    "patient_update",
    "worker_heartbeat_record",
    "PatientChangedMeanwhile",
    "prediction_create",
    "predictions_resend_lost",
    "prediction_fail",
    "prediction_run",
    "review_create",
    "reviewed_scans_export",
    "scan_create",
    "scan_image_access_record",
    "check_not_withdrawn",
    "scan_restore",
    "scan_withdraw",
    "scan_refile",
    "withdrawn_message",
    "WebhookNotDelivered",
    "diagnosis_finished_notify",
    "review_saved_notify",
    "scan_restored_notify",
    "scan_withdrawn_notify",
    "webhook_deliver",
    "webhook_events_set",
    "webhook_ping",
    "webhook_send_again",
    "webhook_set",
    "webhooks_resend_lost",
]
