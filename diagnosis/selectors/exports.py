"""Whole-record exports: those of a record, and one by its id, within the asker's organization."""

from __future__ import annotations

from django.db.models import QuerySet

from ..models import Patient, RecordExport
from .tenancy import UserLike, _organization_id


def record_exports_of(*, patient: Patient) -> QuerySet[RecordExport]:
    """The record's exports, newest first, with who asked for them."""
    return RecordExport.objects.filter(patient=patient).select_related("requested_by")


def record_export_get(*, user: UserLike, pk: int) -> RecordExport | None:
    """The export ``pk`` of the user's organization, or None."""
    organization_id = _organization_id(user)
    if organization_id is None:
        return None
    return (RecordExport.objects.filter(pk=pk, organization_id=organization_id)
            .select_related("patient", "requested_by").first())
