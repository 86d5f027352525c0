"""Clinician UI: server-rendered pages. Every view needs a logged-in member of an organization, and
objects of other organizations answer 404 exactly like missing ones."""

from .common import member_required, organization_admin_required
from .patients import patient_create, patient_detail, patient_edit, patient_list, scan_upload
from .scans import (
    prediction_state,
    scan_detail,
    scan_heatmap,
    scan_image,
    scan_item,
    scan_report,
    scan_rerun,
    scan_review,
    scan_withdraw,
    scan_status,
)
from .staff import (
    staff_access_log,
    staff_create,
    staff_deactivate,
    staff_list,
    staff_member,
    staff_password,
    staff_policy,
    staff_reactivate,
    staff_role,
    staff_token,
    staff_token_revoke,
    staff_two_factor_reset,
    staff_unlock,
)
from .worklist import agreement, home, worklist_rows

__all__ = [
    "agreement",
    "home",
    "member_required",
    "organization_admin_required",
    "patient_create",
    "patient_edit",
    "patient_detail",
    "patient_list",
    "prediction_state",
    "scan_detail",
    "scan_heatmap",
    "scan_image",
    "scan_item",
    "scan_report",
    "scan_rerun",
    "scan_review",
    "scan_withdraw",
    "scan_status",
    "scan_upload",
    "staff_access_log",
    "staff_create",
    "staff_deactivate",
    "staff_list",
    "staff_member",
    "staff_password",
    "staff_policy",
    "staff_reactivate",
    "staff_role",
    "staff_token",
    "staff_token_revoke",
    "staff_two_factor_reset",
    "staff_unlock",
    "worklist_rows",
]
