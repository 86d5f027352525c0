"""POST /api/v1/dicomweb/studies: a hospital's archive stores CT instances as a DICOMweb (STOW-RS) client does; each
is filed for the patient whose MRN its header names, a retry is harmless, and a refused instance says why without
undoing the others."""

from __future__ import annotations

import numpy as np
import pytest

from diagnosis import services
from diagnosis.models import DicomStoreRefusal, Prediction, Scan
from mlcore.synthetic import dicom_bytes

from . import openapi
from .factories import ModelVersionFactory, PatientFactory

URL = "/api/v1/dicomweb/studies"
BOUNDARY = "kidneyweb-test-boundary-7f3a"
REFERENCED, FAILED = "00081199", "00081198"


def slice_for(patient_id: str | None, *, seed: int = 0, modality: str = "CT") -> bytes:
    rng = np.random.default_rng(seed)
    return dicom_bytes(rng.integers(900, 1300, (64, 64), dtype=np.uint16), patient_id=patient_id, modality=modality)


def related(*parts: bytes | tuple[str, bytes], boundary: str = BOUNDARY) -> bytes:
    body = b"preamble, which a reader ignores\r\n"
    for part in parts:
        media_type, data = part if isinstance(part, tuple) else ("application/dicom", part)
        body += f"--{boundary}\r\nContent-Type: {media_type}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def store(client, body: bytes, content_type: str = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'):
    return client.generic("POST", URL, body, content_type=content_type, HTTP_ACCEPT="application/dicom+json")


def uids(data: bytes) -> tuple[str, str]:
    import io

    import pydicom

    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return str(header.SOPClassUID), str(header.SOPInstanceUID)


def items(response, key: str) -> list[dict]:
    return response.json().get(key, {}).get("Value", [])


def value(item: dict, tag: str):
    return item[tag]["Value"][0]


def scan_of(item: dict) -> Scan:
    return Scan.objects.get(pk=int(value(item, "00081190").rstrip("/").rsplit("/", 1)[1]))


def test_an_archive_stores_instances_and_each_is_filed_for_the_patient_its_header_names(
    client, api_client, organization, active_model_version
):
    ada = PatientFactory(organization=organization, mrn="MRN-0042")
    bob = PatientFactory(organization=organization, mrn="00123")
    first, second = slice_for(" mrn-0042 "), slice_for("123", seed=1)  # case, spaces and leading zeros aside

    response = store(api_client, related(first, second))

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    assert openapi.mismatches(openapi.load(client), URL, "post", response) == []
    stored = items(response, REFERENCED)
    assert [(value(item, "00081150"), value(item, "00081155")) for item in stored] == [uids(first), uids(second)]
    assert [scan_of(item).patient for item in stored] == [ada, bob]
    assert value(stored[0], "00081190") == f"http://testserver/api/v1/scans/{scan_of(stored[0]).pk}/"
    assert FAILED not in response.json()
    scan = scan_of(stored[0])
    assert (scan.format, scan.dicom_patient_id, scan.uploaded_by.username) == ("PNG", "mrn-0042", "alice")
    assert scan.latest_prediction.status == Prediction.Status.QUEUED


def test_a_retry_answers_with_the_scans_already_made_and_files_nothing_twice(api_client, organization,
                                                                           active_model_version):
    PatientFactory(organization=organization, mrn="MRN-0042")
    body = related(slice_for("MRN-0042"), slice_for("MRN-0042", seed=1))

    first = store(api_client, body)
    again = store(api_client, body)

    assert (first.status_code, again.status_code) == (200, 200)
    assert [scan_of(item).pk for item in items(again, REFERENCED)] == [scan_of(item).pk for item in items(first, REFERENCED)]
    assert Scan.objects.count() == 2 and Prediction.objects.count() == 2


def test_refused_instances_say_why_and_do_not_undo_the_others(client, api_client, organization, other_organization,
                                                             active_model_version, monkeypatch):
    from pydicom import Dataset, config
    PatientFactory(organization=organization, mrn="MRN-0042")
    PatientFactory(organization=other_organization, mrn="MRN-9000")
    good = slice_for("MRN-0042")
    unknown, elsewhere, anonymous = slice_for("MRN-7777", seed=1), slice_for("MRN-9000", seed=2), slice_for(None, seed=3)
    magnetic = slice_for("MRN-0042", seed=4, modality="MR")

    response = store(api_client, related(unknown, elsewhere, anonymous, magnetic, b"\x89PNG not dicom",
                                         ("image/png", b"\x89PNG"), good))

    assert response.status_code == 202, response.content
    assert openapi.mismatches(openapi.load(client), URL, "post", response) == []
    assert [scan_of(item).patient.mrn for item in items(response, REFERENCED)] == ["MRN-0042"]
    failed = items(response, FAILED)
    reasons = [value(item, "00000902") for item in failed]
    assert [value(item, "00081197") for item in failed] == [0x0110, 0x0110, 0x0110, 0x0110, 0xC000, 0xC000]
    # ErrorComment is an LO: cut to 64 characters, which a strict reader holds it to; the whole reason is kept.
    assert reasons[:4] == [
        "No patient with MRN 'MRN-7777' in your organization: register...",
        "No patient with MRN 'MRN-9000' in your organization: register...",  # another's is not found
        "The header names no patient ID (an anonymised export?)...",
        "The DICOM file cannot be used: it is not a CT slice (modality...",
    ]
    monkeypatch.setattr(config.settings, "reading_validation_mode", config.RAISE)
    assert len(Dataset.from_json(response.json()).FailedSOPSequence) == 6  # a strict reader reads every element
    assert reasons[4] == "Not a DICOM Part 10 instance (no DICM preamble)."
    assert reasons[5] == "A part of type image/png, not application/dicom: not stored."
    kept = list(DicomStoreRefusal.objects.order_by("id").values_list("reason", flat=True))
    assert kept[0] == ("No patient with MRN 'MRN-7777' in your organization: register them first "
                       "(POST /api/v1/patients/), then send it again.")
    assert "not a CT slice (modality MR); only CT slices can be diagnosed" in kept[3]
    assert [value(item, "00081155") for item in failed[:4]] == [uids(d)[1] for d in (unknown, elsewhere, anonymous,
                                                                                      magnetic)]
    assert Scan.objects.count() == 1

    none = store(api_client, related(unknown))
    assert none.status_code == 409 and REFERENCED not in none.json()


def test_a_merged_records_mrn_files_for_the_record_it_went_into_and_an_ambiguous_id_is_refused(
    api_client, organization, boss, active_model_version
):
    kept = PatientFactory(organization=organization, mrn="MRN-0001", name="Ada Example")
    retired = PatientFactory(organization=organization, mrn="MRN-0002", name="Ada Example",
                             birth_date=kept.birth_date, sex=kept.sex)
    services.patient_merge(duplicate=retired, into=kept, user=boss, reason="registered twice")
    PatientFactory(organization=organization, mrn="007")
    PatientFactory(organization=organization, mrn="7")

    response = store(api_client, related(slice_for("MRN-0002"), slice_for("0007", seed=1)))

    assert response.status_code == 202
    assert scan_of(items(response, REFERENCED)[0]).patient == kept
    assert value(items(response, FAILED)[0], "00000902").startswith("Patient ID '0007' matches the MRNs of 2 patients")
    assert DicomStoreRefusal.objects.get().reason.startswith(
        "Patient ID '0007' matches the MRNs of 2 patients here ('007', '7')")


@pytest.mark.parametrize(("content_type", "body", "status", "says"), [
    ("application/json", b"{}", 415, 'Send the instances as multipart/related; type="application/dicom"'),
    ('multipart/related; type="application/dicom+xml"; boundary=x', b"", 415, "multipart/related"),
    ('multipart/related; type="application/dicom"', b"", 400, "names no boundary"),
    (f'multipart/related; type="application/dicom"; boundary={BOUNDARY}', related(b"x")[:-20], 400, "cut short"),
    ('multipart/related; type="application/dicom"; boundary=other', related(b"x"), 400, "boundary does not match"),
    (f'multipart/related; type="application/dicom"; boundary={BOUNDARY}', f"--{BOUNDARY}--\r\n".encode(), 400,
     "holds no instance"),
])
def test_a_body_that_is_no_store_request_is_refused_with_the_reason(api_client, active_model_version, content_type,
                                                                    body, status, says):
    response = store(api_client, body, content_type)

    assert response.status_code == status and says in response.json()["detail"]


def test_too_large_a_body_too_many_instances_or_no_active_model_are_refused_before_anything_is_filed(
    api_client, organization, settings, db
):
    PatientFactory(organization=organization, mrn="MRN-0042")
    body = related(slice_for("MRN-0042"), slice_for("MRN-0042", seed=1))

    assert store(api_client, body).status_code == 503  # no model version is active
    assert not DicomStoreRefusal.objects.exists()  # a refusal of the whole request, not of each slice
    services.model_version_activate(model_version=ModelVersionFactory())
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 1
    many = store(api_client, body)
    assert many.status_code == 400 and "2 instances in one request; the limit is 1" in many.json()["detail"]
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 500
    settings.KIDNEYWEB_DICOMWEB_MAX_BYTES = len(body) - 1
    large = store(api_client, body)
    assert large.status_code == 413 and "send the instances in several requests" in large.json()["detail"]
    assert not Scan.objects.exists()


def test_the_store_needs_a_token_of_a_member(client, db):
    assert store(client, related(b"x")).status_code == 401


def test_the_answer_is_dicom_json_for_any_client_and_xml_is_refused_with_406(api_client, organization,
                                                                          active_model_version):
    PatientFactory(organization=organization, mrn="MRN-0042")
    content_type = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    body = related(slice_for("MRN-0042"))

    anything = api_client.generic("POST", URL, body, content_type=content_type, HTTP_ACCEPT="*/*")
    xml = api_client.generic("POST", URL, body, content_type=content_type, HTTP_ACCEPT="application/dicom+xml")

    assert anything.status_code == 200 and anything["Content-Type"] == "application/dicom+json"
    assert xml.status_code == 406


def test_refusals_are_kept_for_the_administrators_and_resolved_once_the_archive_sends_the_slice_again(
    api_client, organization, other_organization, boss, active_model_version
):
    from django.test import Client
    from django.urls import reverse

    waiting = slice_for("MRN-0777")
    store(api_client, related(waiting, slice_for(None, seed=1)))
    [anonymous, unknown] = DicomStoreRefusal.objects.order_by("-id")  # newest first, as listed

    assert (unknown.patient_id, unknown.sop_instance_uid, unknown.sent_by.username) == ("MRN-0777", uids(waiting)[1],
                                                                                      "alice")
    assert unknown.organization == organization and unknown.failure_code == 0x0110 and unknown.resolved_at is None
    assert anonymous.patient_id == "" and "names no patient ID" in anonymous.reason
    admin = Client()
    admin.force_login(boss)
    page = admin.get(reverse("diagnosis:staff_list")).content.decode()
    assert "No patient with MRN &#x27;MRN-0777&#x27; in your organization" in page
    assert "http://testserver/api/v1/dicomweb</code>" in page and page.count("Not stored") == 2

    patient = PatientFactory(organization=organization, mrn="MRN-0777")  # the registration desk catches up
    again = store(api_client, related(waiting))

    unknown.refresh_from_db()
    assert again.status_code == 200 and unknown.resolved_as == Scan.objects.get(patient=patient)
    assert unknown.resolved_at is not None
    assert f"scan #{unknown.resolved_as_id}</a>" in admin.get(reverse("diagnosis:staff_list")).content.decode()
    assert not DicomStoreRefusal.objects.filter(organization=other_organization).exists()



def test_a_refused_instance_uploaded_for_the_patient_it_was_refused_for_is_resolved_as_that_scan(
    api_client, organization, other_organization, active_model_version
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from .factories import MembershipFactory, token_client

    patient = PatientFactory(organization=organization)
    anonymised = slice_for(None, seed=3)
    store(api_client, related(anonymised))
    store(token_client(MembershipFactory(organization=other_organization).user), related(anonymised))
    ours, theirs = (DicomStoreRefusal.objects.get(organization=org) for org in (organization, other_organization))
    assert "upload it for a chosen patient instead (POST /api/v1/scans/)" in ours.reason

    # What the refusal asked for: the same instance uploaded for a chosen patient.
    response = api_client.post("/api/v1/scans/", {"patient": patient.pk, "image": SimpleUploadedFile(
        "slice.dcm", anonymised, content_type="application/dicom")}, format="multipart")

    assert response.status_code == 201, response.content
    ours.refresh_from_db(), theirs.refresh_from_db()
    assert ours.resolved_as_id == response.json()["id"] and ours.resolved_at is not None
    assert theirs.resolved_at is None  # another organization's archive is still missing its slice


STUDY = "1.2.826.0.1.3680043.8.498.10"


def test_instances_stored_into_a_named_study_are_filed_and_those_of_another_study_refused(
    client, api_client, organization, active_model_version
):
    PatientFactory(organization=organization, mrn="MRN-0042")
    ours, theirs = slice_for_study(STUDY), slice_for_study("1.2.826.0.1.3680043.8.498.11", seed=1)

    response = api_client.generic("POST", f"{URL}/{STUDY}", related(ours, theirs),
                                  content_type=f'multipart/related; type="application/dicom"; boundary={BOUNDARY}')

    assert response.status_code == 202, response.content
    assert openapi.mismatches(openapi.load(client), URL + "/{study_uid}", "post", response) == []
    assert [value(item, "00081155") for item in items(response, REFERENCED)] == [uids(ours)[1]]
    [refused] = items(response, FAILED)
    assert (value(refused, "00081155"), value(refused, "00081197")) == (uids(theirs)[1], 0xC409)
    assert value(refused, "00000902") == "Of another study than the one addressed: it belongs to study..."
    kept = DicomStoreRefusal.objects.get()
    assert kept.failure_code == 0xC409 and kept.reason == (
        f"Of another study than the one addressed: it belongs to study 1.2.826.0.1.3680043.8.498.11, not to study "
        f"{STUDY}. Not stored.")
    assert Scan.objects.count() == 1


@pytest.mark.parametrize("study", ["1.2.03", "1.2.x", "1." + "2" * 70, "1..2"])
def test_a_study_address_that_is_no_uid_is_refused_before_anything_is_read(api_client, organization,
                                                                          active_model_version, study):
    PatientFactory(organization=organization, mrn="MRN-0042")

    response = api_client.generic("POST", f"{URL}/{study}", related(slice_for_study(STUDY)),
                                  content_type=f'multipart/related; type="application/dicom"; boundary={BOUNDARY}')

    assert response.status_code == 400 and "is not a DICOM UID" in response.json()["detail"]
    assert not Scan.objects.exists() and not DicomStoreRefusal.objects.exists()


def slice_for_study(study: str, *, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return dicom_bytes(rng.integers(900, 1300, (64, 64), dtype=np.uint16), patient_id="MRN-0042", study_uid=study)
