"""Alerts of unusual uploads: the scheduled judgement raises one when the active model's out-of-scope share of the
newest weeks is above what its card expects, and ends it when the share comes back, when too few recent results
are left to judge, or when another version is made active; each raising and ending notified to the hospital's
system."""

import datetime

import pytest
from django.utils import timezone

from diagnosis import services, tasks
from diagnosis.models import InputsAlert, Scan, WebhookDelivery

from .factories import ModelVersionFactory
from .test_selectors_performance import carded_version, results


def judge(callbacks, **kwargs):
    with callbacks(execute=False):  # the deliveries are not sent here
        services.inputs_alerts_judge(**kwargs)


def events():
    return [d.event for d in WebhookDelivery.objects.order_by("id") if d.event.startswith("model.")]


def test_recent_uploads_out_of_scope_more_often_than_the_card_expects_raise_one_alert_and_notify_it(
    notified, django_capture_on_commit_callbacks
):
    active = carded_version(is_active=True, name="kidney-v9")
    results(notified, active, count=57, out_of_scope=0)
    results(notified, active, count=3, out_of_scope=3)  # 3 of 60: 5%, the interval's lower end 1.7%; card 0.5%

    judge(django_capture_on_commit_callbacks)
    judge(django_capture_on_commit_callbacks)  # still unusual: no news

    alert = InputsAlert.objects.get()
    assert (alert.model_version, alert.out_of_scope, alert.diagnosed, alert.cleared_at) == (active, 3, 60, None)
    assert events() == ["model.inputs_unusual"]
    payload = WebhookDelivery.objects.get().payload
    assert payload["model_version"] == {"id": active.pk, "name": "kidney-v9"}
    assert payload["api_path"] == f"/api/v1/performance/?model_version={active.pk}"
    assert (payload["weeks"], payload["out_of_scope"], payload["diagnosed"], payload["rate"]) == (4, 3, 60, 0.05)
    assert (payload["patients"], payload["effective"]) == (60, 60.0)  # a slice each: as many as the slices
    assert payload["expected"] == pytest.approx(0.005) and payload["interval"][0] == pytest.approx(0.0171, abs=1e-4)
    assert payload["unusual_since"] == alert.raised_at.isoformat()

    results(notified, active, count=1, out_of_scope=1)
    judge(django_capture_on_commit_callbacks)
    assert (InputsAlert.objects.get().out_of_scope, InputsAlert.objects.get().diagnosed) == (4, 61)  # kept quietly
    assert events() == ["model.inputs_unusual"]


def test_the_alert_ends_when_the_share_comes_back_within_what_the_card_expects(
    notified, django_capture_on_commit_callbacks
):
    active = carded_version(is_active=True)
    results(notified, active, count=60, out_of_scope=3)
    judge(django_capture_on_commit_callbacks)
    assert InputsAlert.objects.get().cleared_at is None

    # Two of the three were entered in error: 1 of 58 is within what the card expects.
    for scan in Scan.objects.filter(predictions__out_of_scope=True).order_by("pk")[:2]:
        scan.withdrawn_at = timezone.now()
        scan.save(update_fields=["withdrawn_at"])
    judge(django_capture_on_commit_callbacks)

    ended = InputsAlert.objects.get()
    assert ended.cleared_at is not None
    assert (ended.ended, ended.out_of_scope, ended.diagnosed) == (InputsAlert.Ended.USUAL, 1, 58)
    assert events() == ["model.inputs_unusual", "model.inputs_usual"]
    payload = WebhookDelivery.objects.get(event="model.inputs_usual").payload
    assert (payload["ended"], payload["out_of_scope"], payload["diagnosed"]) == ("usual", 1, 58)
    assert payload["cleared_at"] == ended.cleared_at.isoformat()


def test_the_alert_ends_when_the_weeks_counted_move_past_the_unusual_uploads(
    notified, django_capture_on_commit_callbacks
):
    active = carded_version(is_active=True)
    results(notified, active, count=60, out_of_scope=3)
    judge(django_capture_on_commit_callbacks)
    assert InputsAlert.objects.filter(cleared_at__isnull=True).exists()

    # Nothing uploaded since: five weeks on, no result is recent enough to count.
    judge(django_capture_on_commit_callbacks, today=timezone.localdate() + datetime.timedelta(weeks=5))

    ended = InputsAlert.objects.get()
    assert (ended.ended, ended.out_of_scope, ended.diagnosed) == (InputsAlert.Ended.TOO_FEW, 0, 0)
    assert events() == ["model.inputs_unusual", "model.inputs_usual"]


def test_an_alert_ends_when_another_version_is_made_active_and_the_new_one_is_judged_on_its_own_results(
    notified, django_capture_on_commit_callbacks
):
    first = carded_version(is_active=True)
    results(notified, first, count=60, out_of_scope=3)
    judge(django_capture_on_commit_callbacks)

    second = carded_version()
    services.model_version_activate(model_version=second)
    judge(django_capture_on_commit_callbacks)

    ended = InputsAlert.objects.get()
    assert (ended.model_version, ended.ended) == (first, InputsAlert.Ended.NOT_ACTIVE)
    assert ended.cleared_at is not None
    assert events() == ["model.inputs_unusual", "model.inputs_usual"]
    payload = WebhookDelivery.objects.get(event="model.inputs_usual").payload
    assert payload["ended"] == "not_active" and "out_of_scope" not in payload  # counts of a version no longer used


def test_each_organization_is_judged_on_its_own_uploads(notified, other_organization, django_capture_on_commit_callbacks):
    active = carded_version(is_active=True)
    results(notified, active, count=60, out_of_scope=3)
    results(other_organization, active, count=100, out_of_scope=1)

    judge(django_capture_on_commit_callbacks)

    assert list(InputsAlert.objects.values_list("organization", flat=True)) == [notified.pk]


def test_a_failure_to_judge_one_organization_is_logged_and_the_others_are_judged(
    notified, other_organization, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    from diagnosis.services import performance

    active = carded_version(is_active=True)
    results(notified, active, count=60, out_of_scope=3)
    results(other_organization, active, count=60, out_of_scope=3)
    count = performance.selectors.model_inputs_in_use

    def broken_for_one(*, organization, **kwargs):
        if organization == other_organization:
            InputsAlert.objects.create(organization=organization, model_version=active, out_of_scope=0, diagnosed=0)
            raise ValueError("the database went away")
        return count(organization=organization, **kwargs)

    monkeypatch.setattr(performance.selectors, "model_inputs_in_use", broken_for_one)
    judge(django_capture_on_commit_callbacks)

    assert list(InputsAlert.objects.values_list("organization", flat=True)) == [notified.pk]  # the other's rolled back
    assert f"Could not judge the uploads of {other_organization.name}" in caplog.text


def test_nothing_is_counted_while_the_active_versions_card_expects_no_share(
    notified, django_capture_on_commit_callbacks, monkeypatch
):
    from diagnosis.services import performance

    active = ModelVersionFactory(is_active=True)  # a card without the out-of-scope share
    results(notified, active, count=60, out_of_scope=30)
    counted = []
    monkeypatch.setattr(performance.selectors, "model_inputs_in_use", lambda **kwargs: counted.append(kwargs))

    judge(django_capture_on_commit_callbacks)

    assert counted == [] and not InputsAlert.objects.exists()


def test_the_alert_is_kept_without_a_notification_address(organization, django_capture_on_commit_callbacks):
    active = carded_version(is_active=True)
    results(organization, active, count=60, out_of_scope=3)

    judge(django_capture_on_commit_callbacks)

    assert InputsAlert.objects.filter(cleared_at__isnull=True).count() == 1
    assert not WebhookDelivery.objects.exists()


def test_the_judgement_is_scheduled_and_its_task_judges(settings, notified, django_capture_on_commit_callbacks):
    entry = settings.CELERY_BEAT_SCHEDULE["judge-inputs"]
    assert entry["task"] == "diagnosis.tasks.judge_inputs"
    assert entry["schedule"] == settings.KIDNEYWEB_INPUTS_JUDGE_SECONDS == 3600
    assert settings.CELERY_TASK_ROUTES["diagnosis.tasks.judge_inputs"] == {"queue": "celery"}

    active = carded_version(is_active=True)
    results(notified, active, count=60, out_of_scope=3)
    with django_capture_on_commit_callbacks(execute=False):
        tasks.judge_inputs.apply()

    assert InputsAlert.objects.filter(model_version=active, cleared_at__isnull=True).exists()


def test_a_judgement_of_one_organization_leaves_the_others_alerts_to_the_schedule(
    notified, other_organization, django_capture_on_commit_callbacks
):
    active = carded_version(is_active=True)
    results(notified, active, count=60, out_of_scope=3)
    results(other_organization, active, count=60, out_of_scope=3)

    with django_capture_on_commit_callbacks(execute=False):
        tasks.judge_inputs.apply(kwargs={"organization_id": notified.pk})

    assert list(InputsAlert.objects.values_list("organization", flat=True)) == [notified.pk]


def test_an_out_of_scope_result_queues_a_judgement_only_while_no_alert_is_open_for_the_active_version(
    notified, django_capture_on_commit_callbacks
):
    from . import brokerq
    from .test_selectors_performance import result

    active = carded_version(is_active=True)
    brokerq.drain("celery")

    def queued_after(prediction):
        with django_capture_on_commit_callbacks(execute=True):
            services.inputs_result_judge(prediction=prediction)
        return [m["kwargs"] for m in brokerq.drain("celery") if m["task"] == "diagnosis.tasks.judge_inputs"]

    assert queued_after(result(notified, active, "Normal", out_of_scope=True)) == [{"organization_id": notified.pk}]
    assert queued_after(result(notified, active, "Normal")) == []
    assert queued_after(result(notified, ModelVersionFactory(), "Normal", out_of_scope=True)) == []  # not active
    InputsAlert.objects.create(organization=notified, model_version=active, out_of_scope=3, diagnosed=60)
    assert queued_after(result(notified, active, "Normal", out_of_scope=True)) == []  # its counts wait for the hour
