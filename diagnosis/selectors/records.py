"""Clinical records: patients, scans, predictions, reviews, model versions and agreement (the worklist is
``worklist``)."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, FloatField, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Coalesce

from ..models import (
    Membership, ModelVersion, Organization, PacsDelivery, Patient, PatientAccess, PatientChange, Prediction, Review, Scan, ScanWithdrawal,
    WorkerHeartbeat,
)
from .tenancy import UserLike, _organization_id, membership_of


def patient_list(
    *, user: UserLike, search: str | None = None, mrn: str | None = None, include_merged: bool = False
) -> QuerySet[Patient]:
    """The organization's patients; ``search`` matches part of a name or MRN, ``mrn`` one whole MRN (as
    stored: surrounding spaces are not part of it), which is how a hospital system finds its patient.

    Records merged into another are left out of lists and searches, since their scans are the other's now.
    A whole-MRN lookup finds one all the same (its ``merged_into`` names the record to use): a hospital
    system that still knows the patient by the retired MRN learns where they went."""
    organization_id = _organization_id(user)
    if organization_id is None:
        return Patient.objects.none()
    patients = Patient.objects.filter(organization_id=organization_id).select_related("merged_into")
    search = (search or "").strip()
    if "\x00" in search or "\x00" in (mrn or ""):
        # Forms refuse NUL, so no stored name or MRN holds one; PostgreSQL would refuse the query.
        return Patient.objects.none()
    if mrn is not None:
        patients = patients.filter(mrn=mrn.strip())
    elif not include_merged:
        patients = patients.filter(merged_into__isnull=True)
    if search:
        patients = patients.filter(Q(name__icontains=search) | Q(mrn__icontains=search))
    return patients.order_by("name", "mrn", "id")


def patients_named_by_dicom_id(*, user: UserLike, dicom_id: str) -> list[Patient]:
    """The organization's records in use that a DICOM PatientID names by MRN, compared as an upload's header is
    (services.same_patient_id: case, surrounding spaces and an all-digit number's leading zeros aside). A record
    merged into another stands for the one it went into. More than one: the ID is ambiguous here."""
    organization_id = _organization_id(user)
    wanted = dicom_id.strip()
    if organization_id is None or not wanted or "\x00" in wanted:
        return []
    named = Q(mrn__iexact=wanted)
    if wanted.isdigit():
        named |= Q(mrn__regex=rf"^\s*0*{int(wanted)}\s*$")
    found: dict[int, Patient] = {}
    for patient in Patient.objects.filter(organization_id=organization_id).filter(named):
        for _ in range(100):  # a chain of merges; a loop in one would be a bug elsewhere, not a reason to hang
            if patient.merged_into_id is None:
                break
            patient = Patient.objects.get(pk=patient.merged_into_id)
        found[patient.pk] = patient
    return [found[pk] for pk in sorted(found)]


def patient_get(*, user: UserLike, pk: int) -> Patient | None:
    return patient_list(user=user, include_merged=True).filter(pk=pk).first()


def patient_version(*, patient: Patient) -> str:
    """A short fingerprint of the patient's details: an editor sends back the one they saw, so that a
    colleague's correction saved meanwhile is not silently overwritten (the API's ETag)."""
    values = "\x1f".join([patient.mrn, patient.name, patient.birth_date.isoformat(), patient.sex])
    return hashlib.sha256(values.encode()).hexdigest()[:16]


def patient_changes(*, patient: Patient) -> QuerySet[PatientChange]:
    """The corrections of a patient's details, newest first, with who made them."""
    return PatientChange.objects.filter(patient=patient).select_related("changed_by").order_by("-changed_at", "-id")


def patient_accesses(*, patient: Patient) -> QuerySet[PatientAccess]:
    """Every opening of the patient's record, scans, images and reports, newest first, with the openings
    of records merged into it (they were this person's too)."""
    return PatientAccess.objects.filter(patient_id__in=patient_record_ids(patient=patient)).select_related(
        "user", "patient").order_by("-at", "-id")


def patient_record_ids(*, patient: Patient) -> list[int]:
    """The patient's id and those of the records merged into it, directly or through another merged one."""
    ids, frontier = [patient.pk], [patient.pk]
    while frontier:
        # Merges are few and chains short; the loop ends because a record is merged into one other at most.
        frontier = list(Patient.objects.filter(merged_into_id__in=frontier).values_list("pk", flat=True))
        ids.extend(frontier)
    return ids


def _predictions_newest_first() -> Prefetch:
    return Prefetch(
        "predictions",
        queryset=Prediction.objects.select_related("model_version").prefetch_related(Prefetch(
            "pacs_deliveries", queryset=PacsDelivery.objects.order_by("-created_at", "-id"))).order_by("-queued_at", "-id"),
    )


def _reviews_newest_first() -> Prefetch:
    return Prefetch("reviews", queryset=Review.objects.select_related("reviewed_by").order_by("-reviewed_at", "-id"))


def scan_list(*, user: UserLike, patient: Patient | int | None = None, withdrawn: bool | None = None) -> QuerySet[Scan]:
    """The organization's scans, newest first; ``withdrawn`` True or False keeps only those withdrawn or not."""
    organization_id = _organization_id(user)
    if organization_id is None:
        return Scan.objects.none()
    scans = Scan.objects.filter(patient__organization_id=organization_id)
    if patient is not None:
        scans = scans.filter(patient=patient)
    if withdrawn is not None:
        scans = scans.filter(withdrawn_at__isnull=not withdrawn)
    return (
        scans.select_related("patient", "uploaded_by", "withdrawn_by", "refiled_from__patient")
        .prefetch_related(_predictions_newest_first(), _reviews_newest_first(), Prefetch(
            "refiled_copies", queryset=Scan.objects.only("id", "refiled_from_id", "uploaded_at").order_by("uploaded_at", "id")),
            Prefetch("pacs_deliveries", to_attr="pacs_rejections", queryset=PacsDelivery.objects.filter(
                kind=PacsDelivery.Kind.REJECTION, withdrawal__isnull=False, withdrawal__restored_at=None,
            ).order_by("-created_at", "-id")))
        .order_by("-uploaded_at", "-id")
    )


def scan_get(*, user: UserLike, pk: int) -> Scan | None:
    return scan_list(user=user).filter(pk=pk).first()


def scan_may_withdraw(*, user: UserLike, scan: Scan) -> bool:
    """The clinician who uploaded the scan, or an administrator of its organization."""
    membership = membership_of(user)
    if membership is None or membership.organization_id != scan.patient.organization_id:
        return False
    return scan.uploaded_by_id == user.pk or membership.role == Membership.Role.ADMIN


def scan_withdrawals(*, scan: Scan) -> list[ScanWithdrawal]:
    """The scan's withdrawals, newest first, each with its undoing if it was undone."""
    return list(ScanWithdrawal.objects.filter(scan=scan).select_related("withdrawn_by", "restored_by"))


def scan_restored_at(*, scan: Scan) -> datetime.datetime | None:
    """When the scan's last withdrawal was undone, or None if it never was."""
    return (ScanWithdrawal.objects.filter(scan=scan, restored_at__isnull=False)
            .order_by("-restored_at").values_list("restored_at", flat=True).first())


def scan_of_slice(*, patient_id: int, sha256: str, instance_uid: str = "", exclude: Scan | None = None) -> Scan | None:
    """The patient's earliest scan of this very slice that is not withdrawn: the same pixels, or the same DICOM
    instance (``instance_uid``, its SOPInstanceUID) sent with other pixels (another encoding, another window). One
    slice is on record once."""
    same = Q(sha256=sha256)
    if instance_uid:
        same |= Q(dicom_instance_uid=instance_uid[:64])
    scans = Scan.objects.filter(same, patient_id=patient_id, withdrawn_at__isnull=True)
    if exclude is not None:
        scans = scans.exclude(pk=exclude.pk)
    return scans.order_by("uploaded_at", "id").first()


def scan_refiling_standing(*, scan: Scan) -> Scan | None:
    """The scan this one's slice became for another patient and that is not withdrawn (at most one)."""
    return Scan.objects.filter(refiled_from=scan, withdrawn_at__isnull=True).select_related("patient").first()


def scan_refilings(*, scan: Scan) -> list[Scan]:
    """The scans this one's slice became for other patients (``services.scan_refile``), oldest first; at most
    one of them is not withdrawn."""
    return list(Scan.objects.filter(refiled_from=scan).select_related("patient", "uploaded_by").order_by("uploaded_at", "id"))


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


def model_version_get(*, pk: int) -> ModelVersion | None:
    """Any version by its id: versions are the deployment's, not an organization's."""
    return ModelVersion.objects.filter(pk=pk).first()


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.order_by("-created_at", "-id")


def _current_review_label() -> Subquery:
    return Subquery(Review.objects.filter(scan=OuterRef("pk")).order_by("-reviewed_at", "-id").values("label")[:1])


def reviewed_scans(*, organization: Organization) -> QuerySet[Scan]:
    """The organization's reviewed scans that may train the model, each annotated with ``reviewed_label`` (its
    newest review's); withdrawn ones left out (a slice of the wrong patient is no example to learn from), and
    those of patients who refused that their slices train it."""
    return (
        Scan.objects.filter(patient__organization=organization, withdrawn_at__isnull=True,
                            patient__training_opt_out=False)
        .annotate(reviewed_label=_current_review_label())
        .filter(reviewed_label__isnull=False)
        .order_by("pk")
    )


# --- Uncertainty ------------------------------------------------------------------------------------


def default_confidence_threshold() -> float:
    return float(settings.KIDNEYWEB_CONFIDENCE_THRESHOLD)


def confidence_threshold(model_version: ModelVersion) -> float:
    """Below this top probability a result needs review: the model card's calibrated threshold,
    else the KIDNEYWEB_CONFIDENCE_THRESHOLD setting."""
    value = ((model_version.card or {}).get("calibration") or {}).get("confidence_threshold")
    try:
        return float(value) if value is not None else default_confidence_threshold()
    except (TypeError, ValueError):
        return default_confidence_threshold()


@dataclass(frozen=True)
class Uncertainty:
    needs_review: bool
    reason: str
    threshold: float


def prediction_uncertainty(prediction: Prediction) -> Uncertainty:
    """Whether a result may be shown as a diagnosis or must be marked "needs review", and why.

    Mirrors the database expression used for the worklist (_needs_review_expression).
    """
    threshold = confidence_threshold(prediction.model_version)
    if prediction.status == Prediction.Status.FAILED:
        return Uncertainty(True, "The diagnosis failed, so there is no AI result to lean on.", threshold)
    if prediction.status != Prediction.Status.DONE:
        return Uncertainty(False, "", threshold)
    if prediction.out_of_scope:
        what = prediction.out_of_scope_reason or "unlike the CT slices the model was trained on"
        return Uncertainty(True, f"Out of scope: the image looks like {what}.", threshold)
    if prediction.confidence is None or prediction.confidence < threshold:
        shown = "unknown" if prediction.confidence is None else f"{prediction.confidence:.0%}"
        return Uncertainty(
            True, f"Uncertain: the top probability ({shown}) is below the confidence threshold ({threshold:.0%}).",
            threshold,
        )
    return Uncertainty(False, "", threshold)


def _threshold_expression(prefix: str = "") -> Coalesce:
    return Coalesce(
        Cast(
            KeyTextTransform("confidence_threshold", KeyTransform("calibration", f"{prefix}model_version__card")),
            FloatField(),
        ),
        Value(default_confidence_threshold()),
        output_field=FloatField(),
    )


# --- Reviews ----------------------------------------------------------------------------------------


def review_current(*, user: UserLike, scan: Scan | int) -> Review | None:
    organization_id = _organization_id(user)
    if organization_id is None:
        return None
    return (
        Review.objects.filter(scan=scan, scan__patient__organization_id=organization_id)
        .select_related("reviewed_by", "prediction")
        .order_by("-reviewed_at", "-id")
        .first()
    )


@dataclass(frozen=True)
class ClassAgreement:
    label: str
    reviewed: int
    agreed: int
    corrected_to: dict[str, int]

    @property
    def rate(self) -> float | None:
        return self.agreed / self.reviewed if self.reviewed else None


@dataclass(frozen=True)
class AgreementSummary:
    classes: list[ClassAgreement]

    @property
    def reviewed(self) -> int:
        return sum(row.reviewed for row in self.classes)

    @property
    def agreed(self) -> int:
        return sum(row.agreed for row in self.classes)

    @property
    def rate(self) -> float | None:
        return self.agreed / self.reviewed if self.reviewed else None


def agreement_summary(*, organization: Organization) -> AgreementSummary:
    """Agreement per class the AI said, over every class the product knows, with the overall rate."""
    return AgreementSummary(classes=agreement_by_class(organization=organization, class_names=known_labels()))


def known_labels() -> list[str]:
    """The active model's classes, or the four the product knows before any model is registered."""
    from .worklist import URGENCY_BY_LABEL  # the worklist module reads scans from this one

    active = model_version_active()
    return list(active.class_names) if active else list(URGENCY_BY_LABEL)


def agreement_by_class(*, organization: Organization, class_names: list[str] | None = None) -> list[ClassAgreement]:
    """For each class the AI said, how often the current review agreed, and what reviewers said instead
    (withdrawn scans left out)."""
    newest = Review.objects.filter(scan=OuterRef("scan")).order_by("-reviewed_at", "-id").values("pk")[:1]
    pairs = (
        # A reading of a scan whose diagnosis failed has no AI label to agree with.
        Review.objects.filter(scan__patient__organization=organization, pk=Subquery(newest), agrees_with_ai__isnull=False,
                              scan__withdrawn_at__isnull=True)
        .values("prediction__label", "label")
        .annotate(count=Count("id"))
        .order_by()
    )
    table: dict[str, dict[str, int]] = {name: {} for name in (class_names or [])}
    for row in pairs:
        table.setdefault(row["prediction__label"], {})[row["label"]] = row["count"]
    rows = []
    for ai_label, said in table.items():
        agreed = said.get(ai_label, 0)
        rows.append(
            ClassAgreement(
                label=ai_label,
                reviewed=sum(said.values()),
                agreed=agreed,
                corrected_to={k: v for k, v in sorted(said.items()) if k != ai_label},
            )
        )
    return rows


def worker_last_seen(*, name: str) -> datetime.datetime | None:
    return WorkerHeartbeat.objects.filter(name=name).values_list("seen_at", flat=True).first()
