"""The access log records who opened which patient's data, once a minute per opening."""

import datetime

import pytest
from django.utils import timezone

from diagnosis import selectors, services
from diagnosis.models import PatientAccess

from .factories import PatientFactory, ScanFactory


def record(user, patient, what="patient", channel="web", scan=None):
    return services.patient_access_record(user=user, patient=patient, what=what, channel=channel, scan=scan)


def test_an_opening_is_logged_with_who_what_and_how(clinician, organization):
    patient = PatientFactory(organization=organization)
    scan = ScanFactory(patient=patient, uploaded_by=clinician)

    access = record(clinician, patient, what="report", channel="api", scan=scan)

    assert (access.user, access.patient, access.scan, access.what, access.channel) == (
        clinician, patient, scan, "report", "api")
    assert list(selectors.patient_accesses(patient=patient)) == [access]


def test_the_same_opening_within_a_minute_is_logged_once_but_another_kind_is_logged(clinician, organization):
    patient = PatientFactory(organization=organization)
    first = record(clinician, patient)

    assert record(clinician, patient) is None
    assert record(clinician, patient, channel="api") is not None
    PatientAccess.objects.filter(pk=first.pk).update(at=timezone.now() - datetime.timedelta(seconds=61))
    assert record(clinician, patient) is not None
    assert PatientAccess.objects.filter(patient=patient).count() == 3


def test_the_latest_openings_come_first(clinician, organization):
    patient = PatientFactory(organization=organization)
    now = timezone.now()
    PatientAccess.objects.bulk_create([
        PatientAccess(patient=patient, user=clinician, what="patient", channel="web", at=now - datetime.timedelta(hours=i))
        for i in (3, 0, 7, 1)
    ])

    ages = [now - access.at for access in selectors.patient_accesses(patient=patient)]

    assert ages == [datetime.timedelta(hours=i) for i in (0, 1, 3, 7)]


def test_an_unknown_kind_of_opening_is_refused(clinician, organization):
    with pytest.raises(ValueError, match="unknown access"):
        record(clinician, PatientFactory(organization=organization), what="glance")
