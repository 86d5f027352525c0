"""Records that may be the same person: the same birth date and a similar name (two words in common, one name
within the other, or a close spelling), whatever the case, accents or punctuation; one shared first name is not
enough, and records merged away and other organizations' patients are not suggested."""

import datetime

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from diagnosis import selectors, services
from diagnosis.models import Patient, PatientDistinct

from .factories import MembershipFactory, PatientFactory

BORN = datetime.date(1944, 2, 29)


def _suggested(organization, name, birth_date=BORN, exclude=None):
    return selectors.patient_possible_duplicates(organization_id=organization.pk, name=name, birth_date=birth_date,
                                                 exclude=exclude)


def test_a_similar_name_on_the_same_birth_date_is_suggested_whatever_its_spelling(organization):
    jose = PatientFactory(organization=organization, name="José Álvarez-Ruiz", birth_date=BORN)

    assert _suggested(organization, "JOSE ALVAREZ") == [jose]
    assert _suggested(organization, "ruiz, m.") == [jose]
    assert _suggested(organization, "José Álvarez-Ruiz", birth_date=datetime.date(1944, 3, 1)) == []
    assert _suggested(organization, "Maria Lopez") == []
    assert _suggested(organization, "J. A.") == []  # initials say too little
    assert _suggested(organization, "José Garcia") == []  # one first name in common is not enough
    assert _suggested(organization, "Jose Alvares-Ruis") == [jose]  # a close spelling is


def test_merged_records_the_record_itself_and_other_organizations_are_left_out(organization, other_organization, boss):
    kept = PatientFactory(organization=organization, name="Ada Example", birth_date=BORN)
    retired = PatientFactory(organization=organization, name="Ada Exmaple", birth_date=BORN)
    PatientFactory(organization=other_organization, name="Ada Example", birth_date=BORN)
    assert _suggested(organization, "Ada Example", exclude=kept) == [retired]

    Patient.objects.filter(pk=retired.pk).update(merged_into=kept)

    assert _suggested(organization, "Ada Example", exclude=kept) == []
    assert _suggested(organization, "Ada Example") == [kept]


def test_the_organizations_likely_pairs_are_listed_older_record_first(organization, other_organization):
    older = PatientFactory(organization=organization, name="Ada Example", birth_date=BORN)
    newer = PatientFactory(organization=organization, name="ADA EXMAPLE", birth_date=BORN)
    PatientFactory(organization=organization, name="Bob Other", birth_date=BORN)  # same date, another name
    PatientFactory(organization=organization, name="Ada Lopez", birth_date=BORN)  # a first name in common
    PatientFactory(organization=organization, name="Ada Example", birth_date=datetime.date(1950, 1, 1))
    PatientFactory(organization=other_organization, name="Ada Example", birth_date=BORN)

    pairs = selectors.patient_duplicate_pairs(organization_id=organization.pk)

    assert pairs == [(older, newer)]
    Patient.objects.filter(pk=newer.pk).update(merged_into=older)
    assert selectors.patient_duplicate_pairs(organization_id=organization.pk) == []


def test_a_pair_found_to_be_two_people_is_not_suggested_again(organization, boss):
    older = PatientFactory(organization=organization, name="Ada Example", birth_date=BORN)
    newer = PatientFactory(organization=organization, name="Ada Exmaple", birth_date=BORN)
    third = PatientFactory(organization=organization, name="Ada Example", birth_date=BORN)

    services.patient_pair_mark_distinct(patient=newer, other=older, user=boss)
    services.patient_pair_mark_distinct(patient=older, other=newer, user=boss)  # once per pair, either way round

    assert PatientDistinct.objects.get().first == older
    assert _suggested(organization, "Ada Example", exclude=older) == [third]
    assert (older, newer) not in selectors.patient_duplicate_pairs(organization_id=organization.pk)
    assert (older, third) in selectors.patient_duplicate_pairs(organization_id=organization.pk)


def test_only_administrators_find_two_records_to_be_two_people(organization, clinician):
    a, b = PatientFactory(organization=organization), PatientFactory(organization=organization)

    with pytest.raises(PermissionDenied):
        services.patient_pair_mark_distinct(patient=a, other=b, user=clinician)
    with pytest.raises(ValidationError):
        services.patient_pair_mark_distinct(patient=a, other=a, user=MembershipFactory(
            organization=organization, role="admin").user)
    assert not PatientDistinct.objects.exists()
