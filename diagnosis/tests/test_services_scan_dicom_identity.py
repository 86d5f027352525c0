"""A DICOM slice's header names its patient and modality: scan_create refuses one that names another
patient than the one chosen, or that is no CT slice, before anything is stored."""

import datetime

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from diagnosis import services
from diagnosis.models import Scan
from mlcore.synthetic import dicom_bytes

from .factories import PatientFactory, ScanFactory, image_bytes

SLICE = np.tile(np.linspace(0, 2000, 32).astype(np.uint16), (24, 1))


@pytest.fixture
def patient(organization):
    return PatientFactory(organization=organization, name="Ada Example", mrn="00123456")


def _upload(patient, clinician, **header):
    upload = SimpleUploadedFile("IM0001.dcm", dicom_bytes(SLICE, **header), content_type="application/dicom")
    return services.scan_create(patient=patient, file=upload, uploaded_by=clinician)


def test_a_dicom_slice_of_another_patient_is_refused_naming_both_ids(patient, clinician, active_model_version):
    with pytest.raises(ValidationError) as refused:
        _upload(patient, clinician, patient_id="00987654")

    [message] = refused.value.message_dict["image"]
    assert "'00987654'" in message and "Ada Example's MRN is '00123456'" in message
    assert "right patient" in message
    assert not Scan.objects.exists()


@pytest.mark.parametrize("header_id", ["00123456", "123456", " 00123456 "])
def test_the_same_mrn_written_with_other_leading_zeros_or_spaces_is_accepted(
        patient, clinician, active_model_version, header_id):
    assert _upload(patient, clinician, patient_id=header_id).patient == patient


def test_letters_of_another_case_name_the_same_patient(organization, clinician, active_model_version):
    patient = PatientFactory(organization=organization, mrn="kw-0042")

    assert _upload(patient, clinician, patient_id="KW-0042").patient == patient


def test_an_anonymised_slice_without_a_patient_id_is_accepted(patient, clinician, active_model_version):
    assert _upload(patient, clinician, patient_id=None).patient == patient


def test_a_site_whose_archive_ids_are_not_mrns_may_turn_the_check_off(patient, clinician, active_model_version, settings):
    settings.KIDNEYWEB_DICOM_PATIENT_ID_CHECK = False

    assert _upload(patient, clinician, patient_id="PACS-77").patient == patient


@pytest.mark.parametrize("modality", ["MR", "CR", "US"])
def test_a_dicom_image_of_another_modality_is_refused(patient, clinician, active_model_version, modality):
    with pytest.raises(ValidationError) as refused:
        _upload(patient, clinician, patient_id=patient.mrn, modality=modality)

    assert refused.value.message_dict["image"] == [
        f"The DICOM file cannot be used: it is not a CT slice (modality {modality}); only CT slices can be diagnosed."]
    assert not Scan.objects.exists()


@pytest.mark.parametrize("modality", ["SC", "OT"])
def test_a_workstations_capture_of_a_ct_slice_is_accepted(patient, clinician, active_model_version, modality):
    assert _upload(patient, clinician, patient_id=patient.mrn, modality=modality).format == "PNG"


def test_a_dicom_slice_keeps_where_it_is_in_the_archive_and_a_filed_copy_keeps_it_too(organization, clinician,
                                                                                     active_model_version):
    import io

    import pydicom

    wrong, right = PatientFactory(organization=organization), PatientFactory(organization=organization)
    data = dicom_bytes(SLICE, patient_id=None, study_uid="1.2.826.0.1.3680043.8.498.7", series_uid="1.2.826.0.1.8",
                       accession_number="A-7", study_date="20261205", study_time="0930", study_description="CT KUB")
    instance = str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
    scan = services.scan_create(patient=wrong, file=SimpleUploadedFile("IM1.dcm", data), uploaded_by=clinician)

    copy = services.scan_refile(scan=scan, patient=right, user=clinician, reason="uploaded for the wrong patient")
    png = services.scan_create(patient=right, file=SimpleUploadedFile("a.png", image_bytes()), uploaded_by=clinician)

    expected = ("1.2.826.0.1.3680043.8.498.7", "1.2.826.0.1.8", instance, "A-7", "1.2.840.10008.5.1.4.1.1.2",
                datetime.date(2026, 12, 5), datetime.time(9, 30), "CT KUB")
    fields = ("dicom_study_uid", "dicom_series_uid", "dicom_instance_uid", "dicom_accession_number",
              "dicom_sop_class_uid", "dicom_study_date", "dicom_study_time", "dicom_study_description")
    for stored in (Scan.objects.get(pk=scan.pk), Scan.objects.get(pk=copy.pk)):
        assert tuple(getattr(stored, field) for field in fields) == expected
    assert tuple(getattr(png, field) for field in fields) == ("", "", "", "", "", None, None, "")


def test_an_instance_sent_again_with_other_pixels_is_the_instance_already_stored(patient, clinician,
                                                                                 active_model_version):
    first = dicom_bytes(SLICE, patient_id=patient.mrn)
    again = _rewindowed(first)
    stored = services.scan_create(patient=patient, file=SimpleUploadedFile("IM1.dcm", first), uploaded_by=clinician)

    with pytest.raises(ValidationError) as refused:
        services.scan_create(patient=patient, file=SimpleUploadedFile("IM1.dcm", again), uploaded_by=clinician)

    error = refused.value.error_dict["image"][0]
    assert error.code == "already_stored" and error.params == {"scan": stored.pk}
    assert Scan.objects.count() == 1
    services.scan_withdraw(scan=stored, user=clinician, reason="wrong window")
    resent = services.scan_create(patient=patient, file=SimpleUploadedFile("IM1.dcm", again), uploaded_by=clinician)
    assert resent.dicom_instance_uid == stored.dicom_instance_uid and resent.sha256 != stored.sha256


def _rewindowed(data: bytes) -> bytes:
    """The same instance (SOPInstanceUID) windowed otherwise, as an archive may send it again: other pixels."""
    import io

    import pydicom

    dataset = pydicom.dcmread(io.BytesIO(data))
    dataset.WindowCenter, dataset.WindowWidth = "300", "1500"
    again = io.BytesIO()
    dataset.save_as(again, enforce_file_format=True)
    return again.getvalue()


def test_an_instance_stands_once_per_patient_in_the_database_itself_while_slices_without_one_need_not(
        patient, clinician, active_model_version):
    from django.db import IntegrityError, transaction

    first = _upload(patient, clinician, patient_id=patient.mrn)
    other = ScanFactory(patient=patient, uploaded_by=clinician)  # a PNG: no instance UID
    ScanFactory(patient=patient, uploaded_by=clinician)  # and another

    with pytest.raises(IntegrityError), transaction.atomic():
        ScanFactory(patient=patient, uploaded_by=clinician, dicom_instance_uid=first.dicom_instance_uid)
    assert other.dicom_instance_uid == "" and Scan.objects.filter(patient=patient).count() == 3
    services.scan_withdraw(scan=first, user=clinician, reason="wrong window")
    assert ScanFactory(patient=patient, uploaded_by=clinician, dicom_instance_uid=first.dicom_instance_uid).pk


def test_two_sends_of_one_instance_with_other_pixels_that_cross_store_one_scan(
        transactional_db, organization, clinician, active_model_version):
    """The second send checks before the first has committed, so only the constraint can stop it; it is answered
    as a duplicate naming the scan the first made, as an archive's retry is."""
    from .races import cross, require_postgresql

    require_postgresql()
    patient = PatientFactory(organization=organization, mrn="00123456")
    data = dicom_bytes(SLICE, patient_id=patient.mrn)

    def send(payload: bytes):
        return services.scan_create(patient=patient, file=SimpleUploadedFile("IM1.dcm", payload), uploaded_by=clinician)

    first, second = cross(lambda: send(data), lambda: send(_rewindowed(data)), waits_at="INSERT")

    assert Scan.objects.filter(patient=patient).count() == 1
    assert isinstance(second, ValidationError), second
    error = second.error_dict["image"][0]
    assert error.code == "already_stored" and error.params == {"scan": first.pk}
