"""Erased patient records: what an erasure would take, and what is known of one done."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet

from ..models import Organization, PacsDelivery, Patient, PatientErasure, RecordExport, Review, Scan
from .records import patient_record_ids
from .tenancy import UserLike, _organization_id


@dataclass(frozen=True)
class ErasurePreview:
    """What erasing a record takes with it, for the page that asks to confirm."""

    merged: list[Patient]  # records merged into it, erased with it
    scans: int
    withdrawn: int
    mistaken: int  # of those, the person's slices uploaded under another record by mistake (filed for them since)
    reviews: int
    archive_results: int  # captures the archive stored
    archive_set: bool  # an archive is set, so it is asked to delete them
    reviewed: int  # slices a training export made before may hold
    record_exports: int  # whole-record ZIPs still kept, deleted with it


def scans_filed_from(*, scan_ids: set[int]) -> set[int]:
    """The withdrawn scans of other records that these scans, as they stand, were filed from (uploaded for the
    wrong patient, then filed for this one), back along the chain: they show this person, so an erasure takes them
    too. Not the origin of one of these scans that was itself withdrawn and filed for someone else: the slice is
    theirs, and stays with its origin."""
    taken: set[int] = set()
    frontier = set(Scan.objects.filter(pk__in=scan_ids, withdrawn_at__isnull=True, refiled_from__isnull=False)
                   .values_list("refiled_from_id", flat=True))
    while frontier:
        taken |= frontier
        frontier = set(Scan.objects.filter(pk__in=frontier, refiled_from__isnull=False)
                       .values_list("refiled_from_id", flat=True)) - taken - scan_ids
    return taken


def scans_erased_with(*, record_ids: list[int]) -> tuple[set[int], set[int]]:
    """The scans an erasure of these records takes: their own, and those filed from (``scans_filed_from``)."""
    own = set(Scan.objects.filter(patient_id__in=record_ids).values_list("pk", flat=True))
    return own, scans_filed_from(scan_ids=own)


def reviews_and_archive_results(*, scan_ids: set[int] | list[int]) -> tuple[int, int]:
    """How many reviews these scans have, and how many of their AI results the archive stored."""
    return (Review.objects.filter(scan_id__in=scan_ids).count(),
            PacsDelivery.objects.filter(scan_id__in=scan_ids, kind=PacsDelivery.Kind.CAPTURE,
                                        status=PacsDelivery.Status.DELIVERED).count())


def patient_erasure_preview(*, patient: Patient) -> ErasurePreview:
    ids = patient_record_ids(patient=patient)
    own, mistaken = scans_erased_with(record_ids=ids)
    scan_ids = own | mistaken
    reviews, archive_results = reviews_and_archive_results(scan_ids=scan_ids)
    return ErasurePreview(
        merged=list(Patient.objects.filter(pk__in=ids).exclude(pk=patient.pk).order_by("mrn")),
        scans=len(scan_ids),
        withdrawn=Scan.objects.filter(pk__in=scan_ids, withdrawn_at__isnull=False).count(),
        mistaken=len(mistaken),
        reviews=reviews,
        archive_results=archive_results,
        archive_set=bool(Organization.objects.filter(pk=patient.organization_id).exclude(pacs_url="").exists()),
        reviewed=Review.objects.filter(scan_id__in=scan_ids).values("scan_id").distinct().count(),
        record_exports=RecordExport.objects.filter(patient_id__in=ids).exclude(file="").count(),
    )


def patient_erasure_of(*, user: UserLike, pk: int) -> PatientErasure | None:
    """The erasure of the organization's former record ``pk`` (itself erased, or merged into one erased)."""
    organization_id = _organization_id(user)
    if organization_id is None:
        return None
    erasures = PatientErasure.objects.filter(organization_id=organization_id)
    found = erasures.filter(patient_id=pk).first()
    if found is None:
        # Few erasures take merged records with them; the JSON list is read here rather than queried, which
        # SQLite (``make run``) cannot do.
        found = next((erasure for erasure in erasures.exclude(merged_ids=[]) if pk in erasure.merged_ids), None)
    return found


def erasure_get(*, organization: Organization, pk: int) -> PatientErasure | None:
    """The organization's erasure ``pk`` (its own id, not the former record's)."""
    return PatientErasure.objects.filter(organization=organization, pk=pk).first()


def erasures(*, organization: Organization) -> QuerySet[PatientErasure]:
    """The organization's erasures, newest first, with the notes asking the archive to delete what it was sent."""
    return PatientErasure.objects.filter(organization=organization).prefetch_related(
        Prefetch("pacs_rejections", queryset=PacsDelivery.objects.only("id", "erasure_id", "status", "rejected")))
