import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from diagnosis.models import Prediction

from .factories import DonePredictionFactory, PatientFactory, PredictionFactory, ReviewFactory, ScanFactory

URL = "/api/v1/worklist/"


@pytest.fixture
def make(organization):
    def make(label="Stone", hours_ago=1, top=0.9, status=Prediction.Status.DONE, org=None):
        scan = ScanFactory(
            patient=PatientFactory(organization=org or organization),
            uploaded_at=timezone.now() - datetime.timedelta(hours=hours_ago),
        )
        if status == Prediction.Status.DONE:
            DonePredictionFactory(scan=scan, label=label, top=top)
        else:
            PredictionFactory(scan=scan, status=status)
        return scan

    return make


def test_the_worklist_lists_unreviewed_scans_in_triage_order_with_urgency_and_waiting_time(api_client, make):
    normal = make("Normal", hours_ago=5)
    tumor = make("Tumor", hours_ago=1)
    uncertain = make("Cyst", hours_ago=2, top=0.4)
    stone = make("Stone", hours_ago=3)
    reviewed = make("Tumor", hours_ago=9)
    ReviewFactory(prediction=reviewed.latest_prediction)

    body = api_client.get(URL).json()

    assert [row["id"] for row in body["results"]] == [uncertain.pk, tumor.pk, stone.pk, normal.pk]
    first = body["results"][0]
    assert (first["urgency"], first["needs_review"], first["prediction"]["needs_review"]) == (0, True, True)
    assert "below the confidence threshold" in first["prediction"]["needs_review_reason"]
    assert 2 * 3600 - 60 <= first["waiting_seconds"] <= 2 * 3600 + 60
    assert first["review"] is None and first["patient_name"]


def test_the_worklist_is_paginated(api_client, make):
    scans = [make("Tumor", hours_ago=h) for h in (5, 4, 3)]

    first = api_client.get(URL, {"page_size": 2}).json()
    second = api_client.get(first["next"]).json()

    assert first["count"] == 3
    assert [r["id"] for r in first["results"] + second["results"]] == [s.pk for s in scans]


def test_the_filters_narrow_the_list(api_client, make):
    # The others are uploaded now and the cut-off is the stone's own local date, so the test holds at
    # any hour: an upload "1 hour ago" falls on yesterday when the run starts just after midnight.
    stone = make("Stone", hours_ago=30)
    make("Tumor", hours_ago=0)
    make(status=Prediction.Status.QUEUED, hours_ago=0)
    stone_day = timezone.localdate(stone.uploaded_at).isoformat()

    assert [r["id"] for r in api_client.get(URL, {"label": "Stone"}).json()["results"]] == [stone.pk]
    assert len(api_client.get(URL, {"status": "pending"}).json()["results"]) == 1
    assert [r["id"] for r in api_client.get(URL, {"uploaded_to": stone_day}).json()["results"]] == [stone.pk]


@pytest.mark.parametrize("query", [{"status": "urgent"}, {"uploaded_from": "yesterday"}])
def test_a_bad_filter_answers_400(api_client, db, query):
    response = api_client.get(URL, query)

    assert response.status_code == 400
    assert list(response.json()) == list(query)


def test_a_reversed_date_range_answers_400_naming_both_dates(api_client, db):
    response = api_client.get(URL, {"uploaded_from": "2026-12-04", "uploaded_to": "2026-12-01"})

    assert response.status_code == 400
    assert response.json() == {"uploaded_to": ["The end date 2026-12-01 is before the start date 2026-12-04."]}


def test_other_organizations_scans_never_appear(api_client, make, other_organization):
    make("Tumor", org=other_organization)

    assert api_client.get(URL).json()["count"] == 0


def test_anonymous_worklist_answers_401(db):
    assert APIClient().get(URL).status_code == 401
