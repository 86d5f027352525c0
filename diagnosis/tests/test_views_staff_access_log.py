"""Administrators download their organization's access log as CSV for an audit, by date."""

import csv
import datetime
import io

from django.urls import reverse
from django.utils import timezone

from diagnosis.models import PatientAccess

from .factories import PatientFactory

URL = reverse("diagnosis:staff_access_log")


def _log(patient, user, day: datetime.date, what=PatientAccess.What.PATIENT) -> None:
    at = timezone.make_aware(datetime.datetime.combine(day, datetime.time(10, 30)))
    PatientAccess.objects.create(patient=patient, user=user, what=what, channel=PatientAccess.Channel.WEB, at=at)


def _rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_lists_the_organizations_accesses_oldest_first_within_the_days_asked(
        client, boss, nurse, organization, other_organization, other_clinician):
    patient = PatientFactory(organization=organization, mrn="MRN-1", name="Ada Patient")
    for day in (3, 1, 2, 9):
        _log(patient, nurse, datetime.date(2026, 11, day))
    _log(PatientFactory(organization=other_organization), other_clinician, datetime.date(2026, 11, 2))
    client.force_login(boss)

    response = client.get(URL, {"since": "2026-11-01", "until": "2026-11-03"})

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="access-log-' in response["Content-Disposition"] and "2026-11-01-2026-11-03.csv" in response["Content-Disposition"]
    header, *rows = _rows(response)
    assert header == ["time", "username", "user name", "patient MRN", "patient name", "opened", "scan", "channel"]
    assert [row[0][:10] for row in rows] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert rows[0][1:] == ["nurse", "", "MRN-1", "Ada Patient", "Patient record", "", "Web"]
    assert len(_rows(client.get(URL))) == 1 + 4  # no dates: all of it, this organization's only


def test_a_name_written_as_a_formula_stays_text_in_a_spreadsheet(client, boss, nurse, organization):
    _log(PatientFactory(organization=organization, name='=HYPERLINK("http://evil.example","x")'), nurse,
         datetime.date(2026, 11, 1))
    client.force_login(boss)

    row = _rows(client.get(URL))[1]

    assert row[4] == '\'=HYPERLINK("http://evil.example","x")'


def test_a_reversed_range_is_explained_on_the_members_page(client, boss):
    client.force_login(boss)

    response = client.get(URL, {"since": "2026-11-05", "until": "2026-11-01"})

    assert response.status_code == 400
    assert "The end date 2026-11-01 is before the start date 2026-11-05." in response.content.decode()


def test_clinicians_cannot_download_it(ui_client):
    assert ui_client.get(URL).status_code == 403
