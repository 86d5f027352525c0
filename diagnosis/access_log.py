"""The access log as CSV rows, for the privacy officer's export (Members page) and a patient's whole-record export:
one way of writing an entry, and every cell safe to open in a spreadsheet."""

from __future__ import annotations

import datetime

from .models import PatientAccess

HEADER = ["time", "username", "user name", "opened", "scan", "channel"]
PATIENT_HEADER = ["patient MRN", "patient name"]


def cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text: a name typed as "=HYPERLINK(...)" must not become a
    formula in the privacy officer's spreadsheet (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def header(*, with_patient: bool) -> list[str]:
    return [*HEADER[:3], *PATIENT_HEADER, *HEADER[3:]] if with_patient else list(HEADER)


def row(access: PatientAccess, *, zone: datetime.tzinfo, with_patient: bool) -> list[str]:
    """One entry; ``with_patient`` adds the record's MRN and name (blank, with the erasure's date, once erased)."""
    patient: list[object] = []
    if with_patient:
        if access.patient_id is None:
            # The entry outlives the record; what it named is gone with it.
            patient = ["", f"(record erased {access.erasure.erased_at.astimezone(zone):%Y-%m-%d})"]
        else:
            patient = [access.patient.mrn, access.patient.name]
    return [cell(value) for value in (
        access.at.astimezone(zone).isoformat(timespec="seconds"), access.user.get_username(),
        access.user.get_full_name(), *patient, access.get_what_display(), access.scan_id or "",
        access.get_channel_display())]
