"""GET /api/v1/accesses/: the organization's whole access log for administrators, by days, oldest first,
as the published schema says."""

import datetime

from django.utils import timezone

from diagnosis.models import PatientAccess

from . import openapi
from .factories import PatientFactory, token_client


def _log(patient, user, day: int) -> PatientAccess:
    at = timezone.make_aware(datetime.datetime(2026, 11, day, 9, 0))
    return PatientAccess.objects.create(patient=patient, user=user, what=PatientAccess.What.SCAN,
                                        channel=PatientAccess.Channel.API, at=at)


def test_administrators_get_the_organizations_accesses_oldest_first_for_the_days_asked(
        client, organization, boss, nurse, other_organization, other_clinician):
    patient = PatientFactory(organization=organization, mrn="MRN-7")
    for day in (4, 2, 3):
        _log(patient, nurse, day)
    _log(PatientFactory(organization=other_organization), other_clinician, 3)
    api = token_client(boss)

    response = api.get("/api/v1/accesses/", {"since": "2026-11-02", "until": "2026-11-03"})

    assert response.status_code == 200
    assert openapi.mismatches(openapi.load(client), "/api/v1/accesses/", "get", response) == []
    rows = response.json()["results"]
    assert [row["at"][:10] for row in rows] == ["2026-11-02", "2026-11-03"]
    assert {(row["user"], row["patient"], row["patient_mrn"], row["what"], row["channel"]) for row in rows} == {
        ("nurse", patient.pk, "MRN-7", "scan", "api")}
    assert response.json()["count"] == 2 and api.get("/api/v1/accesses/").json()["count"] == 3


def test_a_reversed_range_is_refused_with_the_reason(boss):
    response = token_client(boss).get("/api/v1/accesses/", {"since": "2026-11-05", "until": "2026-11-01"})

    assert response.status_code == 400
    assert response.json() == {"until": ["The end date 2026-11-01 is before the start date 2026-11-05."]}


def test_clinicians_are_refused(api_client):
    response = api_client.get("/api/v1/accesses/")

    assert response.status_code == 403 and "Only administrators" in response.json()["detail"]
