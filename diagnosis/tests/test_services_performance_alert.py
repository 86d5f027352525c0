"""Alerts when the active model does worse on the organization's reviewed slices than its card: raised by the
review that tips a share below, widened by a new shortfall, cleared by the review that brings it back (or judged
again when a reviewed scan is withdrawn or restored), each change that is news notified to the hospital's system."""

import pytest

from diagnosis import services
from diagnosis.models import PerformanceAlert, WebhookDelivery

from .factories import MembershipFactory, PatientFactory, PredictionFactory, ScanFactory
from .test_selectors_performance import carded_version, result, reviewed


@pytest.fixture
def reviewer(organization):
    return MembershipFactory(organization=organization).user


def review(organization, reviewer, version, ai, said, callbacks, count=1):
    """Reviews through the service, as a clinician's would be; the deliveries are not sent here. Returns the scans."""
    scans = []
    for _ in range(count):
        scan = result(organization, version, ai).scan
        with callbacks(execute=False):
            services.review_create(scan=scan, user=reviewer, label=said)
        scans.append(scan)
    return scans


def events():
    return [d.event for d in WebhookDelivery.objects.order_by("id") if d.event.startswith("model.")]


def test_the_review_that_tips_a_share_below_the_card_raises_one_alert_and_notifies_it(
    notified, reviewer, django_capture_on_commit_callbacks
):
    active = carded_version(is_active=True, name="kidney-v9")
    reviewed(notified, active, "Stone", "Stone", count=3)
    review(notified, reviewer, active, "Cyst", "Stone", django_capture_on_commit_callbacks, count=6)
    assert not PerformanceAlert.objects.exists()  # 3 of 9: too few to judge

    review(notified, reviewer, active, "Cyst", "Stone", django_capture_on_commit_callbacks)  # 3 of 10
    review(notified, reviewer, active, "Cyst", "Stone", django_capture_on_commit_callbacks)  # still below: no news

    alert = PerformanceAlert.objects.get()
    assert (alert.model_version, alert.cleared_at) == (active, None)
    assert "Stone found" in alert.measures
    assert events() == ["model.below_card"]
    payload = WebhookDelivery.objects.get(event="model.below_card").payload
    assert payload["model_version"] == {"id": active.pk, "name": "kidney-v9"}
    assert payload["api_path"] == f"/api/v1/performance/?model_version={active.pk}"
    stone = next(m for m in payload["below"] if m["name"] == "Stone found")
    assert (stone["count"], stone["of"], stone["patients"], stone["card"]) == (3, 10, 10, 0.77)
    assert stone["interval"][1] < 0.77


def test_a_new_shortfall_is_notified_again_and_the_review_that_brings_it_back_clears_the_alert(
    notified, reviewer, django_capture_on_commit_callbacks
):
    active = carded_version(is_active=True)
    review(notified, reviewer, active, "Cyst", "Stone", django_capture_on_commit_callbacks, count=10)
    first = set(PerformanceAlert.objects.get().measures)
    review(notified, reviewer, active, "Normal", "Tumor", django_capture_on_commit_callbacks, count=10)
    widened = PerformanceAlert.objects.get()
    assert "Tumor found" in widened.measures and first <= set(widened.measures)
    assert events() == ["model.below_card", "model.below_card"]

    for label in ("Cyst", "Normal", "Stone", "Tumor"):
        reviewed(notified, active, label, label, count=40)  # many slices read right since (stored directly)
    assert PerformanceAlert.objects.get().cleared_at is None  # judged again at the next review
    review(notified, reviewer, active, "Stone", "Stone", django_capture_on_commit_callbacks)

    cleared = PerformanceAlert.objects.get()
    assert cleared.cleared_at is not None
    assert events() == ["model.below_card", "model.below_card", "model.recovered"]
    payload = WebhookDelivery.objects.get(event="model.recovered").payload
    assert payload["model_version"]["id"] == active.pk and payload["cleared_at"]


def test_reviews_of_an_earlier_versions_results_raise_nothing(notified, reviewer, django_capture_on_commit_callbacks):
    carded_version(is_active=True)
    earlier = carded_version()
    review(notified, reviewer, earlier, "Cyst", "Stone", django_capture_on_commit_callbacks, count=12)

    assert not PerformanceAlert.objects.exists() and events() == []


def test_an_alert_is_kept_without_a_notification_address(organization, reviewer, django_capture_on_commit_callbacks):
    active = carded_version(is_active=True)
    review(organization, reviewer, active, "Cyst", "Stone", django_capture_on_commit_callbacks, count=10)

    assert PerformanceAlert.objects.filter(cleared_at__isnull=True).count() == 1
    assert not WebhookDelivery.objects.exists()


def test_a_reading_of_a_failed_diagnosis_raises_nothing(notified, reviewer, django_capture_on_commit_callbacks):
    active = carded_version(is_active=True)
    for _ in range(10):
        failed = PredictionFactory(scan=ScanFactory(patient=PatientFactory(organization=notified)), model_version=active,
                                   status="failed")
        with django_capture_on_commit_callbacks(execute=False):
            services.review_create(scan=failed.scan, user=reviewer, label="Stone")

    assert not PerformanceAlert.objects.exists()


def test_a_failure_to_judge_the_model_keeps_the_review_and_is_logged(
    notified, reviewer, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    from diagnosis.models import Review
    from diagnosis.services import performance

    active = carded_version(is_active=True)

    def broken(**kwargs):
        PerformanceAlert.objects.create(organization=notified, model_version=active, measures=["half-written"])
        raise ValueError("a card the code did not expect")

    monkeypatch.setattr(performance.selectors, "model_performance_in_use", broken)
    review(notified, reviewer, active, "Cyst", "Stone", django_capture_on_commit_callbacks)

    assert Review.objects.get().label == "Stone"
    assert not PerformanceAlert.objects.exists()  # what the failed judging wrote is rolled back
    assert "Could not judge" in caplog.text


def test_a_share_that_comes_back_while_others_stay_below_is_recorded_without_a_notification(
    notified, reviewer, django_capture_on_commit_callbacks
):
    active = carded_version(is_active=True)
    review(notified, reviewer, active, "Cyst", "Stone", django_capture_on_commit_callbacks, count=10)
    assert {"Stone found", "Cyst labels kept"} <= set(PerformanceAlert.objects.get().measures)
    reviewed(notified, active, "Cyst", "Cyst", count=60)  # the AI's cyst labels kept since (stored directly)

    review(notified, reviewer, active, "Normal", "Normal", django_capture_on_commit_callbacks)

    alert = PerformanceAlert.objects.get()
    assert alert.cleared_at is None and alert.measures == ["Stone found"]
    assert events() == ["model.below_card"]


def test_withdrawing_a_reviewed_scan_judges_the_model_again_and_restoring_it_does_too(
    notified, reviewer, django_capture_on_commit_callbacks
):
    active = carded_version(is_active=True)
    admin = MembershipFactory(organization=notified, role="admin").user
    scans = review(notified, reviewer, active, "Cyst", "Stone", django_capture_on_commit_callbacks, count=10)
    assert "Stone found" in PerformanceAlert.objects.get().measures

    # Entered in error: with it gone, 9 stones are too few to judge, and nothing else is below.
    with django_capture_on_commit_callbacks(execute=False):
        services.scan_withdraw(scan=scans[0], user=admin, reason="uploaded for the wrong patient")
    assert PerformanceAlert.objects.get().cleared_at is not None
    assert events() == ["model.below_card", "model.recovered"]

    with django_capture_on_commit_callbacks(execute=False):
        services.scan_restore(scan=scans[0], user=admin, reason="withdrawn by mistake")
    assert PerformanceAlert.objects.filter(cleared_at__isnull=True).count() == 1
    assert events() == ["model.below_card", "model.recovered", "model.below_card"]


def test_withdrawing_a_scan_without_a_review_or_of_an_earlier_version_does_not_measure_the_model(
    notified, reviewer, django_capture_on_commit_callbacks, monkeypatch
):
    from diagnosis.services import performance

    active = carded_version(is_active=True)
    earlier = carded_version()
    admin = MembershipFactory(organization=notified, role="admin").user
    unread = result(notified, active, "Cyst").scan
    old = review(notified, reviewer, earlier, "Cyst", "Stone", django_capture_on_commit_callbacks, count=10)
    measured = []
    measure = performance.selectors.model_performance_in_use
    monkeypatch.setattr(performance.selectors, "model_performance_in_use",
                        lambda **kwargs: measured.append(kwargs["model_version"]) or measure(**kwargs))

    for scan in (unread, old[0]):
        with django_capture_on_commit_callbacks(execute=False):
            services.scan_withdraw(scan=scan, user=admin, reason="wrong image")
    read = review(notified, reviewer, active, "Cyst", "Cyst", django_capture_on_commit_callbacks)[0]
    with django_capture_on_commit_callbacks(execute=False):
        services.scan_withdraw(scan=read, user=admin, reason="wrong image")

    # Neither withdrawal changed a count that an alert reads, so only the review and the last withdrawal measured.
    assert measured == [active, active]
    assert not PerformanceAlert.objects.exists()


def test_a_failure_to_judge_the_model_keeps_the_withdrawal(
    notified, reviewer, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    from diagnosis.services import performance

    active = carded_version(is_active=True)
    admin = MembershipFactory(organization=notified, role="admin").user
    scan = review(notified, reviewer, active, "Cyst", "Stone", django_capture_on_commit_callbacks)[0]

    def broken(**kwargs):
        raise ValueError("a card the code did not expect")

    monkeypatch.setattr(performance.selectors, "model_performance_in_use", broken)
    with django_capture_on_commit_callbacks(execute=False):
        services.scan_withdraw(scan=scan, user=admin, reason="wrong image")

    scan.refresh_from_db()
    assert scan.is_withdrawn
    assert "Could not judge" in caplog.text and "after the withdrawal" in caplog.text
