"""Names and comments in Arabic or Hebrew: typed right to left, and isolated where they sit beside other
text, so that "محمد علي (MRN 42)" does not pull the MRN's digits into the name."""

import re

from django.urls import reverse

from .factories import DonePredictionFactory, PatientFactory, ReviewFactory, ScanFactory

NAME = "محمد علي"


def field_tag(page: str, name: str) -> str:
    return re.search(rf'<(?:input|textarea)[^>]*name="{name}"[^>]*>', page).group(0)


def test_names_and_comments_are_typed_in_the_direction_of_their_script(ui_client, organization, clinician):
    patient = PatientFactory(organization=organization, name=NAME)
    scan = ScanFactory(patient=patient, uploaded_by=clinician)  # the uploader may withdraw it
    DonePredictionFactory(scan=scan)

    new_patient = ui_client.get(reverse("diagnosis:patient_create")).content.decode()
    scan_page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()

    assert 'dir="auto"' in field_tag(new_patient, "name")
    assert 'dir="auto"' in field_tag(scan_page, "comment")
    assert 'dir="auto"' in field_tag(scan_page, "reason")  # withdrawing the scan


def test_a_name_beside_its_mrn_and_a_comment_are_isolated_from_the_text_around_them(ui_client, organization, clinician):
    patient = PatientFactory(organization=organization, name=NAME, mrn="42")
    scan = ScanFactory(patient=patient)
    ReviewFactory(prediction=DonePredictionFactory(scan=scan), reviewed_by=clinician, comment="حصوة 4 مم")

    scan_page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    edit_page = ui_client.get(reverse("diagnosis:patient_edit", args=[patient.pk])).content.decode()

    assert f"← <bdi>{NAME}</bdi> (MRN 42)" in scan_page
    assert '<q dir="auto">حصوة 4 مم</q>' in scan_page
    assert f"Edit details of <bdi>{NAME}</bdi>" in edit_page
