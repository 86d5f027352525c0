"""Correcting a patient's details from the patient page."""

from django.urls import reverse

from diagnosis.models import Patient

from .factories import PatientFactory, ScanFactory

DETAILS = {"mrn": "A-1", "name": "Ada Lovelace", "birth_date": "1960-12-10", "sex": "F"}


def test_the_patient_page_links_to_a_form_filled_with_the_current_details(ui_client, organization):
    patient = PatientFactory(organization=organization, mrn="A-1", name="Ada Lovelce")
    edit_url = reverse("diagnosis:patient_edit", args=[patient.pk])

    assert edit_url in ui_client.get(reverse("diagnosis:patient_detail", args=[patient.pk])).content.decode()
    form = ui_client.get(edit_url).content.decode()
    assert 'value="Ada Lovelce"' in form and 'value="A-1"' in form and "Save details" in form


def test_saving_corrected_details_returns_to_the_patient_page_with_the_scans_kept(ui_client, clinician, organization):
    patient = PatientFactory(organization=organization, mrn="A-1", name="Ada Lovelce")
    scan = ScanFactory(patient=patient)

    response = ui_client.post(reverse("diagnosis:patient_edit", args=[patient.pk]), DETAILS)

    assert response["Location"] == reverse("diagnosis:patient_detail", args=[patient.pk])
    assert Patient.objects.get(pk=patient.pk).name == "Ada Lovelace"
    page = ui_client.get(response["Location"]).content.decode()
    assert "Details of Ada Lovelace saved." in page
    assert reverse("diagnosis:scan_detail", args=[scan.pk]) in page
    # The correction stays visible on the patient's page: when, who, and the old and new values.
    assert "Corrections" in page and "Name “Ada Lovelce” → “Ada Lovelace”" in page
    assert clinician.username in page


def test_another_patients_mrn_is_a_form_error_and_nothing_changes(ui_client, organization):
    PatientFactory(organization=organization, mrn="B-2")
    patient = PatientFactory(organization=organization, mrn="A-1", name="Ada Lovelace")

    response = ui_client.post(reverse("diagnosis:patient_edit", args=[patient.pk]),
                              {**DETAILS, "mrn": "B-2", "name": "Changed"})

    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.mrn, stored.name) == ("A-1", "Ada Lovelace")


def test_an_empty_name_is_a_form_error(ui_client, organization):
    patient = PatientFactory(organization=organization, mrn="A-1", name="Ada Lovelace")

    response = ui_client.post(reverse("diagnosis:patient_edit", args=[patient.pk]), {**DETAILS, "name": ""})

    assert response.status_code == 400
    assert Patient.objects.get(pk=patient.pk).name == "Ada Lovelace"


def test_a_colleagues_correction_saved_while_the_form_was_open_is_not_overwritten(ui_client, organization):
    from diagnosis import services
    from .factories import UserFactory

    patient = PatientFactory(organization=organization, mrn="A1", name="Jane Q Doe", birth_date="1960-12-10", sex="F")
    url = reverse("diagnosis:patient_edit", args=[patient.pk])
    form = ui_client.get(url).content.decode()
    seen = form.split('name="expected_version" value="', 1)[1].split('"', 1)[0]
    services.patient_update(patient=patient, changed_by=UserFactory(username="carol"), mrn="A1-CORRECT")

    mine = {"mrn": "A1", "name": "Jane Q. Doe", "birth_date": "1960-12-10", "sex": "F", "expected_version": seen}
    response = ui_client.post(url, mine)

    assert response.status_code == 400
    page = response.content.decode()
    assert "carol changed this patient&#x27;s details: now MRN A1-CORRECT" in page and 'value="Jane Q. Doe"' in page
    assert Patient.objects.get(pk=patient.pk).mrn == "A1-CORRECT"
    # Saving again after seeing the warning is a knowing choice.
    again = page.split('name="expected_version" value="', 1)[1].split('"', 1)[0]
    assert ui_client.post(url, {**mine, "expected_version": again}).status_code == 302
    assert (Patient.objects.get(pk=patient.pk).mrn, Patient.objects.get(pk=patient.pk).name) == ("A1", "Jane Q. Doe")


def test_several_mistakes_are_named_at_once(ui_client, organization):
    patient = PatientFactory(organization=organization, name="Ada Lovelace")

    response = ui_client.post(reverse("diagnosis:patient_edit", args=[patient.pk]),
                              {**DETAILS, "name": "", "birth_date": "2999-01-01"})

    page = response.content.decode()
    assert response.status_code == 400
    assert "This field is required." in page and "The birth date is in the future." in page
