"""Every id a form field names in aria-describedby (its help text, its errors) is on the page."""

import re

from django.urls import reverse

from .factories import DonePredictionFactory, PatientFactory, ScanFactory


def missing_descriptions(page: str) -> set[str]:
    named = {name for value in re.findall(r'aria-describedby="([^"]+)"', page) for name in value.split()}
    present = set(re.findall(r'\sid="([^"]+)"', page))
    return named - present


def test_a_refused_new_patient_form_links_help_and_errors_to_their_fields(ui_client):
    page = ui_client.post(reverse("diagnosis:patient_create"), {"mrn": "", "name": ""}).content.decode()

    assert 'aria-describedby="id_mrn_helptext id_mrn_error"' in page
    assert missing_descriptions(page) == set()


def test_a_refused_upload_links_its_error_and_help(ui_client, organization):
    patient = PatientFactory(organization=organization)

    page = ui_client.post(reverse("diagnosis:scan_upload", args=[patient.pk]), {}).content.decode()

    assert "id_image_error" in page and missing_descriptions(page) == set()


def test_a_worklist_with_a_bad_date_links_the_error(ui_client):
    page = ui_client.get(reverse("diagnosis:home"), {"uploaded_from": "yesterday"}).content.decode()

    assert "id_uploaded_from_error" in page and missing_descriptions(page) == set()


def test_a_refused_review_links_its_error(ui_client, organization):
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    DonePredictionFactory(scan=scan)

    page = ui_client.post(reverse("diagnosis:scan_review", args=[scan.pk]), {"label": "Banana"}).content.decode()

    assert missing_descriptions(page) == set()
