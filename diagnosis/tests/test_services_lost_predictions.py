"""Diagnoses whose task was lost (Redis restarted, a worker killed mid-task) are sent again by the sweep."""

from datetime import timedelta

from django.utils import timezone

from diagnosis import services
from diagnosis.models import Prediction

from .factories import DonePredictionFactory, PredictionFactory

STALE = timedelta(minutes=10)


def ago(minutes: int):
    return timezone.now() - timedelta(minutes=minutes)


def test_only_diagnoses_waiting_or_running_too_long_are_sent_again(db, inference_queue,
                                                                   django_capture_on_commit_callbacks):
    lost_queued = PredictionFactory(status="queued", queued_at=ago(30))
    lost_running = PredictionFactory(status="running", queued_at=ago(40), started_at=ago(15))
    PredictionFactory(status="queued", queued_at=ago(2))  # still waiting its turn
    PredictionFactory(status="running", queued_at=ago(30), started_at=ago(1))  # a redelivery just started it
    DonePredictionFactory(queued_at=ago(60))

    with django_capture_on_commit_callbacks(execute=True):
        resent = services.predictions_resend_lost(older_than=STALE)

    assert sorted(resent) == sorted([lost_queued.pk, lost_running.pk])
    sent = inference_queue.drain()
    assert sorted(m["args"][0] for m in sent) == sorted(resent)
    assert {m["task"] for m in sent} == {"diagnosis.tasks.predict_scan"}
    assert Prediction.objects.get(pk=lost_queued.pk).resent_at is not None


def test_a_diagnosis_sent_again_is_not_sent_again_until_it_has_waited_that_long_once_more(
        db, inference_queue, django_capture_on_commit_callbacks):
    lost = PredictionFactory(status="queued", queued_at=ago(30))
    with django_capture_on_commit_callbacks(execute=True):
        services.predictions_resend_lost(older_than=STALE)
        assert services.predictions_resend_lost(older_than=STALE) == []

    Prediction.objects.filter(pk=lost.pk).update(resent_at=ago(11))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.predictions_resend_lost(older_than=STALE) == [lost.pk]
    assert len(inference_queue.drain()) == 2


def test_the_sweep_is_scheduled_on_the_queue_the_inference_worker_serves(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["resend-lost-predictions"]

    assert entry["task"] == "diagnosis.tasks.resend_lost_predictions"
    assert settings.CELERY_TASK_ROUTES["diagnosis.tasks.resend_lost_predictions"] == {"queue": "celery"}
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", float("inf")) > (
        settings.KIDNEYWEB_TRAINING_TIME_LIMIT_SECONDS + 300)
