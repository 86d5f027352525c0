import datetime

import pytest
from django.core.exceptions import ValidationError

from diagnosis import services
from diagnosis.models import Patient, PatientChange

from .factories import INVALID_PATIENT_DETAILS, PatientFactory, ScanFactory, UserFactory


@pytest.fixture
def editor(db):
    return UserFactory(username="editor")


def details(patient, **overrides):
    values = {"mrn": patient.mrn, "name": patient.name, "birth_date": patient.birth_date, "sex": patient.sex}
    values.update(overrides)
    return values


def test_a_mistyped_name_and_mrn_are_corrected_and_the_scans_stay_with_the_patient(editor, organization):
    patient = PatientFactory(organization=organization, mrn="A-10O", name="Ada Lovelce", sex="U")
    before_birth, before_sex = patient.birth_date, patient.sex
    scan = ScanFactory(patient=patient)

    services.patient_update(patient=patient, changed_by=editor, **details(patient, mrn=" A-100 ", name=" Ada Lovelace ",
                                                       birth_date=datetime.date(1960, 12, 10), sex="F"))

    patient.refresh_from_db()
    assert (patient.mrn, patient.name, patient.birth_date, patient.sex) == (
        "A-100", "Ada Lovelace", datetime.date(1960, 12, 10), "F")
    scan.refresh_from_db()
    assert scan.patient_id == patient.pk
    change = PatientChange.objects.get(patient=patient)
    assert change.changed_by == editor
    assert change.before == {"mrn": "A-10O", "name": "Ada Lovelce", "birth_date": before_birth.isoformat(),
                             "sex": before_sex}
    assert change.after == {"mrn": "A-100", "name": "Ada Lovelace", "birth_date": "1960-12-10", "sex": "F"}


def test_saving_unchanged_details_records_no_correction(editor, organization):
    patient = PatientFactory(organization=organization)

    services.patient_update(patient=patient, changed_by=editor, **details(patient))

    assert not PatientChange.objects.exists()


def test_only_the_changed_fields_are_recorded(editor, organization):
    patient = PatientFactory(organization=organization, name="Ada Lovelce")

    services.patient_update(patient=patient, changed_by=editor, **details(patient, name="Ada Lovelace"))

    change = PatientChange.objects.get()
    assert (change.before, change.after) == ({"name": "Ada Lovelce"}, {"name": "Ada Lovelace"})
    assert change.fields == [("Name", "Ada Lovelce", "Ada Lovelace")]


def test_keeping_the_own_mrn_is_not_a_duplicate(editor, organization):
    patient = PatientFactory(organization=organization, mrn="A-100")

    services.patient_update(patient=patient, changed_by=editor, **details(patient, name="New Name"))

    assert Patient.objects.get(pk=patient.pk).name == "New Name"


def test_another_patients_mrn_is_refused_and_nothing_changes(editor, organization):
    PatientFactory(organization=organization, mrn="B-200")
    patient = PatientFactory(organization=organization, mrn="A-100", name="Ada Lovelace")

    with pytest.raises(ValidationError) as error:
        services.patient_update(patient=patient, changed_by=editor, **details(patient, mrn="B-200", name="Changed"))

    assert "already exists" in error.value.message_dict["mrn"][0]
    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.mrn, stored.name) == ("A-100", "Ada Lovelace")
    assert (patient.mrn, patient.name) == ("A-100", "Ada Lovelace")  # the object says what is stored
    assert not PatientChange.objects.exists()


def test_the_same_mrn_in_another_organization_is_allowed(editor, organization, other_organization):
    PatientFactory(organization=other_organization, mrn="B-200")
    patient = PatientFactory(organization=organization, mrn="A-100")

    services.patient_update(patient=patient, changed_by=editor, **details(patient, mrn="B-200"))

    assert Patient.objects.get(pk=patient.pk).mrn == "B-200"


@pytest.mark.parametrize(("field", "overrides"), INVALID_PATIENT_DETAILS)
def test_invalid_values_are_refused_with_the_field_named_and_nothing_is_written(
        editor, organization, field, overrides):
    patient = PatientFactory(organization=organization, mrn="A-100", name="Ada Lovelace")

    with pytest.raises(ValidationError) as error:
        services.patient_update(patient=patient, changed_by=editor, **details(patient, **overrides))

    assert field in error.value.message_dict
    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.mrn, stored.name) == ("A-100", "Ada Lovelace")


def test_a_correction_made_on_a_stale_copy_records_what_was_stored_before_it(editor, organization):
    patient = PatientFactory(organization=organization, name="Ada Lovelce")
    stale = Patient.objects.get(pk=patient.pk)  # a second page opened before the first correction

    services.patient_update(patient=patient, changed_by=editor, **details(patient, name="Ada Lovelace"))
    returned = services.patient_update(patient=stale, changed_by=editor, **details(stale, name="Ada King"))

    assert returned.name == "Ada King" and stale.name == "Ada Lovelce"  # the object passed in is left alone
    assert [c.before for c in PatientChange.objects.order_by("id")] == [{"name": "Ada Lovelce"},
                                                                         {"name": "Ada Lovelace"}]


def test_a_corrected_sex_is_shown_by_its_name(editor, organization):
    patient = PatientFactory(organization=organization, sex="U")

    services.patient_update(patient=patient, changed_by=editor, **details(patient, sex="F"))

    assert PatientChange.objects.get().fields == [("Sex", "Unknown", "Female")]


def test_a_field_left_out_keeps_the_value_a_colleague_just_stored(editor, organization):
    patient = PatientFactory(organization=organization, mrn="A1", name="Jane Q Doe")
    stale = Patient.objects.get(pk=patient.pk)
    services.patient_update(patient=patient, changed_by=editor, mrn="A1-CORRECT")

    services.patient_update(patient=stale, changed_by=editor, name="Jane Q. Doe")

    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.mrn, stored.name) == ("A1-CORRECT", "Jane Q. Doe")


def test_an_edit_of_details_that_changed_since_they_were_read_is_refused_and_nothing_is_written(editor, organization):
    from diagnosis import selectors

    patient = PatientFactory(organization=organization, mrn="A1", name="Jane Q Doe")
    seen = selectors.patient_version(patient=patient)
    colleague = UserFactory(username="carol")
    services.patient_update(patient=patient, changed_by=colleague, mrn="A1-CORRECT")

    with pytest.raises(services.PatientChangedMeanwhile, match="carol changed this patient's details: now MRN A1-CORRECT"):
        services.patient_update(patient=patient, changed_by=editor, expected_version=seen, **details(patient, name="Jane"))

    stored = Patient.objects.get(pk=patient.pk)
    assert (stored.mrn, stored.name) == ("A1-CORRECT", "Jane Q Doe")
    assert PatientChange.objects.count() == 1

    fresh = selectors.patient_version(patient=stored)
    services.patient_update(patient=stored, changed_by=editor, expected_version=fresh, name="Jane")
    assert Patient.objects.get(pk=patient.pk).name == "Jane"


def test_a_patient_stored_with_a_birth_date_before_1900_can_still_be_corrected(editor, organization):
    patient = PatientFactory(organization=organization, name="Old Record", birth_date=datetime.date(1895, 3, 1))

    services.patient_update(patient=patient, changed_by=editor, name="Old Record Corrected")

    assert Patient.objects.get(pk=patient.pk).name == "Old Record Corrected"
    with pytest.raises(ValidationError, match="before 1900"):
        services.patient_update(patient=patient, changed_by=editor, birth_date=datetime.date(1896, 3, 1))
