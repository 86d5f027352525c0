"""Organizations, patients, scans, predictions, model versions and clinicians' reviews.

Clinical records are protected from cascading deletes: removing an organization, a patient or a
model version that others still point at fails instead of silently erasing history.
"""

from .accounts import (
    WEBHOOK_EVENTS,
    ApiToken,
    Authenticator,
    LoginFailure,
    Membership,
    Organization,
    RecoveryCode,
    RecoveryCodes,
    ScimToken,
    StaffChange,
    all_webhook_events,
)
from .erasures import PatientErasure
from .exports import RecordExport, record_export_upload_to
from .operations import (DicomStoreRefusal, Hl7Delivery, InputsAlert, ModelVersion, OutboundDelivery, PacsDelivery, PerformanceAlert,
                         WebhookDelivery, WorkerHeartbeat)
from .records import (
    FORMAT_EXTENSIONS,
    ClassHeatmap,
    Patient,
    PatientAccess,
    PatientChange,
    PatientDistinct,
    PatientMerge,
    Prediction,
    Review,
    Scan,
    ScanWithdrawal,
    class_heatmap_upload_to,
    heatmap_upload_to,
    scan_upload_to,
)

__all__ = [
    "RecordExport",
    "record_export_upload_to",
    "WEBHOOK_EVENTS",
    "all_webhook_events",
    "ApiToken", "Authenticator", "FORMAT_EXTENSIONS", "ClassHeatmap", "DicomStoreRefusal", "Hl7Delivery", "InputsAlert", "LoginFailure", "Membership", "ModelVersion", "Organization", "OutboundDelivery", "PacsDelivery", "Patient",
    "PatientAccess", "PatientChange", "PatientDistinct", "PatientErasure", "PatientMerge", "PerformanceAlert", "Prediction", "RecoveryCode", "RecoveryCodes", "Review", "Scan", "ScanWithdrawal", "ScimToken", "StaffChange",
    "WebhookDelivery", "WorkerHeartbeat",
    "class_heatmap_upload_to", "heatmap_upload_to", "scan_upload_to",
]
