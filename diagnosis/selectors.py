"""Reads. Every selector that takes a user returns only that user's organization's data (tenancy):
another organization's object is indistinguishable from one that does not exist."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery

from .models import Membership, ModelVersion, Organization, Patient, Prediction, Review, Scan

UserLike = AbstractBaseUser | AnonymousUser


def membership_of(user: UserLike) -> Membership | None:
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        return user.membership  # type: ignore[union-attr]
    except Membership.DoesNotExist:
        return None


def organization_of(user: UserLike) -> Organization | None:
    membership = membership_of(user)
    return membership.organization if membership else None


def _organization_id(user: UserLike) -> int | None:
    membership = membership_of(user)
    return membership.organization_id if membership else None


def patient_list(*, user: UserLike, search: str | None = None) -> QuerySet[Patient]:
    organization_id = _organization_id(user)
    if organization_id is None:
        return Patient.objects.none()
    patients = Patient.objects.filter(organization_id=organization_id)
    search = (search or "").strip()
    if search:
        patients = patients.filter(Q(name__icontains=search) | Q(mrn__icontains=search))
    return patients.order_by("name", "mrn", "id")


def patient_get(*, user: UserLike, pk: int) -> Patient | None:
    return patient_list(user=user).filter(pk=pk).first()


def _predictions_newest_first() -> Prefetch:
    return Prefetch(
        "predictions",
        queryset=Prediction.objects.select_related("model_version").order_by("-queued_at", "-id"),
    )


def scan_list(*, user: UserLike, patient: Patient | int | None = None) -> QuerySet[Scan]:
    organization_id = _organization_id(user)
    if organization_id is None:
        return Scan.objects.none()
    scans = Scan.objects.filter(patient__organization_id=organization_id)
    if patient is not None:
        scans = scans.filter(patient=patient)
    return (
        scans.select_related("patient", "uploaded_by")
        .prefetch_related(_predictions_newest_first())
        .order_by("-uploaded_at", "-id")
    )


def scan_get(*, user: UserLike, pk: int) -> Scan | None:
    return scan_list(user=user).filter(pk=pk).first()


def prediction_latest(*, user: UserLike, scan: Scan | int) -> Prediction | None:
    organization_id = _organization_id(user)
    if organization_id is None:
        return None
    return (
        Prediction.objects.filter(scan=scan, scan__patient__organization_id=organization_id)
        .select_related("model_version")
        .order_by("-queued_at", "-id")
        .first()
    )


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.order_by("-created_at", "-id")


def _current_review_label() -> Subquery:
    return Subquery(Review.objects.filter(scan=OuterRef("pk")).order_by("-reviewed_at", "-id").values("label")[:1])


def reviewed_scans(*, organization: Organization) -> QuerySet[Scan]:
    """The organization's reviewed scans, each annotated with ``reviewed_label`` (its newest review's)."""
    return (
        Scan.objects.filter(patient__organization=organization)
        .annotate(reviewed_label=_current_review_label())
        .filter(reviewed_label__isnull=False)
        .order_by("pk")
    )
