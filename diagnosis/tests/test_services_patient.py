import datetime

import pytest
from django.core.exceptions import ValidationError

from diagnosis import services
from diagnosis.models import Patient

from .factories import INVALID_PATIENT_DETAILS


def create(organization, **overrides):
    values = {"mrn": "A-100", "name": "Ada Lovelace", "birth_date": datetime.date(1960, 12, 10), "sex": "F"}
    values.update(overrides)
    return services.patient_create(organization=organization, **values)


def test_patient_create_stores_the_patient_in_the_organization(organization):
    patient = create(organization, mrn="  A-100 ", name=" Ada Lovelace ")

    patient.refresh_from_db()
    assert patient.organization == organization
    assert (patient.mrn, patient.name, patient.sex) == ("A-100", "Ada Lovelace", "F")


def test_duplicate_mrn_in_the_same_organization_is_a_validation_error_on_mrn(organization):
    create(organization)

    with pytest.raises(ValidationError) as error:
        create(organization, name="Someone Else")

    assert "mrn" in error.value.message_dict
    assert "already exists" in error.value.message_dict["mrn"][0]
    assert Patient.objects.filter(organization=organization).count() == 1


def test_the_same_mrn_is_allowed_in_another_organization(organization, other_organization):
    create(organization)
    create(other_organization)

    assert Patient.objects.filter(mrn="A-100").count() == 2


@pytest.mark.parametrize(("field", "overrides"), INVALID_PATIENT_DETAILS)
def test_invalid_values_are_refused_with_the_field_named(organization, field, overrides):
    with pytest.raises(ValidationError) as error:
        create(organization, **overrides)

    assert field in error.value.message_dict
    assert not Patient.objects.exists()
