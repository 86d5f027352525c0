"""Erasing a record on the web: an administrator opens the erasure from the patient's page, reads what goes and
what stays, types the MRN and a reason, and lands on the patient list; the record's page then says it was erased
(410). Clinicians see no way to erase, and a wrong MRN shows on the form with nothing erased."""

import pytest
from django.urls import reverse

from diagnosis import services
from diagnosis.models import Organization, PacsDelivery, Patient, PatientAccess, PatientErasure, Scan

from .factories import DonePredictionFactory, PacsDeliveryFactory, PatientFactory, ReviewFactory, ScanFactory


@pytest.fixture
def patient(organization, clinician):
    patient = PatientFactory(organization=organization, name="Zebedee Quartermain", mrn="QX-7")
    ReviewFactory(prediction=DonePredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=clinician)),
                  reviewed_by=clinician)
    return patient


@pytest.fixture
def admin_client(client, boss):
    client.force_login(boss)
    return client


def test_an_administrator_reads_what_goes_then_erases_and_lands_on_the_patient_list(admin_client, patient, clinician,
                                                                                       boss):
    duplicate = PatientFactory(organization=patient.organization, name="Zebedee Quartermian", mrn="ED-3",
                               birth_date=patient.birth_date)
    ScanFactory(patient=duplicate, uploaded_by=clinician)
    services.patient_merge(duplicate=duplicate, into=patient, user=boss, reason="registered twice")
    PacsDeliveryFactory(prediction=DonePredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=clinician)),
                        status=PacsDelivery.Status.DELIVERED)
    page = admin_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    assert "Erase this record" in page

    confirm = admin_client.get(reverse("diagnosis:patient_erase", args=[patient.pk]))

    html = confirm.content.decode()
    assert confirm.status_code == 200 and "Erase this record for good?" in html
    assert "MRN ED-3" in html and "3 scans, with their images" in html and "and 1 review." in html
    assert "The archive (PACS) stored 1 AI result of this patient. No archive is set now" in html
    assert "1 reviewed slice may be in a training export" in html
    assert Patient.objects.count() == 2  # nothing goes before the confirmation

    done = admin_client.post(reverse("diagnosis:patient_erase", args=[patient.pk]),
                             {"reason": "consent withdrawn", "mrn": "QX-7"}, follow=True)

    assert done.redirect_chain[-1][0] == reverse("diagnosis:patient_list")
    assert "The record is erased with 3 scans" in done.content.decode()
    assert not Patient.objects.exists() and not Scan.objects.exists()
    gone = admin_client.get(reverse("diagnosis:patient_detail", args=[patient.pk]))
    assert gone.status_code == 410 and "This record was erased" in gone.content.decode()
    assert "consent withdrawn" in gone.content.decode() and "Quartermain" not in gone.content.decode()
    assert admin_client.get(reverse("diagnosis:patient_detail", args=[duplicate.pk])).status_code == 410
    members = admin_client.get(reverse("diagnosis:staff_list")).content.decode()
    erasures = members[members.index('id="erasures"'):members.index('id="changes-heading"')]
    assert "consent withdrawn" in erasures and "boss" in erasures and "<td>3</td>" in erasures
    assert "being deleted" in erasures and "Quartermain" not in erasures


def test_a_wrong_mrn_or_no_reason_shows_on_the_form_and_erases_nothing(admin_client, patient):
    response = admin_client.post(reverse("diagnosis:patient_erase", args=[patient.pk]),
                                 {"reason": "consent withdrawn", "mrn": "QX-8"})

    assert response.status_code == 400
    assert "Type the record&#x27;s MRN exactly" in response.content.decode()
    empty = admin_client.post(reverse("diagnosis:patient_erase", args=[patient.pk]), {"reason": "", "mrn": "QX-7"})
    assert empty.status_code == 400 and "This field is required" in empty.content.decode()
    assert Patient.objects.get() == patient and not PatientErasure.objects.exists()


def test_clinicians_see_no_erasure_and_cannot_reach_it(client, clinician, patient):
    client.force_login(clinician)

    assert "Erase this record" not in client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    assert client.get(reverse("diagnosis:patient_erase", args=[patient.pk])).status_code == 403
    assert client.post(reverse("diagnosis:patient_erase", args=[patient.pk]),
                       {"reason": "consent withdrawn", "mrn": "QX-7"}).status_code == 403
    assert Patient.objects.get() == patient


def test_a_merged_record_sends_the_administrator_to_the_record_it_went_into(admin_client, patient, boss):
    duplicate = PatientFactory(organization=patient.organization, mrn="ED-4", birth_date=patient.birth_date)
    services.patient_merge(duplicate=duplicate, into=patient, user=boss, reason="registered twice")

    response = admin_client.get(reverse("diagnosis:patient_erase", args=[duplicate.pk]), follow=True)

    assert response.redirect_chain[-1][0] == reverse("diagnosis:patient_detail", args=[duplicate.pk])
    assert "Erase that record: the records merged into it are erased with it." in response.content.decode()
    assert Patient.objects.count() == 2


def test_the_access_log_export_lists_an_erased_records_entries_without_its_details(admin_client, patient, clinician,
                                                                                  boss):
    services.patient_access_record(user=clinician, patient=patient, what=PatientAccess.What.PATIENT,
                                   channel=PatientAccess.Channel.WEB)
    services.patient_erase(patient=patient, user=boss, reason="consent withdrawn", confirm_mrn="QX-7")

    csv = b"".join(admin_client.get(reverse("diagnosis:staff_access_log")).streaming_content).decode()
    member = admin_client.get(reverse("diagnosis:staff_member", args=[clinician.pk])).content.decode()

    [header, row] = csv.strip().splitlines()
    assert row.split(",")[1:5] == ["alice", "", "", f"(record erased {PatientErasure.objects.get().erased_at:%Y-%m-%d})"]
    assert "Quartermain" not in csv
    assert "Patient record of an erased record (erased " in member


def test_with_an_archive_set_the_confirmation_says_it_is_asked_to_delete_the_results_it_stored(
        admin_client, patient, clinician):
    Organization.objects.filter(pk=patient.organization_id).update(pacs_url="https://pacs.example.org/dicom-web")
    PacsDeliveryFactory(prediction=DonePredictionFactory(scan=ScanFactory(patient=patient, uploaded_by=clinician)),
                        status=PacsDelivery.Status.DELIVERED)

    html = admin_client.get(reverse("diagnosis:patient_erase", args=[patient.pk])).content.decode()

    assert ("The archive (PACS) stored 1 AI result of this patient. kidneyweb sends it a note asking it to delete it "
            "(IHE IOCM, \"Data Retention Policy Expired\")") in html
