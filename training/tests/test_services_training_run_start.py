"""Starting and cancelling runs: one at a time, enforced by the database, and queued on `training`."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from diagnosis.tests import brokerq
from training import services
from training.models import TrainingRun

from .factories import TrainingRunFactory


def test_a_run_is_queued_on_the_training_queue_with_its_full_parameters(
    training_settings, training_queue, admin_user, organization, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.training_run_start(requested_by=admin_user, overrides={"epochs": 2}, organization=organization)

    assert (run.status, run.is_current, run.epochs, run.overrides) == ("queued", True, 2, {"epochs": 2})
    assert run.params["train"]["epochs"] == 2 and run.params["train"]["image_size"] == 32
    assert training_queue() == [{"task": "training.tasks.train_model", "args": [run.pk], "kwargs": {}}]
    assert brokerq.drain("inference") == []


def test_a_second_run_is_refused_while_one_is_queued_or_running(training_settings, admin_user):
    for status in ("queued", "running"):
        current = TrainingRunFactory(status=status)
        with pytest.raises(services.TrainingRunConflict, match=f"is {status}. Only one run at a time"):
            services.training_run_start(requested_by=admin_user)
        current.status, current.is_current = "succeeded", False
        current.save()
    assert TrainingRun.objects.filter(is_current=True).count() == 0


def test_the_database_refuses_two_current_runs_even_without_the_service(db):
    TrainingRunFactory(status="queued")

    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRunFactory(status="running")


def test_the_database_refuses_a_status_that_disagrees_with_is_current(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        TrainingRunFactory(status="failed", is_current=True)


def test_finished_runs_do_not_block_a_new_one(training_settings, admin_user):
    for status in ("succeeded", "failed", "cancelled"):
        TrainingRunFactory(status=status)

    assert services.training_run_start(requested_by=admin_user).status == "queued"


def test_bad_parameters_are_refused_and_nothing_is_queued(training_settings, admin_user):
    with pytest.raises(ValidationError) as caught:
        services.training_run_start(requested_by=admin_user, overrides={"architecture": "alexnet"})

    assert "unknown architecture 'alexnet'" in caught.value.message_dict["params"][0]
    assert not TrainingRun.objects.exists()


def test_reviewed_data_needs_an_organization(training_settings, admin_user):
    with pytest.raises(ValidationError, match="belong to an organization"):
        services.training_run_start(requested_by=admin_user, data="reviewed")


def test_a_broker_outage_fails_the_run_with_its_reason_so_it_blocks_nothing(
    training_settings, admin_user, broker_down, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = services.training_run_start(requested_by=admin_user)

    run.refresh_from_db()
    assert run.status == "failed" and not run.is_current
    assert "could not be queued (the task broker did not answer" in run.failure_reason


def test_cancelling_a_queued_run_ends_it_at_once(db):
    run = TrainingRunFactory(status="queued")

    services.training_run_cancel(run=run)

    run.refresh_from_db()
    assert (run.status, run.is_current, run.cancel_requested) == ("cancelled", False, True)


def test_cancelling_a_running_run_asks_it_to_stop(db):
    run = TrainingRunFactory(status="running")

    services.training_run_cancel(run=run)

    run.refresh_from_db()
    assert (run.status, run.is_current, run.cancel_requested) == ("running", True, True)


def test_a_finished_run_cannot_be_cancelled(db):
    run = TrainingRunFactory(status="succeeded")

    with pytest.raises(services.TrainingRunFinished, match="already ended"):
        services.training_run_cancel(run=run)
