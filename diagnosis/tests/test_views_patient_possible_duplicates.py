"""Registering a patient who may be registered already: the form names the likely earlier record and registers
only when asked to anyway; an administrator sees such records on a patient's page, to merge them."""

import datetime

from django.urls import reverse

from diagnosis.models import Patient, PatientDistinct

from .factories import PatientFactory

BORN = datetime.date(1980, 7, 4)
FORM = {"mrn": "ED-31", "name": "Jon Smith", "birth_date": "1980-07-04", "sex": "M"}


def test_a_likely_earlier_record_is_named_before_a_second_one_is_registered(ui_client, organization):
    earlier = PatientFactory(organization=organization, name="John Smith", mrn="H-1", birth_date=BORN)

    warned = ui_client.post(reverse("diagnosis:patient_create"), FORM)

    html = warned.content.decode()
    assert warned.status_code == 200 and "Is this patient registered already?" in html
    assert f'href="{reverse("diagnosis:patient_detail", args=[earlier.pk])}"' in html and "(MRN H-1)" in html
    assert "Register a new patient anyway" in html and 'value="ED-31"' in html  # the form keeps what was typed
    assert not Patient.objects.filter(mrn="ED-31").exists()

    registered = ui_client.post(reverse("diagnosis:patient_create"), {**FORM, "register_anyway": "on"})

    patient = Patient.objects.get(mrn="ED-31")
    assert registered.status_code == 302 and registered["Location"] == reverse("diagnosis:patient_detail", args=[patient.pk])


def test_a_patient_unlike_any_other_is_registered_at_once(ui_client, organization):
    PatientFactory(organization=organization, name="John Smith", birth_date=datetime.date(1980, 7, 5))

    response = ui_client.post(reverse("diagnosis:patient_create"), FORM)

    assert response.status_code == 302 and Patient.objects.filter(mrn="ED-31").exists()


def test_administrators_see_possible_duplicates_on_a_patients_page(ui_client, boss, organization):
    first = PatientFactory(organization=organization, name="Jon Smith", mrn="ED-31", birth_date=BORN)
    second = PatientFactory(organization=organization, name="John Smith", mrn="H-1", birth_date=BORN)
    page = reverse("diagnosis:patient_detail", args=[first.pk])
    assert "Perhaps the same person" not in ui_client.get(page).content.decode()  # a clinician cannot merge

    ui_client.force_login(boss)
    html = ui_client.get(page).content.decode()

    assert "Perhaps the same person" in html and f'href="{reverse("diagnosis:patient_detail", args=[second.pk])}"' in html


def test_administrators_list_the_organizations_possible_duplicates(ui_client, boss, organization):
    first = PatientFactory(organization=organization, name="Jon Smith", mrn="ED-31", birth_date=BORN)
    PatientFactory(organization=organization, name="John Smith", mrn="H-1", birth_date=BORN)
    url = reverse("diagnosis:patient_duplicates")
    assert ui_client.get(url).status_code == 403

    ui_client.force_login(boss)
    html = ui_client.get(url).content.decode()

    assert "(MRN ED-31," in html and "(MRN H-1," in html
    assert f'href="{reverse("diagnosis:patient_detail", args=[first.pk])}"' in html
    assert f'href="{url}"' in ui_client.get(reverse("diagnosis:patient_list")).content.decode()


def test_two_people_is_recorded_from_the_list_and_the_pair_leaves_it(ui_client, boss, organization):
    first = PatientFactory(organization=organization, name="Jon Smith", mrn="ED-31", birth_date=BORN)
    later = PatientFactory(organization=organization, name="John Smith", mrn="H-1", birth_date=BORN)
    ui_client.force_login(boss)

    response = ui_client.post(reverse("diagnosis:patient_mark_distinct", args=[first.pk, later.pk]),
                              {"back": "duplicates"}, follow=True)

    html = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("diagnosis:patient_duplicates")
    assert "are recorded as two people" in html and "(MRN H-1," not in html
    assert "Perhaps the same person" not in ui_client.get(
        reverse("diagnosis:patient_detail", args=[first.pk])).content.decode()


def test_a_two_people_finding_is_listed_on_both_records_and_taken_back_there(ui_client, boss, organization):
    first = PatientFactory(organization=organization, name="Jon Smith", mrn="ED-31", birth_date=BORN)
    later = PatientFactory(organization=organization, name="John Smith", mrn="H-1", birth_date=BORN)
    ui_client.force_login(boss)
    ui_client.post(reverse("diagnosis:patient_mark_distinct", args=[first.pk, later.pk]))

    html = ui_client.get(reverse("diagnosis:patient_detail", args=[later.pk])).content.decode()
    assert "Another person than" in html and "(MRN ED-31)</a>" in html and "found by boss" in html

    response = ui_client.post(reverse("diagnosis:patient_mark_distinct", args=[later.pk, first.pk]), {"undo": "on"},
                              follow=True)

    html = response.content.decode()
    assert "are no longer recorded as two people" in html and "Another person than" not in html
    assert "Perhaps the same person" in html and not PatientDistinct.objects.exists()


def test_a_record_cannot_be_two_people_with_itself_and_the_page_says_so(ui_client, boss, organization):
    patient = PatientFactory(organization=organization, name="Jon Smith", mrn="ED-31", birth_date=BORN)
    ui_client.force_login(boss)

    response = ui_client.post(reverse("diagnosis:patient_mark_distinct", args=[patient.pk, patient.pk]), follow=True)

    assert response.status_code == 200
    assert "No such other patient in your organization." in response.content.decode()
    assert not PatientDistinct.objects.exists()
