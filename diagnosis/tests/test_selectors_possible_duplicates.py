"""Records that may be the same person: the same birth date and a name sharing a word, whatever the case, accents
or punctuation; records merged away and other organizations' patients are not suggested."""

import datetime

from diagnosis import selectors
from diagnosis.models import Patient

from .factories import PatientFactory

BORN = datetime.date(1944, 2, 29)


def _suggested(organization, name, birth_date=BORN, exclude=None):
    return selectors.patient_possible_duplicates(organization_id=organization.pk, name=name, birth_date=birth_date,
                                                 exclude=exclude)


def test_a_shared_name_word_on_the_same_birth_date_is_suggested_whatever_its_spelling(organization):
    jose = PatientFactory(organization=organization, name="José Álvarez-Ruiz", birth_date=BORN)

    assert _suggested(organization, "JOSE ALVAREZ") == [jose]
    assert _suggested(organization, "ruiz, m.") == [jose]
    assert _suggested(organization, "José Álvarez-Ruiz", birth_date=datetime.date(1944, 3, 1)) == []
    assert _suggested(organization, "Maria Lopez") == []
    assert _suggested(organization, "J. A.") == []  # initials say too little


def test_merged_records_the_record_itself_and_other_organizations_are_left_out(organization, other_organization, boss):
    kept = PatientFactory(organization=organization, name="Ada Example", birth_date=BORN)
    retired = PatientFactory(organization=organization, name="Ada Exmaple", birth_date=BORN)
    PatientFactory(organization=other_organization, name="Ada Example", birth_date=BORN)
    assert _suggested(organization, "Ada Example", exclude=kept) == [retired]

    Patient.objects.filter(pk=retired.pk).update(merged_into=kept)

    assert _suggested(organization, "Ada Example", exclude=kept) == []
    assert _suggested(organization, "Ada Example") == [kept]
