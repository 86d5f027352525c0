from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.permissions import BasePermission

from .. import selectors

if TYPE_CHECKING:  # rest_framework.views imports this module while it loads; avoid the cycle
    from rest_framework.request import Request
    from rest_framework.views import APIView


class HasMembership(BasePermission):
    """Only members of an organization may use the API: every object belongs to one."""

    message = "Your account does not belong to an organization."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return selectors.membership_of(request.user) is not None


class IsOrganizationAdministrator(BasePermission):
    """Reviewer agreement describes the whole organization's work: administrators only."""

    message = "Only administrators of your organization may see reviewer agreement."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return selectors.is_organization_admin(request.user)


class MayReadAccessLog(IsOrganizationAdministrator):
    """Who opened a patient's data is for a privacy review by the organization's administrators."""

    message = "Only administrators of your organization may see who opened a patient's data."


class MayMergePatients(IsOrganizationAdministrator):
    """Merging moves a patient's scans to another record: a decision for the organization's administrators."""

    message = "Only administrators of your organization may merge patient records or undo a merge."


class MayErasePatients(IsOrganizationAdministrator):
    """Erasing a patient's data for good, and the record of erasures."""

    message = "Only administrators of your organization may erase patient records or see the erasures."


class MayExportRecords(IsOrganizationAdministrator):
    """A patient's whole record in one file, with who opened it: for a subject access request, handled by the
    organization's administrators."""

    message = "Only administrators of your organization may export a patient's whole record."


class MayManageMembers(IsOrganizationAdministrator):
    """Adding, changing and removing who may open the organization's patient data."""

    message = "Only administrators of your organization may manage its members."


class MayManageArchive(IsOrganizationAdministrator):
    """Where the organization's AI results are stored in its archive (PACS), and sending them again."""

    message = "Only administrators of your organization may manage where its AI results are stored in the archive."


class MayManageRecordSystem(IsOrganizationAdministrator):
    """Where the organization's results are sent as HL7 v2 messages, and sending them again."""

    message = "Only administrators of your organization may manage where its results are sent as HL7 messages."


class MayManageNotifications(IsOrganizationAdministrator):
    """Where the organization's result notifications go, and sending them again."""

    message = "Only administrators of your organization may manage its result notifications."
