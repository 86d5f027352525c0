"""The triage worklist: unreviewed scans of the organization, most urgent first, ordered by the database."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from diagnosis import selectors
from diagnosis.models import Prediction

from .factories import (
    DonePredictionFactory,
    ModelVersionFactory,
    PatientFactory,
    PredictionFactory,
    ReviewFactory,
    ScanFactory,
)

NOW = timezone.now()


@pytest.fixture
def version(db):
    return ModelVersionFactory(card={"calibration": {"confidence_threshold": 0.7}})


@pytest.fixture
def make(organization, version):
    patient = PatientFactory(organization=organization)

    def make(label="Stone", *, hours_ago=1, top=0.9, status=Prediction.Status.DONE, out_of_scope=False, scan_org=None):
        scan = ScanFactory(
            patient=patient if scan_org is None else PatientFactory(organization=scan_org),
            uploaded_at=NOW - datetime.timedelta(hours=hours_ago),
        )
        if status == Prediction.Status.DONE:
            DonePredictionFactory(scan=scan, model_version=version, label=label, top=top, out_of_scope=out_of_scope)
        else:
            PredictionFactory(scan=scan, model_version=version, status=status)
        return scan

    return make


def ids(scans):
    return [scan.pk for scan in scans]


def test_needs_review_comes_first_then_tumor_stone_cyst_normal_then_pending_each_oldest_first(make, clinician):
    normal = make("Normal", hours_ago=9)
    stone_new = make("Stone", hours_ago=1)
    stone_old = make("Stone", hours_ago=5)
    tumor = make("Tumor", hours_ago=2)
    cyst = make("Cyst", hours_ago=8)
    uncertain = make("Normal", hours_ago=3, top=0.5)
    out_of_scope = make("Tumor", hours_ago=4, out_of_scope=True)
    failed = make(status=Prediction.Status.FAILED, hours_ago=0.5)
    queued = make(status=Prediction.Status.QUEUED, hours_ago=10)

    assert ids(selectors.worklist(user=clinician)) == ids(
        [out_of_scope, uncertain, failed, tumor, stone_old, stone_new, cyst, normal, queued]
    )


def test_the_order_comes_from_one_database_query(make, clinician):
    for label in ("Normal", "Tumor", "Stone"):
        make(label)

    with CaptureQueriesContext(connection) as queries:
        scans = list(selectors.worklist(user=clinician).values_list("pk", "urgency", "needs_review"))

    assert len(queries) == 1
    assert "ORDER BY" in queries[0]["sql"] and "CASE" in queries[0]["sql"]
    assert [urgency for _, urgency, _ in scans] == [1, 2, 4]


def test_reviewed_scans_and_other_organizations_are_left_out(make, clinician, other_organization):
    waiting = make("Tumor")
    reviewed = make("Tumor")
    ReviewFactory(prediction=reviewed.latest_prediction)
    make("Tumor", scan_org=other_organization)

    assert ids(selectors.worklist(user=clinician)) == [waiting.pk]


def test_the_model_cards_threshold_decides_what_is_uncertain(make, clinician, organization):
    strict = ModelVersionFactory(card={"calibration": {"confidence_threshold": 0.95}})
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    DonePredictionFactory(scan=scan, model_version=strict, label="Normal", top=0.9)
    confident = make("Normal", top=0.9)

    flags = dict(selectors.worklist(user=clinician).values_list("pk", "needs_review"))

    assert flags == {scan.pk: True, confident.pk: False}


def test_without_a_card_threshold_the_setting_decides(organization, clinician, settings):
    settings.KIDNEYWEB_CONFIDENCE_THRESHOLD = 0.95
    scan = ScanFactory(patient=PatientFactory(organization=organization))
    prediction = DonePredictionFactory(scan=scan, model_version=ModelVersionFactory(card={}), top=0.9)

    assert selectors.worklist(user=clinician).get().needs_review is True
    assert selectors.prediction_uncertainty(prediction).needs_review is True


def test_the_newest_prediction_counts(make, clinician, version):
    scan = make("Tumor", hours_ago=3)
    PredictionFactory(scan=scan, model_version=version, status=Prediction.Status.RUNNING)

    row = selectors.worklist(user=clinician).get()

    assert (row.ai_status, row.urgency) == ("running", selectors.URGENCY_PENDING)


@pytest.mark.parametrize(
    ("status", "expected"),
    [("needs_review", ["uncertain", "failed"]), ("result", ["tumor", "normal"]), ("pending", ["queued"])],
)
def test_the_status_filter(make, clinician, status, expected):
    scans = {
        "uncertain": make("Stone", top=0.4, hours_ago=5),
        "failed": make(status=Prediction.Status.FAILED, hours_ago=4),
        "tumor": make("Tumor", hours_ago=3),
        "normal": make("Normal", hours_ago=2),
        "queued": make(status=Prediction.Status.QUEUED, hours_ago=1),
    }

    assert ids(selectors.worklist(user=clinician, status=status)) == [scans[name].pk for name in expected]


def test_the_label_and_date_filters(make, clinician):
    old_stone = make("Stone", hours_ago=24 * 10)
    new_stone = make("Stone", hours_ago=1)
    make("Tumor", hours_ago=1)
    today = timezone.localdate(NOW)

    assert ids(selectors.worklist(user=clinician, label="Stone")) == [old_stone.pk, new_stone.pk]
    assert ids(selectors.worklist(user=clinician, label="Stone", uploaded_from=today - datetime.timedelta(days=2))) == [
        new_stone.pk
    ]
    assert ids(selectors.worklist(user=clinician, uploaded_to=today - datetime.timedelta(days=2))) == [old_stone.pk]


def test_a_scan_without_any_diagnosis_is_listed_with_those_in_progress(make, clinician, organization):
    pending = make(status=Prediction.Status.QUEUED, hours_ago=5)
    bare = ScanFactory(patient=PatientFactory(organization=organization), uploaded_at=NOW - datetime.timedelta(hours=3))
    stone = make("Stone", hours_ago=1)

    rows = list(selectors.worklist(user=clinician))

    assert [s.pk for s in rows] == [stone.pk, pending.pk, bare.pk]
    assert (rows[2].ai_status, rows[2].ai_label, rows[2].needs_review) == (None, None, False)
    assert ids(selectors.worklist(user=clinician, status="pending")) == [pending.pk, bare.pk]  # the filter agrees
