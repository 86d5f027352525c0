"""Merging two records of one person on the web: an administrator names the record that stays, sees both side by
side, confirms, and lands on the record that stays; the merged record says where it went, and the merge is undone
from it."""

import datetime

import pytest
from django.urls import reverse

from diagnosis.models import Patient, PatientMerge, Scan

from .factories import PatientFactory, ScanFactory

BORN = datetime.date(1958, 11, 30)


@pytest.fixture
def kept(organization):
    return PatientFactory(organization=organization, name="Grace Hopper", mrn="K-100", birth_date=BORN)


@pytest.fixture
def duplicate(organization, clinician):
    patient = PatientFactory(organization=organization, name="Grace Hoper", mrn="ED-9", birth_date=BORN)
    ScanFactory(patient=patient, uploaded_by=clinician)
    return patient


@pytest.fixture
def admin_client(client, boss):
    client.force_login(boss)
    return client


def test_an_administrator_compares_both_records_then_merges(admin_client, kept, duplicate):
    page = admin_client.get(reverse("diagnosis:patient_detail", args=[duplicate.pk])).content.decode()
    assert "Merge into another record of this person" in page

    compare = admin_client.post(reverse("diagnosis:patient_merge", args=[duplicate.pk]),
                                {"mrn": " K-100 ", "reason": "registered twice in ED"})

    assert compare.status_code == 200
    html = compare.content.decode()
    assert "Merge two records of one person?" in html and "1 scan of the first record\n  moves to the second with its results" in html
    assert "Grace Hoper" in html and "Grace Hopper" in html and "Merge into MRN K-100" in html
    assert not PatientMerge.objects.exists()  # nothing moves before the confirmation

    done = admin_client.post(reverse("diagnosis:patient_merge", args=[duplicate.pk]),
                             {"mrn": "K-100", "reason": "registered twice in ED", "confirmed": "on"}, follow=True)

    assert done.redirect_chain[-1][0] == reverse("diagnosis:patient_detail", args=[kept.pk])
    html = done.content.decode()
    assert "The record with MRN ED-9 is merged into this one" in html
    assert "merged into this one" in html and "<bdi>registered twice in ED</bdi>" in html
    assert Scan.objects.get().patient == kept


def test_records_of_two_people_are_refused_before_the_comparison(admin_client, kept, duplicate):
    Patient.objects.filter(pk=kept.pk).update(birth_date=datetime.date(1958, 11, 3))

    response = admin_client.post(reverse("diagnosis:patient_merge", args=[duplicate.pk]),
                                 {"mrn": "K-100", "reason": "registered twice"})

    assert response.status_code == 400
    assert "different birth dates (1958-11-30 for MRN ED-9, 1958-11-03 for MRN K-100)" in response.content.decode()
    assert Scan.objects.get().patient == duplicate


def test_an_unknown_mrn_is_a_form_error(admin_client, duplicate, other_organization):
    PatientFactory(organization=other_organization, mrn="ELSE-1", birth_date=BORN)

    response = admin_client.post(reverse("diagnosis:patient_merge", args=[duplicate.pk]),
                                 {"mrn": "ELSE-1", "reason": "twice", "confirmed": "on"})

    assert response.status_code == 400
    assert "No patient with MRN &#x27;ELSE-1&#x27; in your organization." in response.content.decode()


def test_clinicians_see_no_merge_and_cannot_post_one(ui_client, kept, duplicate):
    assert "Merge into another record" not in ui_client.get(
        reverse("diagnosis:patient_detail", args=[duplicate.pk])).content.decode()

    response = ui_client.post(reverse("diagnosis:patient_merge", args=[duplicate.pk]),
                              {"mrn": "K-100", "reason": "twice", "confirmed": "on"})

    assert response.status_code == 403 and not PatientMerge.objects.exists()


def test_the_merged_record_says_where_it_went_and_takes_no_upload_or_edit(admin_client, kept, duplicate):
    admin_client.post(reverse("diagnosis:patient_merge", args=[duplicate.pk]),
                      {"mrn": "K-100", "reason": "registered twice", "confirmed": "on"})

    html = admin_client.get(reverse("diagnosis:patient_detail", args=[duplicate.pk])).content.decode()
    assert "This record (MRN ED-9) was merged into" in html and "Grace Hopper</bdi>'s record (MRN K-100)" in html
    assert "Upload CT slices" not in html and "Edit details" not in html and "Undo this merge" in html
    edit = admin_client.get(reverse("diagnosis:patient_edit", args=[duplicate.pk]), follow=True)
    assert "Correct the details there." in edit.content.decode()
    # The list leaves it out; a search for its MRN says where it went.
    listing = admin_client.get(reverse("diagnosis:patient_list"), {"q": "ED-9"}).content.decode()
    assert "The record with MRN ED-9 was merged into" in listing and "(MRN K-100)</a>" in listing
    assert reverse("diagnosis:patient_detail", args=[duplicate.pk]) not in listing


def test_undoing_the_merge_on_the_merged_record_brings_its_scans_back(admin_client, kept, duplicate):
    admin_client.post(reverse("diagnosis:patient_merge", args=[duplicate.pk]),
                      {"mrn": "K-100", "reason": "registered twice", "confirmed": "on"})

    empty = admin_client.post(reverse("diagnosis:patient_unmerge", args=[duplicate.pk]), {"reason": " "})
    assert empty.status_code == 400 and Scan.objects.get().patient == kept

    response = admin_client.post(reverse("diagnosis:patient_unmerge", args=[duplicate.pk]),
                                 {"reason": "two people"}, follow=True)

    assert "The merge is undone" in response.content.decode()
    assert Scan.objects.get().patient == duplicate and Patient.objects.get(pk=duplicate.pk).merged_into is None
    kept_page = admin_client.get(reverse("diagnosis:patient_detail", args=[kept.pk])).content.decode()
    assert "by boss: <bdi>two people</bdi>" in kept_page  # the merge is listed with its undoing
