"""Two clinicians reading one worklist: a scan a colleague opened on the web in the last 10 minutes says who has
it open, and reading on passes it by while others wait. Nothing is locked."""

import datetime

from django.urls import reverse
from django.utils import timezone

from diagnosis import selectors, services
from diagnosis.models import PatientAccess, Review

from .factories import DonePredictionFactory, PatientFactory, ScanFactory


def _scan(organization, label, hours_ago=1):
    scan = ScanFactory(patient=PatientFactory(organization=organization),
                       uploaded_at=timezone.now() - datetime.timedelta(hours=hours_ago))
    DonePredictionFactory(scan=scan, label=label, top=0.93)
    return scan


def _opened(scan, user, *, minutes_ago=0, channel=PatientAccess.Channel.WEB):
    return PatientAccess.objects.create(patient=scan.patient, scan=scan, user=user, what=PatientAccess.What.SCAN,
                                        channel=channel, at=timezone.now() - datetime.timedelta(minutes=minutes_ago))


def test_the_worklist_says_which_colleague_has_a_scan_open(organization, clinician, nurse):
    tumour, stone = _scan(organization, "Tumor"), _scan(organization, "Stone")
    _opened(tumour, nurse, minutes_ago=3)
    _opened(stone, clinician)  # one's own opening is not a colleague's

    rows = {scan.pk: scan for scan in selectors.worklist(user=clinician)}

    assert rows[tumour.pk].opened_by == "nurse" and rows[tumour.pk].opened_at is not None
    assert rows[stone.pk].opened_by is None
    assert {scan.pk: scan.opened_by for scan in selectors.worklist(user=nurse)} == {tumour.pk: None, stone.pk: "alice"}


def test_an_old_opening_or_one_through_the_api_does_not_count(organization, clinician, nurse):
    tumour, stone = _scan(organization, "Tumor"), _scan(organization, "Stone")
    _opened(tumour, nurse, minutes_ago=11)
    _opened(stone, nurse, channel=PatientAccess.Channel.API)

    assert [scan.opened_by for scan in selectors.worklist(user=clinician)] == [None, None]


def test_reading_on_passes_by_a_scan_a_colleague_has_open_while_others_wait(ui_client, organization, clinician, nurse):
    reading = _scan(organization, "Normal")
    tumour = _scan(organization, "Tumor", hours_ago=5)
    stone = _scan(organization, "Stone", hours_ago=2)
    _opened(tumour, nurse, minutes_ago=2)

    response = ui_client.post(reverse("diagnosis:scan_review", args=[reading.pk]), {"label": "Normal", "then": "next"})
    assert response["Location"] == reverse("diagnosis:scan_detail", args=[stone.pk])

    # With nothing else left, the colleague's scan is next after all: it is not locked.
    response = ui_client.post(reverse("diagnosis:scan_review", args=[stone.pk]), {"label": "Stone", "then": "next"})
    assert response["Location"] == reverse("diagnosis:scan_detail", args=[tumour.pk])
    assert Review.objects.count() == 2


def test_the_scan_page_says_a_colleague_may_be_reading_it(ui_client, organization, clinician, nurse):
    from django.test import Client

    scan = _scan(organization, "Tumor")
    colleague = Client()
    colleague.force_login(nurse)
    colleague.get(reverse("diagnosis:scan_detail", args=[scan.pk]))

    page = ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    worklist = ui_client.get(reverse("diagnosis:home")).content.decode()

    assert "<strong>nurse</strong> opened\n  this scan at" in page and "may be reading it now" in page
    assert 'data-opened-by="nurse"' in worklist and "nurse has it open" in worklist
    ui_client.post(reverse("diagnosis:scan_review", args=[scan.pk]), {"label": "Tumor"})
    assert "may be reading it now" in ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()


def test_a_withdrawn_scan_page_does_not_say_it(ui_client, organization, boss, nurse):
    scan = _scan(organization, "Tumor")
    _opened(scan, nurse)
    services.scan_withdraw(scan=scan, user=boss, reason="wrong image")

    assert "may be reading it now" not in ui_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()


def test_the_api_worklist_carries_who_has_a_scan_open(api_client, client, organization, clinician, nurse):
    from . import openapi

    scan = _scan(organization, "Tumor")
    _opened(scan, nurse, minutes_ago=1)

    response = api_client.get("/api/v1/worklist/")

    assert openapi.mismatches(openapi.load(client), "/api/v1/worklist/", "get", response) == []
    row = response.json()["results"][0]
    assert row["opened_by"] == "nurse" and row["opened_at"]
