"""The patient's page sums up each DICOM study: how many slices, what the AI read and the reviewers said, and the
slice to look at first."""

import datetime

from django.urls import reverse

from .factories import DonePredictionFactory, PatientFactory, ReviewFactory, ScanFactory

STUDY = "1.2.826.0.1.3680043.8.498.51"


def test_the_patients_page_sums_up_each_study_and_links_the_slice_to_look_at_first(ui_client, organization):
    patient = PatientFactory(organization=organization)
    stone = DonePredictionFactory(scan=ScanFactory(
        patient=patient, dicom_study_uid=STUDY, dicom_accession_number="A-51", dicom_study_date=datetime.date(2026, 12, 5),
        dicom_study_time=datetime.time(9, 30), dicom_study_description="CT KUB"), label="Stone", top=0.88)
    for _ in range(2):
        ReviewFactory(prediction=DonePredictionFactory(
            scan=ScanFactory(patient=patient, dicom_study_uid=STUDY), label="Normal", top=0.96))

    page = ui_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()

    table = " ".join(page.split('id="studies"')[1].split("</section>")[0].split())
    assert "<strong>2026-12-05 09:30</strong> <bdi>CT KUB</bdi>" in table
    assert "Accession A-51" in table and STUDY in table
    assert "<td>3</td>" in table and "Stone 1 · Normal 2" in table and "2 of 3: Normal 2" in table
    assert f'<a href="/scans/{stone.scan.pk}/">scan #{stone.scan.pk}</a>: Stone 88%' in table


def test_a_patient_without_dicom_studies_has_no_studies_section(ui_client, organization):
    patient = PatientFactory(organization=organization)
    DonePredictionFactory(scan=ScanFactory(patient=patient), label="Tumor")  # a PNG upload

    page = ui_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()

    assert 'id="studies"' not in page and "Tumor" in page
