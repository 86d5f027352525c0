"""A model version's performance on the organization's own reviewed slices, next to its card."""

import datetime

import pytest
from django.utils import timezone

from diagnosis import selectors
from diagnosis.models import PerformanceAlert, Review
from diagnosis.selectors.performance import ABOVE, BELOW, CONSISTENT, NO_CARD, TOO_FEW

from .factories import (
    DonePredictionFactory, ModelVersionFactory, PatientFactory, PredictionFactory, ReviewFactory, ScanFactory,
)

CARD_RECALL = {"Cyst": 0.96, "Normal": 0.83, "Stone": 0.77, "Tumor": 0.65}


def carded_version(**kwargs):
    per_class = {name: {"recall": recall, "precision": 0.8, "support": 100} for name, recall in CARD_RECALL.items()}
    card = {"metrics": {"test_series_split": {"accuracy": 0.82, "per_class": per_class, "series": 52}},
            "calibration": {"confidence_threshold": 0.7}, "out_of_scope": {"quantile_of_validation": 0.995}}
    return ModelVersionFactory(card=card, **kwargs)


def result(organization, version, label, *, top=0.9, finished_at=None, patient=None, **kwargs):
    scan = ScanFactory(patient=patient or PatientFactory(organization=organization))
    return DonePredictionFactory(scan=scan, model_version=version, label=label, top=top,
                                 finished_at=finished_at or timezone.now(), **kwargs)


def reviewed(organization, version, ai, said, count=1, **kwargs):
    for _ in range(count):
        ReviewFactory(prediction=result(organization, version, ai, **kwargs), label=said)


def test_the_wilson_interval_stays_inside_zero_and_one_and_is_none_for_nothing():
    low, high = selectors.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = selectors.wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert selectors.wilson_interval(0, 0) is None


@pytest.mark.parametrize(("clusters", "effective"), [
    ([(1, 1)] * 5 + [(0, 1)] * 5, 10),  # a slice per patient: as many as the slices
    ([(0, 8), (8, 8)], 2),  # each patient read all alike: as many as the patients
    ([(4, 8), (4, 8)], 16),  # patients no more alike than chance
    ([(0, 10), (10, 10), (5, 10), (5, 10)], 6),  # in between, by how alike
    ([(0, 5)], 1),  # one patient shows nothing of how alike their slices are
    ([(0, 5), (0, 6)], 2),  # nor does a share of 0
    ([], 0),
])
def test_the_evidence_of_a_share_is_its_patients_slices_taken_as_alike_as_they_were_read(clusters, effective):
    assert selectors.effective_size(clusters) == pytest.approx(effective)


def test_results_are_counted_by_outcome_leaving_out_withdrawn_scans_other_organizations_and_other_versions(
    organization, other_organization
):
    version = carded_version()
    result(organization, version, "Stone")
    result(organization, version, "Stone", top=0.5)  # under the card's threshold of 0.7
    result(organization, version, "Tumor", out_of_scope=True)
    PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), model_version=version,
                      status="failed", finished_at=timezone.now())
    PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=organization)), model_version=version)  # queued
    withdrawn = result(organization, version, "Cyst")
    withdrawn.scan.withdrawn_at = timezone.now()
    withdrawn.scan.save()
    result(other_organization, version, "Cyst")
    result(organization, ModelVersionFactory(), "Cyst")

    performance = selectors.model_performance_in_use(organization=organization, model_version=version)

    assert (performance.diagnosed, performance.failed, performance.out_of_scope, performance.uncertain) == (3, 1, 1, 1)
    assert {c.name: c.diagnosed for c in performance.classes} == {"Cyst": 0, "Normal": 0, "Stone": 2, "Tumor": 0}
    assert performance.threshold == 0.7


def test_a_class_the_ai_misses_on_the_organizations_patients_is_found_below_its_card(organization):
    version = carded_version()
    reviewed(organization, version, "Tumor", "Tumor", count=3)
    reviewed(organization, version, "Normal", "Tumor", count=9)  # nine tumours the AI called normal
    reviewed(organization, version, "Normal", "Normal", count=20)

    performance = selectors.model_performance_in_use(organization=organization, model_version=version)

    tumor = next(c for c in performance.classes if c.name == "Tumor")
    assert (tumor.found.count, tumor.found.of, tumor.found.card) == (3, 12, 0.65)
    assert tumor.found.interval[1] < 0.65 and tumor.found.verdict == BELOW
    assert (tumor.right.count, tumor.right.of, tumor.right.verdict) == (3, 3, TOO_FEW)
    normal = next(c for c in performance.classes if c.name == "Normal")
    assert (normal.found.count, normal.found.of, normal.found.verdict) == (20, 20, CONSISTENT)
    assert (normal.right.count, normal.right.of) == (20, 29)
    assert (performance.accuracy.count, performance.accuracy.of, performance.accuracy.card) == (23, 32, 0.82)
    assert performance.reviewed == 32
    assert [m.name for m in performance.below] == ["Tumor found"]


def test_only_the_current_review_of_a_slice_counts_and_only_for_the_version_it_judged(organization):
    version, later = carded_version(), carded_version()
    first = result(organization, version, "Stone")
    ReviewFactory(prediction=first, label="Cyst")
    ReviewFactory(prediction=first, label="Stone")  # a second look overrules the first
    rerun = DonePredictionFactory(scan=first.scan, model_version=later, label="Cyst")
    ReviewFactory(prediction=rerun, label="Cyst")  # the slice's current review now judges the later version
    judged = result(organization, version, "Cyst")
    ReviewFactory(prediction=judged, label="Normal")

    performance = selectors.model_performance_in_use(organization=organization, model_version=version)
    by_later = selectors.model_performance_in_use(organization=organization, model_version=later)

    assert (performance.accuracy.count, performance.accuracy.of) == (0, 1)
    assert (by_later.accuracy.count, by_later.accuracy.of) == (1, 1)


def test_weeks_count_the_results_they_made_and_older_results_count_only_in_the_totals(organization):
    version = carded_version()
    today = timezone.localdate()
    three_weeks_ago = timezone.now() - datetime.timedelta(weeks=3)
    reviewed(organization, version, "Stone", "Stone", finished_at=three_weeks_ago)
    reviewed(organization, version, "Stone", "Cyst", finished_at=three_weeks_ago)
    result(organization, version, "Cyst", top=0.4, finished_at=three_weeks_ago)
    result(organization, version, "Normal")
    result(organization, version, "Normal", finished_at=timezone.now() - datetime.timedelta(weeks=20))

    performance = selectors.model_performance_in_use(organization=organization, model_version=version, today=today)

    assert len(performance.weeks) == 12
    assert performance.weeks[0].start == today - datetime.timedelta(days=today.weekday())
    assert (performance.weeks[0].diagnosed, performance.weeks[0].labels) == (1, {"Normal": 1})
    week = performance.weeks[3]
    assert (week.diagnosed, week.uncertain, week.reviewed, week.agreed, week.agreement) == (3, 1, 2, 1, 0.5)
    assert week.labels == {"Stone": 2, "Cyst": 1}
    assert performance.weeks[1].diagnosed == 0 and performance.weeks[1].agreement is None
    assert performance.diagnosed == 5


def test_a_version_without_a_card_is_measured_but_not_judged(organization):
    version = ModelVersionFactory()
    reviewed(organization, version, "Stone", "Cyst", count=12)

    performance = selectors.model_performance_in_use(organization=organization, model_version=version)

    assert (performance.accuracy.of, performance.accuracy.rate, performance.accuracy.verdict) == (12, 0.0, NO_CARD)
    assert performance.below == []


def test_the_worklists_alert_is_the_open_one_of_the_active_version_in_the_organization(organization, other_organization):
    active, earlier = carded_version(is_active=True), carded_version()
    PerformanceAlert.objects.create(organization=organization, model_version=active, measures=["Stone found"],
                                    cleared_at=timezone.now())
    PerformanceAlert.objects.create(organization=organization, model_version=earlier, measures=["Cyst found"])
    PerformanceAlert.objects.create(organization=other_organization, model_version=active, measures=["Tumor found"])
    assert selectors.performance_alert_open(organization=organization) is None

    open_alert = PerformanceAlert.objects.create(organization=organization, model_version=active, measures=["Stone found"])

    assert selectors.performance_alert_open(organization=organization) == open_alert


def test_versions_in_use_are_those_that_diagnosed_the_organizations_scans_and_the_active_one(
    organization, other_organization
):
    old, active, elsewhere = carded_version(), carded_version(is_active=True), carded_version()
    result(organization, old, "Stone")
    result(other_organization, elsewhere, "Stone")

    assert set(selectors.model_versions_in_use(organization=organization)) == {old, active}


def test_weeks_begin_on_monday_in_the_hospitals_time_zone(organization, settings):
    settings.TIME_ZONE = "Pacific/Auckland"  # UTC+13 in December
    version = carded_version()
    sunday_evening_utc = datetime.datetime(2026, 11, 29, 12, 30, tzinfo=datetime.timezone.utc)  # Monday 01:30 there
    result(organization, version, "Stone", finished_at=sunday_evening_utc)

    performance = selectors.model_performance_in_use(organization=organization, model_version=version,
                                                     today=datetime.date(2026, 12, 2))

    assert performance.weeks[0].start == datetime.date(2026, 11, 30)
    assert performance.weeks[0].diagnosed == 1 and performance.weeks[1].diagnosed == 0


def test_each_share_counts_the_patients_its_slices_came_from(organization):
    version = carded_version()
    hard_case = PatientFactory(organization=organization)
    reviewed(organization, version, "Cyst", "Stone", count=8, patient=hard_case)  # one patient's slices, all missed
    reviewed(organization, version, "Stone", "Stone", count=2)  # two other patients, found

    performance = selectors.model_performance_in_use(organization=organization, model_version=version)

    stone = next(c for c in performance.classes if c.name == "Stone")
    assert (stone.found.count, stone.found.of, stone.found.patients) == (2, 10, 3)
    assert (stone.right.of, stone.right.patients) == (2, 2)
    cyst = next(c for c in performance.classes if c.name == "Cyst")
    assert (cyst.right.of, cyst.right.patients, cyst.found.patients) == (8, 1, 0)
    assert performance.accuracy.patients == 3


def test_a_shortfall_from_one_patients_slices_is_not_below_the_card_as_the_same_spread_over_patients_is(
        organization):
    version = carded_version()
    hard_case = PatientFactory(organization=organization)
    reviewed(organization, version, "Normal", "Tumor", count=9, patient=hard_case)  # one patient's tumour, missed
    reviewed(organization, version, "Tumor", "Tumor", count=3)  # three other patients', found

    found = next(c for c in selectors.model_performance_in_use(organization=organization, model_version=version).classes
                 if c.name == "Tumor").found

    assert (found.count, found.of, found.patients, found.effective) == (3, 12, 4, 4.0)
    assert selectors.wilson_interval(3, 12)[1] < 0.65  # taken as twelve independent slices it would be below
    assert found.interval[1] > 0.65 and found.verdict == CONSISTENT  # as the evidence of four patients, it is not


def test_of_two_reviews_at_the_same_moment_the_later_written_is_current(organization):
    version = carded_version()
    prediction = result(organization, version, "Stone")
    moment = timezone.now()
    first = ReviewFactory(prediction=prediction, label="Cyst")
    second = ReviewFactory(prediction=prediction, label="Stone")
    Review.objects.filter(pk__in=[first.pk, second.pk]).update(reviewed_at=moment)

    performance = selectors.model_performance_in_use(organization=organization, model_version=version)

    assert (performance.accuracy.count, performance.accuracy.of) == (1, 1)


def results(organization, version, *, count, out_of_scope, finished_at=None):
    for n in range(count):
        result(organization, version, "Normal", out_of_scope=n < out_of_scope, finished_at=finished_at)


def test_more_out_of_scope_results_in_the_newest_weeks_than_its_card_expects_are_flagged(organization):
    version = carded_version()
    results(organization, version, count=57, out_of_scope=0)
    results(organization, version, count=3, out_of_scope=3, finished_at=timezone.now() - datetime.timedelta(weeks=3))
    results(organization, version, count=20, out_of_scope=20, finished_at=timezone.now() - datetime.timedelta(weeks=5))

    inputs = selectors.model_performance_in_use(organization=organization, model_version=version).inputs

    # The newest 4 weeks: 3 of 60 (5%); the 20 of five weeks ago count in the totals only.
    assert (inputs.weeks, inputs.out_of_scope, inputs.diagnosed, inputs.verdict) == (4, 3, 60, ABOVE)
    assert inputs.expected == pytest.approx(0.005)
    assert inputs.interval[0] == pytest.approx(0.0171, abs=1e-4) and inputs.rate == 0.05



def test_one_patients_many_out_of_scope_slices_count_as_one_unusual_upload_not_a_drift(organization,
                                                                                     other_organization):
    version = carded_version()

    def patient_with(organization, *, out_of_scope: int, slices: int = 5) -> None:
        patient = PatientFactory(organization=organization)
        for n in range(slices):
            result(organization, version, "Normal", out_of_scope=n < out_of_scope, patient=patient)

    for org in (organization, other_organization):
        for _ in range(40):
            patient_with(org, out_of_scope=0)
    patient_with(organization, out_of_scope=5)  # a series of another protocol, uploaded slice by slice
    for _ in range(5):
        patient_with(other_organization, out_of_scope=1)  # the same count, spread over five patients

    one = selectors.model_inputs_in_use(organization=organization, model_version=version)
    spread = selectors.model_inputs_in_use(organization=other_organization, model_version=version)

    # Taken as 205 independent slices, one patient's 5 would be above the card's 0.5%.
    assert selectors.wilson_interval(5, 205)[0] > 0.005
    assert (one.out_of_scope, one.diagnosed, one.patients, one.effective) == (5, 205, 41, 41.0)
    assert one.interval[0] < 0.005 and one.verdict == CONSISTENT
    assert (spread.out_of_scope, spread.diagnosed, spread.patients, spread.effective) == (5, 225, 45, 225.0)
    assert spread.verdict == ABOVE

def test_out_of_scope_results_are_judged_only_from_enough_results_and_not_without_a_card(organization):
    version = carded_version()
    results(organization, version, count=49, out_of_scope=5)
    few = selectors.model_performance_in_use(organization=organization, model_version=version).inputs
    results(organization, version, count=51, out_of_scope=0)
    many = selectors.model_performance_in_use(organization=organization, model_version=version).inputs
    uncarded = ModelVersionFactory()
    results(organization, uncarded, count=50, out_of_scope=50)
    unknown = selectors.model_performance_in_use(organization=organization, model_version=uncarded).inputs

    assert (few.out_of_scope, few.diagnosed, few.verdict) == (5, 49, TOO_FEW)
    assert (many.out_of_scope, many.diagnosed, many.verdict) == (5, 100, ABOVE)
    assert (unknown.expected, unknown.verdict) == (None, NO_CARD)


def test_one_out_of_scope_result_in_a_hundred_is_what_its_card_expects(organization):
    version = carded_version()
    results(organization, version, count=100, out_of_scope=1)

    inputs = selectors.model_performance_in_use(organization=organization, model_version=version).inputs

    assert (inputs.out_of_scope, inputs.verdict) == (1, CONSISTENT)
