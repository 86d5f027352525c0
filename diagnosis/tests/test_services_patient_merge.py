"""Merging a duplicate record of one person into the record that stays: the scans move with their results and
reviews, the duplicate stays read-only and out of lists, and a merge made in error is undone."""

import datetime
import hashlib

import numpy as np
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from diagnosis import selectors, services
from diagnosis.models import Patient, PatientAccess, PatientMerge, Scan, WebhookDelivery
from mlcore.synthetic import dicom_bytes

from .factories import DonePredictionFactory, MembershipFactory, PatientFactory, ReviewFactory, ScanFactory, image_bytes

BORN = datetime.date(1961, 4, 2)


@pytest.fixture
def kept(organization):
    return PatientFactory(organization=organization, name="Ada Example", mrn="00123456", birth_date=BORN)


@pytest.fixture
def duplicate(organization):
    return PatientFactory(organization=organization, name="Ada Exmaple", mrn="ED-77", birth_date=BORN)


def _scan(patient, uploader, seed: int) -> Scan:
    data = image_bytes("PNG", (64, 48), seed=seed)
    return ScanFactory(patient=patient, uploaded_by=uploader, image=SimpleUploadedFile("s.png", data),
                       sha256=hashlib.sha256(data).hexdigest())


def test_merging_moves_the_duplicates_scans_with_their_results_and_reviews(kept, duplicate, clinician, boss):
    scan = _scan(duplicate, clinician, seed=1)
    review = ReviewFactory(prediction=DonePredictionFactory(scan=scan, label="Cyst"), label="Cyst", reviewed_by=clinician)
    own = _scan(kept, clinician, seed=2)

    merge = services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason=" registered twice  in ED ")

    scan.refresh_from_db()
    duplicate.refresh_from_db()
    assert scan.patient == kept and scan.reviews.get() == review and scan.predictions.count() == 1
    assert duplicate.merged_into == kept and merge.scans == [scan.pk] and merge.reason == "registered twice in ED"
    assert sorted(selectors.scan_list(user=clinician, patient=kept).values_list("pk", flat=True)) == sorted([scan.pk, own.pk])
    # Lists and searches leave the duplicate out; a lookup by its whole MRN names where it went.
    assert list(selectors.patient_list(user=clinician)) == [kept]
    assert list(selectors.patient_list(user=clinician, search="Exmaple")) == []
    assert selectors.patient_list(user=clinician, mrn="ED-77").get().merged_into == kept
    assert selectors.patient_get(user=clinician, pk=duplicate.pk) == duplicate


def test_the_surviving_records_access_log_holds_the_openings_of_the_duplicate(kept, duplicate, clinician, boss):
    services.patient_access_record(user=clinician, patient=duplicate, what=PatientAccess.What.PATIENT,
                                   channel=PatientAccess.Channel.WEB)

    services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="registered twice")

    assert [a.patient for a in selectors.patient_accesses(patient=kept)] == [duplicate]


def test_only_an_administrator_merges_and_nothing_changes_for_anyone_else(kept, duplicate, clinician, other_clinician):
    scan = _scan(duplicate, clinician, seed=1)

    with pytest.raises(PermissionDenied, match="Only an administrator"):
        services.patient_merge(duplicate=duplicate, into=kept, user=clinician, reason="registered twice")
    with pytest.raises(ValidationError, match="No such patient"):
        services.patient_merge(duplicate=duplicate, into=kept, user=other_clinician, reason="registered twice")

    assert Scan.objects.get(pk=scan.pk).patient == duplicate and not PatientMerge.objects.exists()


@pytest.mark.parametrize("change, message", [
    ({"birth_date": datetime.date(1961, 4, 3)}, r"different birth dates \(1961-04-03 for MRN ED-77, 1961-04-02"),
    ({"sex": Patient.Sex.MALE}, "different sexes"),
])
def test_records_that_name_two_people_are_not_merged(kept, duplicate, clinician, boss, change, message):
    Patient.objects.filter(pk=duplicate.pk).update(**change)
    scan = _scan(duplicate, clinician, seed=1)

    with pytest.raises(ValidationError, match=message):
        services.patient_merge(duplicate=Patient.objects.get(pk=duplicate.pk), into=kept, user=boss, reason="twice")

    assert Scan.objects.get(pk=scan.pk).patient_id == duplicate.pk and Patient.objects.get(pk=duplicate.pk).merged_into is None


def test_an_unknown_sex_on_one_record_does_not_stop_the_merge(kept, duplicate, boss):
    Patient.objects.filter(pk=duplicate.pk).update(sex=Patient.Sex.UNKNOWN)

    services.patient_merge(duplicate=Patient.objects.get(pk=duplicate.pk), into=kept, user=boss, reason="twice")

    assert Patient.objects.get(pk=duplicate.pk).merged_into == kept


def test_the_same_slice_on_both_records_is_refused_until_one_is_withdrawn(kept, duplicate, clinician, boss):
    mine, theirs = _scan(duplicate, clinician, seed=5), _scan(kept, clinician, seed=5)

    with pytest.raises(ValidationError, match=rf"scans #{mine.pk} and #{theirs.pk}.*on record twice"):
        services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="registered twice")
    assert Scan.objects.get(pk=mine.pk).patient == duplicate

    services.scan_withdraw(scan=mine, user=clinician, reason="uploaded twice")
    services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="registered twice")
    assert Scan.objects.get(pk=mine.pk).patient == kept



def test_one_dicom_instance_on_both_records_with_other_pixels_is_the_same_slice(kept, duplicate, clinician, boss):
    instance = "1.2.826.0.1.3680043.8.498.31"
    mine = ScanFactory(patient=duplicate, uploaded_by=clinician, dicom_instance_uid=instance)
    theirs = ScanFactory(patient=kept, uploaded_by=clinician, dicom_instance_uid=instance)  # windowed otherwise
    ScanFactory(patient=duplicate, uploaded_by=clinician), ScanFactory(patient=kept, uploaded_by=clinician)  # PNGs

    with pytest.raises(ValidationError, match=rf"scans #{mine.pk} and #{theirs.pk}\): merged"):
        services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="registered twice")
    assert Scan.objects.get(pk=mine.pk).patient == duplicate

def test_merged_records_are_merged_once_and_never_into_themselves(kept, duplicate, organization, boss):
    third = PatientFactory(organization=organization, birth_date=BORN)
    with pytest.raises(ValidationError, match="into itself"):
        services.patient_merge(duplicate=kept, into=kept, user=boss, reason="twice")
    services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="twice")

    with pytest.raises(ValidationError, match="was merged into Ada Example's record"):
        services.patient_merge(duplicate=duplicate, into=third, user=boss, reason="twice")
    with pytest.raises(ValidationError, match=r"MRN ED-77 was merged into Ada Example's record \(MRN 00123456\) "
                                              "already: merge into that one"):
        services.patient_merge(duplicate=third, into=duplicate, user=boss, reason="twice")


def test_a_merge_needs_a_reason(kept, duplicate, boss):
    with pytest.raises(ValidationError, match="Say why the record is merged"):
        services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason=" ")
    assert Patient.objects.get(pk=duplicate.pk).merged_into is None


def test_a_merged_record_takes_no_upload_and_no_correction(kept, duplicate, clinician, boss, active_model_version):
    services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="twice")
    duplicate.refresh_from_db()

    with pytest.raises(ValidationError, match=r"merged into Ada Example's record \(MRN 00123456\)"):
        services.scan_create(patient=duplicate, file=SimpleUploadedFile("a.png", image_bytes()), uploaded_by=clinician)
    with pytest.raises(ValidationError, match="Correct the details there"):
        services.patient_update(patient=duplicate, changed_by=clinician, name="Ada Example")
    assert not Scan.objects.exists() and Patient.objects.get(pk=duplicate.pk).name == "Ada Exmaple"


def test_an_upload_that_passed_its_check_before_the_merge_committed_is_refused(
        kept, duplicate, clinician, boss, active_model_version):
    stale = Patient.objects.get(pk=duplicate.pk)  # as a request read it before the merge
    services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="twice")
    stale.merged_into_id = None

    with pytest.raises(ValidationError, match="was merged into"):
        services.scan_create(patient=stale, file=SimpleUploadedFile("a.png", image_bytes()), uploaded_by=clinician)
    assert not Scan.objects.exists()


def test_a_dicom_slice_naming_a_merged_records_mrn_is_taken_by_the_record_it_went_into(
        kept, duplicate, clinician, boss, active_model_version):
    services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="twice")
    pixels = np.tile(np.linspace(0, 2000, 32).astype(np.uint16), (24, 1))

    scan = services.scan_create(patient=kept, uploaded_by=clinician, file=SimpleUploadedFile(
        "IM1.dcm", dicom_bytes(pixels, patient_id="ED-77"), content_type="application/dicom"))

    assert scan.patient == kept and scan.dicom_patient_id == "ED-77"


def test_the_merge_is_announced_to_the_hospital_system(kept, duplicate, clinician, boss, organization):
    services.webhook_set(organization=organization, url="https://his.example/hook", by=boss)
    scan = _scan(duplicate, clinician, seed=1)

    services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="registered twice")

    payload = WebhookDelivery.objects.get(event="patient.merged").payload
    assert payload["duplicate"] == {"id": duplicate.pk, "api_path": f"/api/v1/patients/{duplicate.pk}/"}
    assert payload["into"]["id"] == kept.pk and "ED-77" not in str(payload)  # no patient details
    assert payload["scans"] == [scan.pk] and payload["reason"] == "registered twice" and payload["merged_by"] == "boss"


def test_undoing_a_merge_moves_its_scans_back_and_keeps_later_uploads(kept, duplicate, clinician, boss, organization):
    services.webhook_set(organization=organization, url="https://his.example/hook", by=boss)
    moved = _scan(duplicate, clinician, seed=1)
    services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="registered twice")
    later = _scan(kept, clinician, seed=2)

    merge = services.patient_merge_undo(duplicate=duplicate, user=boss, reason="two people, same name and birth date")

    assert Scan.objects.get(pk=moved.pk).patient_id == duplicate.pk and Scan.objects.get(pk=later.pk).patient == kept
    assert Patient.objects.get(pk=duplicate.pk).merged_into is None and merge.undone_by == boss
    assert selectors.patient_merge_standing(duplicate=duplicate) is None
    assert WebhookDelivery.objects.get(event="patient.unmerged").payload["scans"] == [moved.pk]
    with pytest.raises(ValidationError, match="not merged"):
        services.patient_merge_undo(duplicate=duplicate, user=boss, reason="again")


def test_a_merge_is_undone_only_after_the_merges_that_followed_it(kept, duplicate, organization, boss):
    third = PatientFactory(organization=organization, birth_date=BORN, sex=kept.sex, mrn="M-3")
    services.patient_merge(duplicate=duplicate, into=kept, user=boss, reason="twice")
    services.patient_merge(duplicate=kept, into=third, user=boss, reason="three times")
    assert selectors.patient_former_mrns(patient=third) == ["00123456", "ED-77"]

    with pytest.raises(ValidationError, match="merged into MRN M-3 since: undo that merge first"):
        services.patient_merge_undo(duplicate=duplicate, user=boss, reason="two people")
    with pytest.raises(PermissionDenied):
        services.patient_merge_undo(duplicate=kept, user=MembershipFactory(organization=organization).user, reason="no")
